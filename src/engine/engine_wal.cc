// The engine's WAL archive and point-in-time recovery.
//
// Every branch archives its WAL into $PGBRANCH_HOME/wal/<project>/<branch-id>/<volume>/: one
// directory per volume, that is per data history. A reset gives the branch a new volume whose
// WAL continues its parent's and so reuses segment names its old archive already holds; a new
// directory keeps the two histories apart (the old one goes when the reset commits), so the
// archiver never meets a segment of the same name with other content after a reset.
//
// A point-in-time branch starts from a base: a snapshot of the source's current volume, or,
// for a branch cloned the ordinary way, the snapshot it was cloned from (its WAL after the clone
// is all in its own archive; what came before is in the snapshot's pg_wal). Each base records
// an upper bound of the WAL position and time it holds (SnapshotRow::wal_lsn, wal_time_us), so
// a base qualifies for a target at or after that bound: recovery then always replays past
// everything the snapshot contains and the result is consistent. The clone starts with
// recovery.signal, restore_command reading the source's archive and the target, promotes at the
// target on a new timeline, and archives from then on into its own directory.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "common/fs.h"
#include "common/os_user.h"
#include "common/random.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "pg/wal.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

constexpr auto kArchiveWait = std::chrono::seconds(60);
constexpr auto kRecoveryTimeout = std::chrono::hours(6);

int64_t MicrosSinceEpoch(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

TimePoint FromMicros(int64_t us) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds(us)));
}

}  // namespace

std::string internal::ControlDataField(const std::string& text, std::string_view label) {
  size_t at = text.find(label);
  if (at == std::string::npos) return "";
  size_t start = text.find_first_not_of(' ', at + label.size());
  size_t end = text.find('\n', at);
  if (start == std::string::npos || start > end) return "";
  return text.substr(start, end - start);
}

std::string Engine::ArchiveRoot(const ProjectRow& project) const {
  return JoinPath(env_.home,
                  fmt::format("wal/{}", by_ids_ ? std::to_string(project.id) : project.name));
}

std::string Engine::ArchiveDir(const ProjectRow& project, const BranchRow& branch) const {
  return JoinPath(ArchiveRoot(project), fmt::format("{}/{}", branch.id, branch.volume));
}

Status Engine::EnsureArchiveDir(const ProjectRow& project, const BranchRow& branch,
                                const std::optional<FileOwner>& owner) {
  // The server's account traverses pgbranch's directories to reach its own, and reads nothing
  // else: the others stay pgbranch's, mode 0711.
  mode_t traverse = owner ? 0711 : 0700;
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "wal"), traverse));
  PGB_RETURN_IF_ERROR(EnsureDir(ArchiveRoot(project), traverse));
  PGB_RETURN_IF_ERROR(
      EnsureDir(JoinPath(ArchiveRoot(project), std::to_string(branch.id)), traverse));
  return EnsureDir(ArchiveDir(project, branch), 0700, owner);
}

Status Engine::RecordWalPosition(const ProjectRow& project, const BranchRow& branch,
                                 Connection* conn, SnapshotRow* snapshot) {
  if (conn) {
    // The insert position bounds every record the snapshot can hold; the time is read after
    // it, so it bounds every commit timestamp in the snapshot too.
    // A standby's: the end of the WAL it has received and flushed, which its pg_wal holds.
    PGB_ASSIGN_OR_RETURN(
        snapshot->wal_lsn,
        conn->QueryValue("SELECT CASE WHEN pg_is_in_recovery() THEN"
                         " COALESCE(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
                         " ELSE pg_current_wal_insert_lsn() END::text"));
    snapshot->wal_time_us = MicrosSinceEpoch(env_.clock->Now());
    return Status::OK();
  }
  // A stopped server: after a clean shutdown nothing follows its shutdown checkpoint.
  // The project's own pg_controldata (in its image, for containers): the control file's layout
  // changes between major versions. Tools run with LANG=C.UTF-8, so the labels are English.
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, branch));
  spec.mounts.clear();  // the data directory is all it reads
  PGB_ASSIGN_OR_RETURN(CommandResult r,
                       RuntimeFor(project).RunTool(spec, "pg_controldata", {spec.data_dir},
                                                   std::chrono::seconds(30)));
  if (r.exit_code != 0) {
    spdlog::debug("pg_controldata: {}", r.err);
    return Status::OK();  // unknown: not a base for point-in-time recovery
  }
  if (ControlDataField(r.out, "Database cluster state:") != "shut down") return Status::OK();
  std::string lsn = ControlDataField(r.out, "Latest checkpoint location:");
  if (!ParseLsn(lsn).ok()) return Status::OK();
  snapshot->wal_lsn = lsn;
  snapshot->wal_time_us = MicrosSinceEpoch(env_.clock->Now());
  return Status::OK();
}

