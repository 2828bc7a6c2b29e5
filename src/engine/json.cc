#include "engine/json.h"

namespace pgb {
namespace {

template <typename T>
nlohmann::json Optional(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json ReplicaJson(const BranchInfo::Replica& r) {
  return {
      {"source", r.source},
      {"slot", r.slot.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.slot)},
      {"streaming", r.streaming},
      {"receive_lsn",
       r.receive_lsn.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.receive_lsn)},
      {"replay_lsn", r.replay_lsn.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.replay_lsn)},
      {"lag_bytes", r.lag_bytes},
      {"lag_seconds", r.lag_seconds}};
}

}  // namespace

nlohmann::json ToJson(const WalWindow& w) {
  return {{"from_time", w.from_time},
          {"from_lsn", w.from_lsn},
          {"from_snapshot", w.from_snapshot},
          {"to", w.to}};
}

nlohmann::json ToJson(const WalInfo& w) {
  return {
      {"branch", w.branch},
      {"archive_dir", w.archive_dir},
      {"segments", w.segments},
      {"bytes", w.bytes},
      {"oldest_segment",
       w.oldest_segment.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.oldest_segment)},
      {"oldest_at", w.oldest_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.oldest_at)},
      {"newest_segment",
       w.newest_segment.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.newest_segment)},
      {"newest_at", w.newest_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.newest_at)},
      {"running", w.running},
      {"window", w.window ? ToJson(*w.window) : nlohmann::json(nullptr)},
  };
}

nlohmann::json ToJson(const BranchInfo& b, UriForm uri) {
  return {
      {"name", b.name},
      {"project", b.project},
      {"parent", b.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.parent)},
      {"state", b.state},
      {"runtime_detail", b.runtime_detail},
      {"port", b.port},
      {"host", b.host},
      {"user", b.user},
      {"uri", uri == UriForm::kWithPassword ? b.uri : b.masked_uri},
      {"size_bytes", Optional(b.size_bytes)},
      {"exclusive_bytes", Optional(b.exclusive_bytes)},
      {"sizes_measured_at", Optional(b.sizes_measured_at)},
      {"created_at", b.created_at},
      {"started_at", Optional(b.started_at)},
      {"uptime_seconds", Optional(b.uptime_seconds)},
      {"pid", b.pid == 0 ? nlohmann::json(nullptr) : nlohmann::json(b.pid)},
      {"pg_version", b.pg_version},
      {"data_dir", b.data_dir},
      {"log_path", b.log_path},
      {"container", b.container},
      {"snapshot_id", Optional(b.snapshot_id)},
      {"recovery_target",
       b.recovery_target.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.recovery_target)},
      {"recoverable", b.window ? ToJson(*b.window) : nlohmann::json(nullptr)},
      {"active", b.active},
      {"suspend_after_s", Optional(b.suspend_after_s)},
      {"expires_at", Optional(b.expires_at)},
      {"idle_ttl_s", Optional(b.idle_ttl_s)},
      {"idle_expires_at", Optional(b.idle_expires_at)},
      {"protected", b.is_protected},
      {"labels", b.labels},
      {"replica", b.replica ? ReplicaJson(*b.replica) : nlohmann::json(nullptr)},
  };
}

nlohmann::json ToJson(const BranchInfo& b, const std::optional<uint64_t>& limit_bytes) {
  nlohmann::json json = ToJson(b, UriForm::kWithPassword);
  json["limit_bytes"] = Optional(limit_bytes);
  return json;
}

nlohmann::json ToJson(const ProjectInfo& p) {
  return {
      {"name", p.name},
      {"runtime", p.runtime},
      {"image", p.image},
      {"pg_version", p.pg_version},
      {"pg_bin", p.pg_bin},
      {"created_at", p.created_at},
      {"branch_count", p.branch_count},
      {"active_branch", p.active_branch},
      {"suspend_after_s", Optional(p.suspend_after_s)},
  };
}

nlohmann::json ToJson(const ScheduleInfo& s) {
  auto opt = [](const std::string& t) { return t.empty() ? nlohmann::json() : nlohmann::json(t); };
  return {
      {"id", s.id},
      {"branch", s.branch},
      {"kind", s.kind},
      {"cron", s.cron},
      {"source", opt(s.source)},
      {"keep", Optional(s.keep)},
      {"max_age_s", Optional(s.max_age_s)},
      {"created_at", s.created_at},
      {"last_run", opt(s.last_run)},
      {"last_result", opt(s.last_result)},
      {"next_run", opt(s.next_run)},
  };
}

