// The engine's snapshots, renames, branch history and audit trail.

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/bytes.h"
#include "common/fs.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

constexpr size_t kMaxLabelLength = 200;

Status ValidateLabel(const std::string& label) {
  if (label.size() > kMaxLabelLength) {
    return Status::InvalidArgument(
        fmt::format("the label has {} bytes; at most {}", label.size(), kMaxLabelLength));
  }
  // Labels are printed in tables and JSON: invalid UTF-8 would make JSON output throw, and
  // control or bidi characters would steer the terminal.
  if (!IsValidUtf8(label)) {
    return Status::InvalidArgument(
        fmt::format("the label {} is not valid UTF-8", QuoteForDisplay(label)));
  }
  if (!IsPrintableText(label)) {
    return Status::InvalidArgument(
        fmt::format("the label {} has a control character", QuoteForDisplay(label)));
  }
  return Status::OK();
}

}  // namespace

Result<SnapshotInfo> Engine::DescribeSnapshot(const SnapshotRow& snap, bool with_sizes) {
  SnapshotInfo info;
  info.id = snap.id;
  info.label = snap.label;
  info.implicit = snap.implicit;
  info.created_at = snap.created_at;
  info.name = snap.name;
  PGB_ASSIGN_OR_RETURN(BranchRow branch, catalog_->GetBranch(snap.branch_id));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(branch.project_id));
  info.branch = Ref(project, branch);
  PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(snap.id));
  for (const auto& u : users) info.dependents.push_back(Ref(project, u));
  if (with_sizes) {
    auto pool = RequirePool(false);
    if (pool.ok()) {
      auto space = (*pool)->SnapshotSpace(snap.volume, snap.name);
      if (space.ok()) {
        info.size_bytes = space->exclusive_bytes;
        info.logical_bytes = space->logical_bytes;
      }
    }
  }
  return info;
}

Result<SnapshotInfo> Engine::CreateSnapshot(const BranchRef& ref, const std::string& label,
                                            bool fast) {
  PGB_RETURN_IF_ERROR(ValidateLabel(label));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true));
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(true));
  PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
  UndoStack undo;
  SnapshotRow snap;
  Status s = TakeSnapshot(b.project, b.row, fast, label, /*implicit=*/false, undo, &snap);
  if (s.ok()) {
    auto id = catalog_->InsertSnapshot(snap);
    s = id.status();
    if (id.ok()) snap.id = *id;
  }
  if (!s.ok()) return undo.Rollback(s);
  undo.Commit();
  return DescribeSnapshot(snap, /*with_sizes=*/true);
}

Result<std::vector<SnapshotInfo>> Engine::ListSnapshots(const std::optional<BranchRef>& ref) {
  std::optional<int64_t> branch_id;
  if (ref) {
    PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref->project));
    PGB_ASSIGN_OR_RETURN(BranchRow branch, LoadBranch(project, ref->branch));
    branch_id = branch.id;
  }
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListSnapshots(branch_id));
  std::vector<SnapshotInfo> out;
  for (const auto& row : rows) {
    PGB_ASSIGN_OR_RETURN(SnapshotInfo info, DescribeSnapshot(row, /*with_sizes=*/true));
    out.push_back(std::move(info));
  }
  return out;
}

Result<SnapshotInfo> Engine::GetSnapshot(int64_t id) {
  auto row = catalog_->GetSnapshot(id);
  if (!row.ok()) {
    return Status::NotFound(
        fmt::format("snapshot {} does not exist; see 'pgbranch snapshot list'", id));
  }
  return DescribeSnapshot(*row, /*with_sizes=*/true);
}