Result<std::string> Engine::ArchiveCurrentWal(const ProjectRow& project, const BranchRow& branch) {
  PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(project, branch)));
  if (StandbyFor(project, branch)) {
    // A standby writes no WAL and cannot switch segments: its archive holds each segment the
    // source finished, once received (archive_mode = always); a recovery reaches that far.
    return std::string();
  }
  // A recovery to a time stops at the first commit after it, and fails if the WAL ends first
  // (PostgreSQL 14+: "recovery ended before configured recovery target was reached"). A
  // transaction that takes an XID writes a commit record stamped now, so every target up to now
  // has a commit after it.
  PGB_RETURN_IF_ERROR(conn->Exec("SELECT pg_current_xact_id()"));
  // pg_switch_wal ends the current segment and returns the end of it (a no-op if nothing was
  // written since the last switch: then the start of the current one); pg_walfile_name of that
  // position names the segment just finished either way (docs 9.27.3). The archiver is
  // signalled and copies it.
  PGB_ASSIGN_OR_RETURN(std::string needed,
                       conn->QueryValue("SELECT pg_walfile_name(pg_switch_wal())"));
  std::string path = JoinPath(ArchiveDir(project, branch), needed);
  auto deadline = std::chrono::steady_clock::now() + kArchiveWait;
  while (!PathExists(path)) {
    PGB_RETURN_IF_ERROR(CheckCancelled());
    // A segment inherited from the parent that the parent had archived already (".done" in
    // the clone) is never archived here: pg_stat_archiver says what this server has done.
    PGB_ASSIGN_OR_RETURN(
        std::vector<Row> rows,
        conn->Query("SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') "
                    "FROM pg_stat_archiver"));
    if (!rows.empty() && rows[0][0] && *rows[0][0] >= needed && rows[0][0]->size() == 24) break;
    if (std::chrono::steady_clock::now() > deadline) {
      std::string failed = rows.empty() || !rows[0][1] ? "" : *rows[0][1];
      return Status::Unavailable(fmt::format(
          "WAL segment {} of {} was not archived within {} s{}; see {}", needed,
          Ref(project, branch), kArchiveWait.count(),
          failed.empty() ? "" : fmt::format(" (the archiver last failed on {})", failed),
          LogPath(branch)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return needed;
}

Result<std::vector<Engine::PitrBase>> Engine::PitrBases(const BranchRow& branch) {
  std::vector<PitrBase> bases;
  auto add = [&](const SnapshotRow& s) {
    if (s.wal_lsn.empty() || !s.wal_time_us) return;
    auto lsn = ParseLsn(s.wal_lsn);
    if (!lsn.ok()) return;
    bases.push_back({s, *lsn, FromMicros(*s.wal_time_us)});
  };
  PGB_ASSIGN_OR_RETURN(auto own, catalog_->ListSnapshots(branch.id));
  for (const auto& s : own) {
    if (s.volume == branch.volume) add(s);
  }
  // The snapshot an ordinary branch was cloned from: its WAL continues in this branch's
  // archive. Not for a branch made by point-in-time recovery, whose history before its
  // promotion lies in another branch's archive.
  if (branch.snapshot_id && branch.recovery_target.empty()) {
    auto origin = catalog_->GetSnapshot(*branch.snapshot_id);
    if (origin.ok() && origin->volume != branch.volume) add(*origin);
  }
  std::sort(bases.begin(), bases.end(),
            [](const PitrBase& a, const PitrBase& b) { return a.lsn < b.lsn; });
  return bases;
}

Result<WalInfo> Engine::DescribeWal(const ProjectRow& project, const BranchRow& branch,
                                    bool running) {
  WalInfo info;
  info.branch = Ref(project, branch);
  info.archive_dir = ArchiveDir(project, branch);
  PGB_ASSIGN_OR_RETURN(ArchiveListing listing,
                       ListWalArchive(info.archive_dir, SegmentSize(project)));
  info.segments = listing.segments.size();
  info.bytes = listing.total_bytes;
  if (!listing.segments.empty()) {
    const auto& oldest = listing.segments.front().second;
    const auto& newest = listing.segments.back().second;
    info.oldest_segment = oldest.name;
    info.oldest_at = FormatTimestamp(oldest.mtime);
    info.newest_segment = newest.name;
    info.newest_at = FormatTimestamp(newest.mtime);
  }
  PGB_ASSIGN_OR_RETURN(std::vector<PitrBase> bases, PitrBases(branch));
  info.running = running;
  if (!bases.empty()) {
    const PitrBase& first = bases.front();
    WalWindow w;
    w.from_time = FormatTimestamp(first.time);
    w.from_lsn = FormatLsn(first.lsn);
    w.from_snapshot = first.snapshot.id;
    // A running branch's WAL is archived on demand (PITR switches segments first); a stopped
    // one's ends with what its archive holds.
    if (running) {
      w.to = "now";
    } else if (!listing.segments.empty()) {
      w.to = info.newest_at;
    } else {
      w.to = w.from_time;
    }
    info.window = w;
  }
  return info;
}

Result<std::vector<WalInfo>> Engine::WalInfos(const std::optional<BranchRef>& ref) {
  std::vector<WalInfo> out;
  if (ref) {
    PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref->project));
    PGB_ASSIGN_OR_RETURN(BranchRow branch, LoadBranch(project, ref->branch));
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, branch));
    PGB_ASSIGN_OR_RETURN(WalInfo info, DescribeWal(project, branch, st.running));
    out.push_back(std::move(info));
    return out;
  }
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  for (const auto& p : projects) {
    PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(p.id));
    for (const auto& b : branches) {
      if (!IsSettledState(b.state)) continue;
      PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(p, b));
      PGB_ASSIGN_OR_RETURN(WalInfo info, DescribeWal(p, b, st.running));
      out.push_back(std::move(info));
    }
  }
  return out;
}

