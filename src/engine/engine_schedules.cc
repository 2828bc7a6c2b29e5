// Snapshot schedules (`pgbranch schedule`): stored in the catalog, run by `serve`.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/cron.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

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
  auto cron = ParseCron(options.snapshot_cron);
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
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared(what));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/false, nullptr));
  ScheduleRow row;
  row.branch_id = b.row.id;
  row.kind = "snapshot";
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
  PGB_ASSIGN_OR_RETURN(bool removed, catalog_->DeleteSchedule(id));
  if (!removed) {
    return Status::NotFound(fmt::format("schedule {} does not exist (pgbranch schedule list)", id));
  }
  return Status::OK();
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
    auto snap = CreateSnapshotOf(*ref, fmt::format("schedule {} at {}", row.id, run.slot),
                                 /*fast=*/false, row.id);
    run.ok = snap.ok();
    run.result = snap.ok() ? fmt::format("snapshot {}", snap->id) : snap.status().message();
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
