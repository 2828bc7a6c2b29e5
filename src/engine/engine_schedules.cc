// Snapshot and refresh schedules (`pgbranch schedule`): stored in the catalog, run by `serve`.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/cron.h"
#include "common/fs.h"
#include "common/random.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "pg/source.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

constexpr int64_t kMaxKeep = 100000;
constexpr int64_t kMaxAgeSeconds = int64_t{kMaxDays} * 86400;

}  // namespace

Result<ScheduleInfo> Engine::DescribeSchedule(const ScheduleRow& row) {
  ScheduleInfo info;
  info.id = row.id;
  PGB_ASSIGN_OR_RETURN(BranchRow branch, catalog_->GetBranch(row.branch_id));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(branch.project_id));
  info.branch = Ref(project, branch);
  info.kind = row.kind;
  info.cron = row.cron;
  if (row.kind == "refresh") {
    nlohmann::json source = nlohmann::json::parse(row.source, nullptr, false);
    if (source.is_object() && source.contains("dump")) {
      info.source = "dump " + source.value("dump", "");
    } else if (source.is_object()) {
      info.source = fmt::format("server {}{}", source.value("server", ""),
                                source.value("logical", false) ? " (logical)" : "");
    }
  }
  info.keep = row.keep;
  info.max_age_s = row.max_age_s;
  info.created_at = row.created_at;
  info.last_run = row.last_slot;
  info.last_result = row.last_result;
  auto cron = ParseCron(row.cron);
  if (cron.ok()) {
    auto next = cron->Next(env_.clock->Now());
    if (next.ok()) info.next_run = FormatTimestamp(*next);
  }
  return info;
}

Result<ScheduleInfo> Engine::AddSchedule(const BranchRef& ref, const ScheduleOptions& options) {
  std::string what = "schedule add " + ref.ToString();
  bool refresh = !options.refresh_cron.empty();
  if (refresh == !options.snapshot_cron.empty()) {
    return Status::InvalidArgument("give --snapshot CRON or --refresh CRON");
  }
  if (!refresh && (!options.source.from_dump.empty() || !options.source.from_server.empty() ||
                   !options.source.transforms.empty())) {
    return Status::InvalidArgument(
        "--from-dump, --from-server and --transform say what a --refresh schedule loads");
  }
  if (refresh && (options.keep || options.max_age_s)) {
    return Status::InvalidArgument(
        "--keep and --max-age are a snapshot schedule's; a refresh keeps every snapshot a "
        "branch needs");
  }
  auto cron = ParseCron(refresh ? options.refresh_cron : options.snapshot_cron);
  if (!cron.ok()) return cron.status();
  auto next = cron->Next(env_.clock->Now());
  if (!next.ok()) return next.status();
  if (options.keep && (*options.keep < 1 || *options.keep > kMaxKeep)) {
    return Status::InvalidArgument(fmt::format("--keep must be from 1 to {}", kMaxKeep));
  }
  if (options.max_age_s && (*options.max_age_s < 1 || *options.max_age_s > kMaxAgeSeconds)) {
    return Status::InvalidArgument(
        fmt::format("--max-age must be from 1 second to {} days", kMaxDays));
  }
  std::string source;
  if (refresh) {
    PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
    if (ref.branch != kMainBranch) {
      return Status::InvalidArgument(
          fmt::format("a refresh schedule refreshes the project's main; give {} or {}/main",
                      ref.project, ref.project));
    }
    if (project.replica) {
      return Status::FailedPrecondition(
          fmt::format("{}/main is a replica, always as current as its source: it needs no refresh",
                      ref.project));
    }
    if (!project.adopted_from.empty()) {
      return Status::FailedPrecondition(
          fmt::format("project {} is {} adopted in place; a refresh would replace that directory",
                      ref.project, project.adopted_from));
    }
    PGB_ASSIGN_OR_RETURN(source, RefreshScheduleSource(project, options));
  }
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared(what));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/false, nullptr));
  ScheduleRow row;
  row.branch_id = b.row.id;
  row.kind = refresh ? "refresh" : "snapshot";
  row.source = source;
  row.cron = cron->text();
  row.keep = options.keep;
  row.max_age_s = options.max_age_s;
  row.created_at = FormatTimestamp(env_.clock->Now());
  PGB_ASSIGN_OR_RETURN(row.id, catalog_->InsertSchedule(row));
  return DescribeSchedule(row);
}

