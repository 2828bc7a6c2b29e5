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
  return CreateSnapshotOf(ref, label, fast, std::nullopt);
}

Result<SnapshotInfo> Engine::CreateSnapshotOf(const BranchRef& ref, const std::string& label,
                                              bool fast, std::optional<int64_t> schedule_id) {
  PGB_RETURN_IF_ERROR(ValidateLabel(label));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("snapshot create " + ref.ToString()));
  SnapshotRow snap;
  PGB_RETURN_IF_ERROR(RunOperation(
      "snapshot.create", ref.ToString(), std::nullopt, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true, &op));
        PGB_RETURN_IF_ERROR(op.SetIds(b.project.id, b.row.id));
        PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
        PGB_RETURN_IF_ERROR(op.Step("snapshot"));
        PGB_RETURN_IF_ERROR(
            TakeSnapshot(b.project, b.row, fast, label, /*implicit=*/false, op, &snap));
        PGB_RETURN_IF_ERROR(op.Step("commit"));
        snap.schedule_id = schedule_id;
        return catalog_->Transaction([&]() -> Status {
          PGB_ASSIGN_OR_RETURN(snap.id, catalog_->InsertSnapshot(snap));
          return op.MarkCommitted({});
        });
      }));
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
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared(fmt::format("snapshot delete {}", id)));
  return RunOperation(
      "snapshot.delete", fmt::format("snapshot {}", id), project.id, of.id,
      [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
        auto again = catalog_->GetSnapshot(id);
        if (!again.ok()) return Status::NotFound(fmt::format("snapshot {} does not exist", id));
        PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(id));
        if (!users.empty() && !recursive) {
          return Status::FailedPrecondition(
              fmt::format("snapshot {} has branches made from it ({}); delete them first or use "
                          "--recursive",
                          id, JoinNames(project, users)));
        }
        std::vector<BranchRow> order;
        for (const auto& user : users) {
          PGB_ASSIGN_OR_RETURN(auto below, Descendants(user));
          order.insert(order.end(), below.begin(), below.end());
          order.push_back(user);
        }
        Action destroy;
        destroy.kind = "destroy-snapshot";
        destroy.volume = snap.volume;
        destroy.snapshot = snap.name;
        destroy.text = fmt::format("destroy snapshot {}", id);
        // Its branch's lock too: a reset to this snapshot clones it under that lock.
        return MarkForDeletion(project, order, {snap.branch_id}, op, {destroy});
      });
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
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("snapshot cleanup"));
  CleanupReport report;
  for (const auto& project : projects) {
    PGB_RETURN_IF_ERROR(RunOperation(
        "snapshot.cleanup", project.name, project.id, only_branch, [&](Operation& op) -> Status {
          PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
          PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
          std::vector<Action> finish;
          for (const auto& branch : branches) {
            if (only_branch && branch.id != *only_branch) continue;
            PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(branch.id));
            for (const auto& snap : snapshots) {
              PGB_ASSIGN_OR_RETURN(TimePoint created, ParseTimestamp(snap.created_at));
              if (created >= cutoff) continue;
              PGB_ASSIGN_OR_RETURN(SnapshotInfo info, DescribeSnapshot(snap, /*with_sizes=*/true));
              if (!info.dependents.empty()) {
                report.kept.emplace_back(
                    info, fmt::format("{} {} made from it",
                                      info.dependents.size() == 1 ? "branch" : "branches",
                                      fmt::join(info.dependents, ", ")));
                continue;
              }
              Action destroy;
              destroy.kind = "destroy-snapshot";
              destroy.volume = snap.volume;
              destroy.snapshot = snap.name;
              destroy.text = fmt::format("destroy snapshot {}", snap.id);
              finish.push_back(std::move(destroy));
              report.removed.push_back(std::move(info));
            }
          }
          if (dry_run) return Status::OK();
          finish.push_back(SweepSnapshotsAction(project.id, project.name));
          PGB_RETURN_IF_ERROR(op.Step("commit"));
          PGB_RETURN_IF_ERROR(catalog_->Transaction([&] { return op.MarkCommitted(finish); }));
          // Under the project lock, so no create picks one of them meanwhile.
          if (op.Step("finish").ok()) {
            Status ignored = op.RunJournal([this](const Action& a) { return RunAction(a); });
            (void)ignored;
          }
          return Status::OK();
        }));
  }
  return report;
}