Status Engine::DeleteSnapshot(int64_t id, bool recursive) {
  PGB_ASSIGN_OR_RETURN(SnapshotInfo info, GetSnapshot(id));
  PGB_ASSIGN_OR_RETURN(SnapshotRow snap, catalog_->GetSnapshot(id));
  PGB_ASSIGN_OR_RETURN(BranchRow of, catalog_->GetBranch(snap.branch_id));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(of.project_id));
  PGB_ASSIGN_OR_RETURN(auto lock, LockProject(project));
  PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(id));
  if (!users.empty() && !recursive) {
    return Status::FailedPrecondition(
        fmt::format("snapshot {} has branches made from it ({}); delete them first or use "
                    "--recursive",
                    id, JoinNames(project, users)));
  }
  for (const auto& user : users) {
    PGB_ASSIGN_OR_RETURN(auto below, Descendants(user));
    for (const auto& b : below) PGB_RETURN_IF_ERROR(DestroyBranch(project, b));
    PGB_RETURN_IF_ERROR(DestroyBranch(project, user));
  }
  // Destroying the last branch made from an implicit snapshot takes the snapshot with it.
  if (catalog_->GetSnapshot(id).ok()) PGB_RETURN_IF_ERROR(DestroySnapshotAndRow(snap));
  return SweepImplicitSnapshots(project);
}

Result<CleanupReport> Engine::CleanupSnapshots(const std::optional<BranchRef>& ref, int days,
                                               bool dry_run) {
  PGB_ASSIGN_OR_RETURN(TimePoint cutoff, DaysBefore(env_.clock->Now(), days));
  std::vector<ProjectRow> projects;
  std::optional<int64_t> only_branch;
  if (ref) {
    PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref->project));
    PGB_ASSIGN_OR_RETURN(BranchRow branch, LoadBranch(project, ref->branch));
    only_branch = branch.id;
    projects.push_back(project);
  } else {
    PGB_ASSIGN_OR_RETURN(projects, catalog_->ListProjects());
  }
  CleanupReport report;
  for (const auto& project : projects) {
    PGB_ASSIGN_OR_RETURN(auto lock, LockProject(project));
    PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
    for (const auto& branch : branches) {
      if (only_branch && branch.id != *only_branch) continue;
      PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(branch.id));
      for (const auto& snap : snapshots) {
        PGB_ASSIGN_OR_RETURN(TimePoint created, ParseTimestamp(snap.created_at));
        if (created >= cutoff) continue;
        PGB_ASSIGN_OR_RETURN(SnapshotInfo info, DescribeSnapshot(snap, /*with_sizes=*/true));
        if (!info.dependents.empty()) {
          report.kept.emplace_back(
              info,
              fmt::format("{} {} made from it", info.dependents.size() == 1 ? "branch" : "branches",
                          fmt::join(info.dependents, ", ")));
          continue;
        }
        if (!dry_run) PGB_RETURN_IF_ERROR(DestroySnapshotAndRow(snap));
        report.removed.push_back(std::move(info));
      }
    }
    if (!dry_run) PGB_RETURN_IF_ERROR(SweepImplicitSnapshots(project));
  }
  return report;
}

Result<BranchInfo> Engine::RenameBranch(const BranchRef& ref, const std::string& new_name) {
  PGB_RETURN_IF_ERROR(ValidateName("branch", new_name));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true));
  if (!b.row.parent_id) {
    return Status::FailedPrecondition(
        fmt::format("{} is the project's root and keeps the name {}", ref.ToString(), b.row.name));
  }
  PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindBranch(b.project.id, new_name));
  if (existing) {
    return Status::AlreadyExists(
        fmt::format("branch {}/{} already exists", b.project.name, new_name));
  }
  std::string old_name = b.row.name;
  PGB_ASSIGN_OR_RETURN(InstanceSpec old_spec, Spec(b.project, b.row));
  b.row.name = new_name;
  PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
    PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(b.row));
    return catalog_->InsertEvent(
        Event(b.row, "renamed", fmt::format("renamed from {}/{}", b.project.name, old_name)));
  }));
  // cluster_name (in `ps` and the server log) follows at the next start.
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(b.project, b.row));
  PGB_RETURN_IF_ERROR(RuntimeFor(b.project).Rename(old_spec, spec));
  std::optional<FileOwner> owner;
  if (spec.os_user) owner = FileOwner{spec.os_user->uid, spec.os_user->gid};
  PGB_RETURN_IF_ERROR(WriteInstanceConfig(spec.data_dir, ConfigFor(b.project, b.row), owner));
  return Describe(b.project, b.row, /*with_sizes=*/false);
}