Result<std::vector<ScheduleInfo>> Engine::ListSchedules(const std::string& project) {
  std::optional<int64_t> project_id;
  if (!project.empty()) {
    PGB_ASSIGN_OR_RETURN(ProjectRow p, LoadProject(project));
    project_id = p.id;
  }
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListSchedules());
  std::vector<ScheduleInfo> out;
  for (const auto& row : rows) {
    auto branch = catalog_->GetBranch(row.branch_id);
    if (!branch.ok() || (project_id && branch->project_id != *project_id)) continue;
    PGB_ASSIGN_OR_RETURN(ScheduleInfo info, DescribeSchedule(row));
    out.push_back(std::move(info));
  }
  return out;
}

Status Engine::RemoveSchedule(int64_t id) {
  auto row = catalog_->GetSchedule(id);
  PGB_ASSIGN_OR_RETURN(bool removed, catalog_->DeleteSchedule(id));
  if (!removed) {
    return Status::NotFound(fmt::format("schedule {} does not exist (pgbranch schedule list)", id));
  }
  if (row.ok() && row->kind == "refresh") {
    nlohmann::json source = nlohmann::json::parse(row->source, nullptr, false);
    if (source.is_object() && source.contains("passfile")) {
      PGB_RETURN_IF_ERROR(RemoveFile(source.value("passfile", "")));
    }
  }
  return Status::OK();
}

std::string Engine::ScheduleSecretsDir(const ProjectRow& project) const {
  return JoinPath(env_.home, fmt::format("sources/schedules/{}", project.id));
}

Result<std::string> Engine::RefreshScheduleSource(const ProjectRow& project,
                                                  const ScheduleOptions& options) {
  const ProjectCreateOptions& o = options.source;
  if (o.from_dump.empty() == o.from_server.empty()) {
    return Status::InvalidArgument(
        "a refresh schedule loads --from-dump FILE or --from-server URI; give one");
  }
  if (o.logical && o.from_server.empty()) {
    return Status::InvalidArgument("--logical dumps the server of --from-server; give both");
  }
  nlohmann::json source = nlohmann::json::object();
  nlohmann::json transforms = nlohmann::json::array();
  for (const std::string& file : o.transforms) {
    PGB_ASSIGN_OR_RETURN(std::string path, AbsolutePath(file));
    transforms.push_back(path);
  }
  PGB_RETURN_IF_ERROR(ReadTransforms(o.transforms).status());
  source["transforms"] = transforms;
  if (!o.from_dump.empty()) {
    PGB_ASSIGN_OR_RETURN(std::string path, AbsolutePath(o.from_dump));
    if (!PathExists(path)) {
      return Status::NotFound(fmt::format("{} does not exist (the dump each run loads)", path));
    }
    source["dump"] = path;
    return source.dump();
  }
  if (!o.logical && IsContainerRuntime(project.runtime)) {
    return Status::InvalidArgument(
        "--from-server copies into native projects; a container project refreshes with "
        "--from-dump or --from-server --logical");
  }
  SourceServer server;
  PGB_RETURN_IF_ERROR(Timed("Source", [&]() -> Status {
    PGB_ASSIGN_OR_RETURN(server,
                         ProbeSourceServer(o.from_server, "", o.source_passfile, !o.logical));
    return Status::OK();
  }));
  // The password for the runs to come: in a private file, never in the catalog.
  std::string dir = ScheduleSecretsDir(project);
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "sources"), 0711));
  PGB_RETURN_IF_ERROR(EnsureDir(dir, 0700));
  std::string passfile = JoinPath(dir, RandomPassword(16) + ".pgpass");
  PGB_RETURN_IF_ERROR(WriteFileAtomic(passfile, PassfileEntry(server.password), 0600));
  source["server"] = FormatConninfo(server.params);
  source["logical"] = o.logical;
  source["passfile"] = passfile;
  return source.dump();
}