Result<BranchInfo> Engine::RenameBranch(const BranchRef& ref, const std::string& new_name) {
  PGB_RETURN_IF_ERROR(ValidateName("branch", new_name));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("branch rename " + ref.ToString()));
  std::optional<BranchInfo> info;
  PGB_RETURN_IF_ERROR(RunOperation(
      "branch.rename", ref.ToString(), std::nullopt, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true, &op));
        PGB_RETURN_IF_ERROR(op.SetIds(b.project.id, b.row.id));
        if (!b.row.parent_id) {
          return Status::FailedPrecondition(fmt::format(
              "{} is the project's root and keeps the name {}", ref.ToString(), b.row.name));
        }
        PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindBranch(b.project.id, new_name));
        if (existing) {
          return Status::AlreadyExists(
              fmt::format("branch {}/{} already exists", b.project.name, new_name));
        }
        std::string old_name = b.row.name;
        PGB_ASSIGN_OR_RETURN(InstanceSpec old_spec, Spec(b.project, b.row));
        b.row.name = new_name;
        // cluster_name (in `ps` and the server log) follows at the next start; a container is
        // renamed and pgbranch.conf rewritten right after the commit, under the branch's lock.
        Action rename;
        rename.kind = "rename-instance";
        rename.project_id = b.project.id;
        rename.branch_id = b.row.id;
        rename.text = old_spec.container_name;
        PGB_RETURN_IF_ERROR(op.Step("commit"));
        PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
          PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(b.row));
          PGB_RETURN_IF_ERROR(catalog_->InsertEvent(Event(
              b.row, "renamed", fmt::format("renamed from {}/{}", b.project.name, old_name))));
          return op.MarkCommitted({rename});
        }));
        // Finished under the branch's lock; what fails here stays in the journal, which the
        // operation's end reports and doctor completes (the rename itself is done).
        if (op.Step("finish").ok()) {
          Status ignored = op.RunJournal([this](const Action& a) { return RunAction(a); });
          (void)ignored;
        }
        PGB_ASSIGN_OR_RETURN(info, Describe(b.project, b.row, SizeMode::kNone));
        return Status::OK();
      }));
  return std::move(*info);
}

Result<ProjectInfo> Engine::RenameProject(const std::string& name, const std::string& new_name) {
  PGB_RETURN_IF_ERROR(ValidateName("project", new_name));
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(name));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("project rename " + name));
  PGB_RETURN_IF_ERROR(
      RunOperation("project.rename", name, project.id, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
        PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindProject(new_name));
        if (existing)
          return Status::AlreadyExists(fmt::format("project {} already exists", new_name));
        PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
        // Each instance follows the new name: pgbranch.conf rewritten (its metadata line names
        // the project) and a running server reloaded. In a home named by names (kNaming) the
        // WAL archives move with the name first and a container is renamed
        // (basic_archive.archive_directory takes effect on reload; until then an archive
        // attempt fails and the archiver retries).
        std::vector<Action> finish;
        if (!by_ids_) {
          Action move;
          move.kind = "move-dir";
          move.from = JoinPath(env_.home, fmt::format("wal/{}", name));
          move.path = JoinPath(env_.home, fmt::format("wal/{}", new_name));
          move.text = fmt::format("move the WAL archives of {} to {}", name, new_name);
          finish.push_back(move);
        }
        for (const auto& b : branches) {
          PGB_ASSIGN_OR_RETURN(InstanceSpec old_spec, Spec(project, b));
          Action rename;
          rename.kind = "rename-instance";
          rename.project_id = project.id;
          rename.branch_id = b.id;
          rename.text = old_spec.container_name;
          finish.push_back(std::move(rename));
        }
        PGB_RETURN_IF_ERROR(op.Step("commit"));
        PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
          PGB_RETURN_IF_ERROR(catalog_->UpdateProjectName(project.id, new_name));
          for (const auto& b : branches) {
            PGB_RETURN_IF_ERROR(catalog_->InsertEvent(
                Event(b, "renamed", fmt::format("renamed from {}/{}", name, b.name))));
          }
          return op.MarkCommitted(std::move(finish));
        }));
        if (op.Step("finish").ok()) {
          Status ignored = op.RunJournal([this](const Action& a) { return RunAction(a); });
          (void)ignored;
        }
        return Status::OK();
      }));
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