Result<WalCleanupReport> Engine::CleanupWal(const BranchRef& ref, int days, bool dry_run) {
  PGB_ASSIGN_OR_RETURN(TimePoint cutoff, DaysBefore(env_.clock->Now(), days));
  CancelScope cancel(env_.cancel);
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("wal cleanup " + ref.ToString()));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true, nullptr));
  PGB_RETURN_IF_ERROR(CheckNoPitrInFlight(b.project, b.row, "clean its archive up"));
  WalCleanupReport report;
  std::string dir = ArchiveDir(b.project, b.row);
  PGB_ASSIGN_OR_RETURN(ArchiveListing listing, ListWalArchive(dir, SegmentSize(b.project)));
  PGB_ASSIGN_OR_RETURN(std::vector<PitrBase> bases, PitrBases(b.row));
  // Recovery from the oldest retained base replays from its segment on (what came before is in
  // the base's own pg_wal): everything from there is needed to reach any point of the window.
  std::optional<uint64_t> keep_from;
  if (!bases.empty()) {
    keep_from = WalSegmentOf(bases.front().lsn, SegmentSize(b.project));
    uint32_t tli = listing.segments.empty() ? 1 : listing.segments.back().first.timeline;
    report.keep_from_segment = WalFileName(tli, *keep_from, SegmentSize(b.project));
    report.oldest_base_snapshot = bases.front().snapshot.id;
  }
  for (const auto& [id, file] : listing.segments) {
    if (file.mtime >= cutoff) continue;
    if (keep_from && id.segno >= *keep_from) {
      ++report.kept_for_window;
      continue;
    }
    report.removed.push_back(file.name);
    report.removed_bytes += file.bytes;
  }
  if (!dry_run) {
    for (const auto& name : report.removed) PGB_RETURN_IF_ERROR(RemoveFile(JoinPath(dir, name)));
  }
  return report;
}