Result<std::string> Engine::RunRefreshSchedule(const ScheduleRow& row, const std::string& project) {
  nlohmann::json source = nlohmann::json::parse(row.source, nullptr, false);
  if (!source.is_object()) {
    return Status::Internal(fmt::format("schedule {} has no readable source", row.id));
  }
  ProjectCreateOptions o;
  o.from_dump = source.value("dump", "");
  o.from_server = source.value("server", "");
  o.logical = source.value("logical", false);
  o.source_passfile = source.value("passfile", "");
  if (source.contains("transforms") && source["transforms"].is_array()) {
    for (const auto& t : source["transforms"]) {
      if (t.is_string()) o.transforms.push_back(t.get<std::string>());
    }
  }
  PGB_ASSIGN_OR_RETURN(BranchInfo main, RefreshProject(project, o));
  return fmt::format("refreshed {}/{}", main.project, main.name);
}

Result<std::vector<ScheduleRun>> Engine::RunDueSchedules() {
  TimePoint now = env_.clock->Now();
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListSchedules());
  std::vector<ScheduleRun> out;
  for (const auto& row : rows) {
    auto cron = ParseCron(row.cron);
    auto created = ParseTimestamp(row.created_at);
    if (!cron.ok() || !created.ok()) continue;  // AddSchedule wrote both: never happens
    std::optional<TimePoint> last;
    if (!row.last_slot.empty()) {
      auto t = ParseTimestamp(row.last_slot);
      if (t.ok()) last = *t;
    }
    std::optional<TimePoint> slot = DueRun(*cron, last, *created, now);
    if (!slot) continue;
    auto described = DescribeSchedule(row);
    if (!described.ok()) continue;  // its branch is going
    ScheduleRun run;
    run.schedule_id = row.id;
    run.branch = described->branch;
    run.slot = FormatTimestamp(*slot);
    auto ref = ParseBranchRef(run.branch);
    if (!ref.ok()) continue;
    CommandScope command(fmt::format("serve: schedule {} ({} {})", row.id, row.cron, run.branch));
    if (row.kind == "refresh") {
      auto refreshed = RunRefreshSchedule(row, ref->project);
      run.ok = refreshed.ok();
      run.result = refreshed.ok() ? *refreshed : refreshed.status().message();
    } else {
      auto snap = CreateSnapshotOf(*ref, fmt::format("schedule {} at {}", row.id, run.slot),
                                   /*fast=*/false, row.id);
      run.ok = snap.ok();
      run.result = snap.ok() ? fmt::format("snapshot {}", snap->id) : snap.status().message();
    }
    Status recorded = catalog_->UpdateScheduleRun(row.id, run.slot, run.result);
    if (!recorded.ok()) {
      spdlog::warn("schedule {}: record its run: {}", row.id, recorded.message());
    }
    if (run.ok) ApplyRetention(row, now, &run);
    out.push_back(std::move(run));
  }
  return out;
}

void Engine::ApplyRetention(const ScheduleRow& row, TimePoint now, ScheduleRun* run) {
  if (!row.keep && !row.max_age_s) return;
  auto snaps = catalog_->ListSnapshots(row.branch_id);
  if (!snaps.ok()) return;
  std::vector<SnapshotRow> mine;
  for (const auto& s : *snaps) {
    if (s.schedule_id && *s.schedule_id == row.id) mine.push_back(s);
  }
  std::sort(mine.begin(), mine.end(), [](const SnapshotRow& a, const SnapshotRow& b) {
    return a.id > b.id;
  });  // newest first
  for (size_t i = 0; i < mine.size(); ++i) {
    bool too_many = row.keep && i >= static_cast<size_t>(*row.keep);
    bool too_old = false;
    if (row.max_age_s) {
      auto at = ParseTimestamp(mine[i].created_at);
      too_old = at.ok() && SecondsBetween(*at, now).count() > *row.max_age_s;
    }
    if (!too_many && !too_old) continue;
    auto users = catalog_->BranchesFromSnapshot(mine[i].id);
    if (users.ok() && !users->empty()) {
      auto branch = catalog_->GetBranch(row.branch_id);
      auto project = branch.ok() ? catalog_->GetProject(branch->project_id)
                                 : Result<ProjectRow>(branch.status());
      run->kept.push_back(fmt::format(
          "snapshot {}: {} made from it", mine[i].id,
          project.ok() ? JoinNames(*project, *users) : fmt::format("{} branches", users->size())));
      continue;
    }
    Status s = DeleteSnapshot(mine[i].id, /*recursive=*/false);
    if (s.ok()) {
      run->removed.push_back(mine[i].id);
    } else {
      run->kept.push_back(fmt::format("snapshot {}: {}", mine[i].id, s.message()));
    }
  }
}

}  // namespace pgb