nlohmann::json ToJson(const SnapshotInfo& s) {
  return {
      {"id", s.id},
      {"branch", s.branch},
      {"label", s.label},
      {"implicit", s.implicit},
      {"created_at", s.created_at},
      {"size_bytes", Optional(s.size_bytes)},
      {"logical_bytes", Optional(s.logical_bytes)},
      {"dependents", s.dependents},
      {"name", s.name},
  };
}

nlohmann::json ToJson(const OperationInfo& o) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& st : o.steps) {
    steps.push_back(
        {{"name", st.name},
         {"started_at", st.started_at},
         {"ended_at", st.ended_at.empty() ? nlohmann::json() : nlohmann::json(st.ended_at)}});
  }
  return {
      {"id", o.id},
      {"kind", o.kind},
      {"target", o.target},
      {"state", o.state},
      {"owner_alive", o.owner_alive},
      {"pid", o.pid},
      {"command", o.command},
      {"step", o.step},
      {"steps", steps},
      {"error", o.error},
      {"started_at", o.started_at},
      {"updated_at", o.updated_at},
      {"ended_at", o.ended_at.empty() ? nlohmann::json() : nlohmann::json(o.ended_at)},
      {"journal_left", o.journal_left},
  };
}

nlohmann::json ToJson(const CatalogBackup& b) {
  return {{"path", b.path}, {"at", b.at}, {"bytes", b.bytes}, {"schema_version", b.schema_version}};
}

nlohmann::json ToJson(const StatusInfo& s) {
  nlohmann::json pool = {
      {"configured", s.pool.configured},
      {"kind", s.pool.kind},
      {"description", s.pool.description},
      {"why", s.pool.why},
      {"atomic_snapshots", s.pool.capabilities.atomic_snapshots},
      {"copy_on_write", s.pool.capabilities.copy_on_write},
  };
  if (s.pool.usage) {
    pool["size_bytes"] = s.pool.usage->size_bytes;
    pool["used_bytes"] = s.pool.usage->used_bytes;
    pool["free_bytes"] = s.pool.usage->free_bytes;
  }
  nlohmann::json projects = nlohmann::json::array();
  for (const auto& p : s.projects) projects.push_back(ToJson(p));
  nlohmann::json branches = nlohmann::json::array();
  for (const auto& b : s.branches) branches.push_back(ToJson(b, UriForm::kMasked));
  return {{"home", s.home},
          {"pool", pool},
          {"runtime", {{"kind", "native"}, {"os_user", s.os_user}}},
          {"port_range", FormatPortRange(s.ports)},
          {"projects", projects},
          {"branches", branches}};
}

nlohmann::json ToJson(const LogEntry& l) {
  return {{"at", l.at}, {"kind", l.kind}, {"text", l.text}};
}

nlohmann::json ToJson(const AuditRow& r) {
  return {{"id", r.id},
          {"at", r.at},
          {"command", r.command},
          {"operation", r.operation},
          {"object", r.object},
          {"detail", r.detail},
          {"duration_ms", r.duration_ms},
          {"ok", r.ok},
          {"error", r.error},
          {"operation_id", Optional(r.operation_id)},
          {"step", r.step}};
}

nlohmann::json ToJson(const DoctorFinding& f) {
  return {{"check", f.check}, {"status", f.status}, {"detail", f.detail}};
}

nlohmann::json ToJson(const TokenInfo& t) {
  return {{"name", t.name},
          {"scope", t.scope},
          {"created_at", t.created_at},
          {"last_used_at", Optional(t.last_used_at)}};
}

nlohmann::json ToJson(const CleanupReport& r, bool dry_run) {
  nlohmann::json removed = ToJsonArray(r.removed), kept = nlohmann::json::array();
  for (const auto& [s, why] : r.kept) {
    nlohmann::json j = ToJson(s);
    j["kept_because"] = why;
    kept.push_back(j);
  }
  return {{"dry_run", dry_run}, {"removed", removed}, {"kept", kept}};
}

nlohmann::json ToJson(const WalCleanupReport& r, bool dry_run) {
  return {{"dry_run", dry_run},
          {"removed", r.removed},
          {"removed_bytes", r.removed_bytes},
          {"kept_for_window", r.kept_for_window},
          {"keep_from_segment", r.keep_from_segment},
          {"oldest_base_snapshot", r.oldest_base_snapshot}};
}

}  // namespace pgb