Status Engine::WaitForPromotion(const ProjectRow& project, const BranchRow& branch,
                                const InstanceSpec& spec) {
  auto alive = StillRunningCheck(RuntimeFor(project), spec);
  auto deadline = std::chrono::steady_clock::now() + kRecoveryTimeout;
  std::unique_ptr<Connection> conn;
  for (;;) {
    PGB_RETURN_IF_ERROR(CheckCancelled());
    Status s = alive();
    if (!s.ok() && !s.Is(StatusCode::kUnavailable)) {
      return Status::FailedPrecondition(
          fmt::format("point-in-time recovery failed: {}", s.message()));
    }
    if (s.ok()) {
      if (!conn) {
        auto c = Connection::Open(AdminParams(project, branch));
        if (c.ok()) conn = std::move(*c);
      }
      if (conn) {
        auto in_recovery = conn->QueryValue("SELECT pg_is_in_recovery()");
        if (in_recovery.ok() && *in_recovery == "f") return Status::OK();
        if (!in_recovery.ok()) conn.reset();
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable(fmt::format("recovery of {} did not finish within {} h",
                                             Ref(project, branch), kRecoveryTimeout.count()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<SnapshotRow> Engine::PlanPitr(const ProjectRow& project, const BranchRow& parent,
                                     const RecoveryTarget& target, RecoverySettings* recovery) {
  TimePoint now = env_.clock->Now();
  if (target.kind == RecoveryTarget::Kind::kTime && target.time > now) {
    return Status::InvalidArgument(fmt::format("target {} is in the future (now is {})",
                                               FormatTimestamp(target.time), FormatTimestamp(now)));
  }
  const std::string parent_name = Ref(project, parent);
  // 1. Make the WAL up to now available: a running parent switches to a new segment and we
  //    wait for its archiver, so a target seconds old needs no manual switch.
  PGB_ASSIGN_OR_RETURN(InstanceStatus parent_status, InspectBranch(project, parent));
  if (parent_status.running) {
    PGB_RETURN_IF_ERROR(
        Timed("Archive", [&] { return ArchiveCurrentWal(project, parent).status(); }));
  }
  std::string archive = ArchiveDir(project, parent);
  PGB_ASSIGN_OR_RETURN(ArchiveListing listing, ListWalArchive(archive, SegmentSize(project)));

  // 2. The newest base at or before the target.
  PGB_ASSIGN_OR_RETURN(std::vector<PitrBase> bases, PitrBases(parent));
  if (bases.empty()) {
    return Status::FailedPrecondition(fmt::format(
        "{} has no snapshot to recover from; point-in-time recovery starts from a snapshot "
        "(pgbranch snapshot create {}) and reaches any time after it",
        parent_name, parent_name));
  }
  const PitrBase* base = nullptr;
  for (const auto& candidate : bases) {
    bool before = target.kind == RecoveryTarget::Kind::kTime ? candidate.time <= target.time
                                                             : candidate.lsn <= target.lsn;
    if (before && (!base || candidate.lsn >= base->lsn)) base = &candidate;
  }
  if (!base) {
    const PitrBase& oldest = bases.front();
    return Status::InvalidArgument(fmt::format(
        "target {} is before the oldest point {} can be recovered to: {} (LSN {}, snapshot {})",
        target.text, parent_name, FormatTimestamp(oldest.time), FormatLsn(oldest.lsn),
        oldest.snapshot.id));
  }

  // 3. The archive must reach the target without a gap.
  uint64_t from_segno = WalSegmentOf(base->lsn, SegmentSize(project));
  std::optional<uint64_t> newest;
  if (!listing.segments.empty()) newest = listing.segments.back().first.segno;
  if (target.kind == RecoveryTarget::Kind::kLsn) {
    uint64_t end = newest ? (*newest + 1) * SegmentSize(project) : 0;
    if (target.lsn > base->lsn && (!newest || target.lsn > end)) {
      return Status::InvalidArgument(
          fmt::format("target LSN {} is beyond the archived WAL of {}, which ends at {}",
                      target.text, parent_name, newest ? FormatLsn(end) : base->snapshot.wal_lsn));
    }
  } else if (StandbyFor(project, parent)) {
    // A replica cannot end its segment early: its archive reaches as far as the last segment
    // the source filled and it received.
    TimePoint until = listing.segments.empty() ? base->time : listing.segments.back().second.mtime;
    if (target.time > until) {
      return Status::InvalidArgument(fmt::format(
          "target {} is beyond the archived WAL of {}, which ends at {}: a replica archives a "
          "WAL segment once the source has filled it; choose an earlier time, or a plain "
          "branch (the newest data)",
          target.text, parent_name, FormatTimestamp(until)));
    }
  } else if (!parent_status.running) {
    TimePoint until = listing.segments.empty() ? base->time : listing.segments.back().second.mtime;
    if (target.time > until) {
      return Status::InvalidArgument(fmt::format(
          "target {} is beyond the archived WAL of {}, which ends at {}; {} is stopped: start it "
          "to archive the rest",
          target.text, parent_name, FormatTimestamp(until), parent_name));
    }
  }
  uint64_t to_segno = newest.value_or(from_segno);
  if (target.kind == RecoveryTarget::Kind::kLsn) {
    to_segno = std::min(to_segno, WalSegmentOf(target.lsn, SegmentSize(project)));
  }
  if (newest && to_segno >= from_segno) {
    // The base's pg_wal holds its own segment only up to the snapshot; the rest of that segment
    // and every later one come from the archive.
    if (auto missing = FirstMissingSegment(listing, from_segno, to_segno)) {
      return Status::FailedPrecondition(fmt::format(
          "the WAL archive of {} has a gap: segment {} is missing (in {}); recovery from "
          "snapshot {} cannot pass it",
          parent_name,
          WalFileName(listing.segments.back().first.timeline, *missing, SegmentSize(project)),
          archive, base->snapshot.id));
    }
  }

  recovery->restore_dir = archive;
  if (target.kind == RecoveryTarget::Kind::kTime) {
    recovery->target_time = FormatRecoveryTargetTime(target.time);
  } else {
    recovery->target_lsn = FormatLsn(target.lsn);
  }
  return base->snapshot;
}

}  // namespace pgb