Result<ProjectInfo> Engine::RenameProject(const std::string& name, const std::string& new_name) {
  PGB_RETURN_IF_ERROR(ValidateName("project", new_name));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(name));
  PGB_ASSIGN_OR_RETURN(auto lock, LockProject(project));
  PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindProject(new_name));
  if (existing) return Status::AlreadyExists(fmt::format("project {} already exists", new_name));
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
  // The WAL archives move with the name; running servers reload their archive directory
  // (basic_archive.archive_directory takes effect on reload). Until they do, an archive
  // attempt fails and the archiver retries it.
  std::string old_wal = JoinPath(env_.home, fmt::format("wal/{}", name));
  std::string new_wal = JoinPath(env_.home, fmt::format("wal/{}", new_name));
  if (PathExists(old_wal) && ::rename(old_wal.c_str(), new_wal.c_str()) != 0) {
    return Status::IOError(fmt::format("rename {} to {}: {}", old_wal, new_wal, strerror(errno)));
  }
  Status renamed = catalog_->Transaction([&]() -> Status {
    PGB_RETURN_IF_ERROR(catalog_->UpdateProjectName(project.id, new_name));
    for (const auto& b : branches) {
      PGB_RETURN_IF_ERROR(catalog_->InsertEvent(
          Event(b, "renamed", fmt::format("renamed from {}/{}", name, b.name))));
    }
    return Status::OK();
  });
  if (!renamed.ok()) {
    if (PathExists(new_wal)) (void)::rename(new_wal.c_str(), old_wal.c_str());
    return renamed;
  }
  ProjectRow old_project = project;
  project.name = new_name;
  for (const auto& b : branches) {
    PGB_ASSIGN_OR_RETURN(InstanceSpec old_spec, Spec(old_project, b));
    PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, b));
    PGB_RETURN_IF_ERROR(RuntimeFor(project).Rename(old_spec, spec));
    std::optional<FileOwner> owner;
    if (spec.os_user) owner = FileOwner{spec.os_user->uid, spec.os_user->gid};
    PGB_RETURN_IF_ERROR(WriteInstanceConfig(spec.data_dir, ConfigFor(project, b), owner));
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, RuntimeFor(project).Inspect(spec));
    if (st.running && st.ready) {
      auto conn = Connection::Open(AdminParams(project, b));
      Status reloaded = conn.ok() ? (*conn)->Exec("SELECT pg_reload_conf()") : conn.status();
      if (!reloaded.ok()) Note(fmt::format("{} not reloaded: {}", Ref(project, b), reloaded.message()));
    }
  }
  return GetProject(new_name);
}

Result<std::vector<LogEntry>> Engine::BranchLog(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow branch, LoadBranch(project, ref.branch));
  std::vector<LogEntry> log;
  PGB_ASSIGN_OR_RETURN(auto events, catalog_->ListEvents(branch.id));
  for (const auto& e : events) log.push_back({e.at, e.kind, e.detail});
  if (events.empty() || events.front().kind != "created") {
    // main, or a branch from before the history was kept.
    log.push_back({branch.created_at, "created",
                   branch.parent_id ? "created" : "created with the project (initdb)"});
  }
  PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(branch.id));
  for (const auto& s : snapshots) {
    std::string label = s.label.empty() ? "" : fmt::format(" \"{}\"", s.label);
    log.push_back({s.created_at, "snapshot",
                   fmt::format("snapshot {}{}{}", s.id, label, s.implicit ? " (implicit)" : "")});
  }
  PGB_ASSIGN_OR_RETURN(auto children, catalog_->ChildBranches(branch.id));
  for (const auto& c : children) {
    std::string from = c.snapshot_id ? fmt::format(" from snapshot {}", *c.snapshot_id) : "";
    log.push_back({c.created_at, "branch", fmt::format("branch {} made{}", Ref(project, c), from)});
  }
  std::stable_sort(log.begin(), log.end(),
                   [](const LogEntry& a, const LogEntry& b) { return a.at > b.at; });
  return log;
}

Result<std::vector<AuditRow>> Engine::Audit(int limit) {
  if (limit <= 0) return Status::InvalidArgument("--limit must be 1 or more");
  PGB_RETURN_IF_ERROR(FlushAudit());
  return catalog_->ListAudit(limit);
}

}  // namespace pgb
