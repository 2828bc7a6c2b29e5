// The engine's operations machinery: running an operation with its record and journal, the
// journal's actions, locking, and the destroy paths that actions share with the operations.

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "common/failpoint.h"
#include "common/fs.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "runtime/container.h"
#include "storage/tree_copy.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace internal {
namespace {
thread_local std::string t_command;
}  // namespace

CommandScope::CommandScope(std::string command) : previous_(std::exchange(t_command, command)) {}
CommandScope::~CommandScope() { t_command = std::move(previous_); }
const std::string& CommandScope::Current() { return t_command; }

}  // namespace internal

void Engine::SetCommand(std::string command) {
  {
    MutexLock lock(command_mu_);
    command_ = command;
  }
  audit_.SetCommand(std::move(command));
}

std::string Engine::Holder(const Operation* op, const std::string& what) const {
  if (op) return op->HolderText();
  return fmt::format("{} by pid {}", what, ::getpid());
}

Result<LockHandle> Engine::HomeShared(const std::string& holder) {
  return locks_->Home(LockMode::kShared, holder);
}

Result<LockHandle> Engine::LockProjectOf(const ProjectRow& project, const Operation* op) {
  return locks_->Project(project.id, project.name, Holder(op, "work on " + project.name));
}

Result<std::vector<LockHandle>> Engine::LockBranches(const ProjectRow& project,
                                                     std::vector<int64_t> ids,
                                                     const Operation* op) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  std::vector<LockHandle> held;
  for (int64_t id : ids) {
    auto row = catalog_->GetBranch(id);
    std::string what = row.ok() ? Ref(project, *row) : fmt::format("branch {}", id);
    PGB_ASSIGN_OR_RETURN(LockHandle lock, locks_->Branch(id, what, Holder(op, "work on " + what)));
    held.push_back(std::move(lock));
  }
  return held;
}

Result<Engine::LockedBranch> Engine::LockBranch(const BranchRef& ref, bool require_settled,
                                                const Operation* op) {
  LockedBranch b;
  PGB_ASSIGN_OR_RETURN(b.project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow found, LoadBranch(b.project, ref.branch));
  PGB_ASSIGN_OR_RETURN(
      b.lock, locks_->Branch(found.id, ref.ToString(), Holder(op, "work on " + ref.ToString())));
  // Read again under the lock: it may have been deleted or renamed while we waited.
  auto row = catalog_->GetBranch(found.id);
  if (!row.ok() || row->name != ref.branch) {
    return Status::NotFound(fmt::format("branch {} does not exist any more", ref.ToString()));
  }
  b.row = std::move(*row);
  if (require_settled && !IsSettledState(b.row.state)) {
    return Status::FailedPrecondition(fmt::format("{} is {}", ref.ToString(), b.row.state));
  }
  return b;
}

Status Engine::RunOperation(const std::string& kind, const std::string& target,
                            std::optional<int64_t> project_id, std::optional<int64_t> branch_id,
                            const std::function<Status(Operation&)>& body) {
  CancelScope cancel(env_.cancel);
  std::string command = CommandScope::Current();
  if (command.empty()) {
    MutexLock lock(command_mu_);
    command = command_.empty() ? fmt::format("{} {}", kind, target) : command_;
  }
  PGB_ASSIGN_OR_RETURN(
      std::unique_ptr<Operation> op,
      Operation::Begin(*catalog_, *env_.clock, kind, target, project_id, branch_id, command));
  AuditScope audit(command, op->id());
  Status s = body(*op);
  // What follows must run to its end, interrupted or not.
  UncancellableScope uncancellable;
  if (!op->committed()) {
    if (s.ok()) {
      // Succeeded without a point of no return (start, stop): nothing is left to undo.
      PGB_RETURN_IF_ERROR(op->MarkCommitted({}));
    } else {
      spdlog::debug("operation {} failed ({}); undoing", op->id(), s.message());
      Status undo = op->RunJournal([this](const Action& a) { return RunAction(a); });
      if (!undo.ok()) {
        s = Status(s.code(),
                   fmt::format("{}; cleanup failed: {}; 'pgbranch doctor --fix' finishes it",
                               s.message(), undo.message()));
      }
    }
  }
  if (op->committed() && !op->journal().empty()) {
    Status boundary = op->Step("finish");
    Status finish =
        boundary.ok() ? op->RunJournal([this](const Action& a) { return RunAction(a); }) : boundary;
    if (!finish.ok()) {
      Note(fmt::format("done, but some cleanup is left for 'pgbranch doctor --fix': {}",
                       finish.message()));
    }
  }
  Status ended = op->End(s);
  if (!ended.ok())
    spdlog::warn("operation {} not recorded as ended: {}", op->id(), ended.message());
  return s;
}

InstanceSpec Engine::BareVolumeSpec(Pool& pool, const std::string& volume) {
  InstanceSpec spec;
  spec.name = volume;
  spec.data_dir = pool.VolumePath(volume);
  spec.log_path = "/dev/null";
  return spec;
}

Status Engine::DestroyVolumeSafely(const std::string& volume) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  // A server on it (its row already gone) would keep files open and its port taken.
  InstanceSpec spec = BareVolumeSpec(*pool, volume);
  Runtime& native = RuntimeOfKind("native");
  auto st = native.Inspect(spec);
  if (st.ok() && st->running) {
    PGB_RETURN_IF_ERROR(native.Stop(spec, StopMode::kImmediate, kStopTimeout));
  }
  return Timed("Destroy", [&] { return pool->DestroyVolume(volume); });
}

Status Engine::DropSnapshot(const SnapshotRow& snap, bool* dropped) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(bool deleted, catalog_->DeleteSnapshotIfUnused(snap.id));
  if (dropped) *dropped = deleted;
  if (!deleted) return Status::OK();  // a branch uses it: it stays
  Status s = pool->DestroySnapshot(snap.volume, snap.name);
  if (s.Is(StatusCode::kFailedPrecondition)) {
    // Storage still holds on to it (ZFS: a retired volume cloned from it): the row comes back,
    // same id, so a later sweep takes it once that is gone.
    if (dropped) *dropped = false;
    return catalog_->InsertSnapshot(snap).status();
  }
  return s;
}

Status Engine::DestroySnapshotIfUnused(const std::string& volume, const std::string& name) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(std::optional<SnapshotRow> row, catalog_->FindSnapshotByName(name));
  if (row) return DropSnapshot(*row, nullptr);
  return pool->DestroySnapshot(volume, name);
}

Status Engine::SweepImplicitSnapshots(int64_t project_id) {
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project_id));
  for (const auto& branch : branches) {
    PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(branch.id));
    for (const auto& snap : snapshots) {
      if (snap.implicit) PGB_RETURN_IF_ERROR(DropSnapshot(snap, nullptr));
    }
  }
  return Status::OK();
}

Status Engine::DestroyBranch(int64_t branch_id, bool hand_back) {
  auto found = catalog_->GetBranch(branch_id);
  if (!found.ok() && found.status().Is(StatusCode::kNotFound)) return Status::OK();
  PGB_RETURN_IF_ERROR(found.status());
  BranchRow row = *found;
  PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(row.project_id));
  if (row.state != kStateDeleting) {
    PGB_RETURN_IF_ERROR(catalog_->SetBranchState(row.id, kStateDeleting));
    row.state = kStateDeleting;
  }
  if (!hand_back) {
    PGB_RETURN_IF_ERROR(StopInstance(project, row, StopMode::kImmediate));
  } else {
    // Its owner's password back, then a clean shutdown; skipped once the data went back.
    PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
    if (PathExists(JoinPath(pool->VolumePath(row.volume), "PG_VERSION"))) {
      PGB_RETURN_IF_ERROR(PrepareHandBack(project, row));
    }
  }
  {
    PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, row));
    PGB_RETURN_IF_ERROR(RuntimeFor(project).Remove(spec));
  }
  if (!hand_back) PGB_RETURN_IF_ERROR(DestroyVolumeSafely(row.volume));
  // The row points at its origin snapshot, which may be one of its own (after a reset to it):
  // let go of it first, then the branch's own snapshots can go (the branches made from them
  // were destroyed before this one), then the row. Its origin, if implicit and now unused,
  // goes with the sweep that ends every delete.
  row.snapshot_id.reset();
  PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(row));
  PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(row.id));
  for (const auto& snap : snapshots) {
    bool dropped = false;
    PGB_RETURN_IF_ERROR(DropSnapshot(snap, &dropped));
    if (!dropped) {
      PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(snap.id));
      return Status::FailedPrecondition(fmt::format(
          "snapshot {} of {} is still needed ({})", snap.id, Ref(project, row),
          users.empty() ? "by storage" : "branches made from it: " + JoinNames(project, users)));
    }
  }
  // On ZFS a volume's snapshots live inside it: they went first, so none leaves with it.
  if (hand_back) PGB_RETURN_IF_ERROR(HandBackVolume(project, row.volume));
  PGB_RETURN_IF_ERROR(catalog_->DeleteBranch(row.id));
  PGB_RETURN_IF_ERROR(RemoveTree(JoinPath(ArchiveRoot(project), std::to_string(row.id))));
  PGB_RETURN_IF_ERROR(RemoveFile(LogPath(row)));
  PGB_RETURN_IF_ERROR(RemoveFile(PassfilePath(row)));
  locks_->RemoveBranchLock(row.id);
  return Status::OK();
}

Status Engine::MarkForDeletion(const ProjectRow& project, const std::vector<BranchRow>& rows,
                               std::vector<int64_t> also_lock, Operation& op,
                               std::vector<Action> also, std::optional<int64_t> hand_back) {
  for (const auto& r : rows) also_lock.push_back(r.id);
  // A branch being worked on (a reset, a create still cloning) finishes first.
  PGB_ASSIGN_OR_RETURN(std::vector<LockHandle> held, LockBranches(project, also_lock, &op));
  std::vector<Action> finish;
  for (const auto& r : rows) {
    Action a;
    bool back = hand_back && r.id == *hand_back;
    a.kind = back ? "hand-back-branch" : "destroy-branch";
    a.project_id = project.id;
    a.branch_id = r.id;
    a.text = fmt::format("{} {}", back ? "hand back" : "destroy", Ref(project, r));
    finish.push_back(std::move(a));
  }
  finish.insert(finish.end(), also.begin(), also.end());
  finish.push_back(SweepSnapshotsAction(project.id, project.name));
  PGB_RETURN_IF_ERROR(op.Step("commit"));
  return catalog_->Transaction([&]() -> Status {
    for (const auto& r : rows) PGB_RETURN_IF_ERROR(catalog_->SetBranchState(r.id, kStateDeleting));
    return op.MarkCommitted(std::move(finish));
  });
}

Status Engine::CheckNoPitrInFlight(const ProjectRow& project, const BranchRow& parent,
                                   const std::string& what) {
  PGB_ASSIGN_OR_RETURN(auto children, catalog_->ChildBranches(parent.id));
  for (const auto& c : children) {
    if (c.state == kStateCreating && !c.recovery_target.empty()) {
      return Status::FailedPrecondition(fmt::format(
          "{} is being recovered from {}'s WAL archive and snapshots; {} when it is done",
          Ref(project, c), Ref(project, parent), what));
    }
  }
  return Status::OK();
}

Status Engine::RunAction(const Action& a) {
  spdlog::debug("journal: {} {}", a.kind, a.text);
  if (a.kind == "stop-server") {
    PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
    auto project = catalog_->GetProject(a.project_id);
    auto branch = catalog_->GetBranch(a.branch_id);
    InstanceSpec spec;
    std::string runtime = "native";
    if (project.ok() && branch.ok()) {
      PGB_ASSIGN_OR_RETURN(spec, Spec(*project, *branch));
      runtime = project->runtime;
    } else {
      spec = BareVolumeSpec(*pool, a.volume);
      spec.container_name = a.text;
      if (project.ok()) runtime = project->runtime;
    }
    // The server of that volume only: a reset's old data shares the branch's port and name.
    spec.data_dir = pool->VolumePath(a.volume);
    Runtime& rt = RuntimeOfKind(runtime);
    PGB_RETURN_IF_ERROR(rt.Stop(spec, StopMode::kImmediate, kStopTimeout));
    return rt.Remove(spec);
  }
  if (a.kind == "destroy-volume") {
    // A last guard: never the data of a settled branch, whatever a journal says (a journal
    // from a restored catalog, a bug).
    PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListBranches());
    for (const auto& b : rows) {
      if (b.volume == a.volume && b.state != kStateCreating && b.state != kStateDeleting) {
        return Status::Internal(
            fmt::format("refusing to destroy volume {}: it is the data of branch {} ({})", a.volume,
                        b.id, b.state));
      }
    }
    return DestroyVolumeSafely(a.volume);
  }
  if (a.kind == "destroy-snapshot") return DestroySnapshotIfUnused(a.volume, a.snapshot);
  if (a.kind == "remove-branch-row") {
    auto row = catalog_->GetBranch(a.branch_id);
    if (!row.ok() && row.status().Is(StatusCode::kNotFound)) return Status::OK();
    PGB_RETURN_IF_ERROR(row.status());
    if (row->state != kStateCreating && row->state != kStateDeleting) {
      return Status::Internal(
          fmt::format("refusing to remove the row of branch {}: it is {}", row->id, row->state));
    }
    PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(row->project_id));
    PGB_RETURN_IF_ERROR(catalog_->DeleteBranch(row->id));
    PGB_RETURN_IF_ERROR(RemoveFile(LogPath(*row)));
    PGB_RETURN_IF_ERROR(RemoveTree(JoinPath(ArchiveRoot(project), std::to_string(row->id))));
    locks_->RemoveBranchLock(row->id);
    return Status::OK();
  }
  if (a.kind == "remove-project") {
    auto project = catalog_->GetProject(a.project_id);
    if (!project.ok() && project.status().Is(StatusCode::kNotFound)) return Status::OK();
    PGB_RETURN_IF_ERROR(project.status());
    PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project->id));
    if (!branches.empty()) {
      return Status::Internal(fmt::format("refusing to remove project {}: it has {} branches",
                                          project->name, branches.size()));
    }
    DropCreatedSlot(*project);
    PGB_RETURN_IF_ERROR(catalog_->DeleteProject(project->id));
    PGB_RETURN_IF_ERROR(RemoveTree(ArchiveRoot(*project)));
    PGB_RETURN_IF_ERROR(RemoveTree(SourceDir(*project)));
    PGB_RETURN_IF_ERROR(RemoveTree(ScheduleSecretsDir(*project)));
    if (IsContainerRuntime(project->runtime) || HasOwnOsUser(*project)) {
      PGB_RETURN_IF_ERROR(RemoveTree(SocketDir(*project)));
    }
    PGB_RETURN_IF_ERROR(RemoveProjectOsUser(*project));
    locks_->RemoveProjectLock(project->id);
    return Status::OK();
  }
  if (a.kind == "remove-dir") {
    std::string wal = JoinPath(env_.home, "wal") + "/";
    if (a.path.compare(0, wal.size(), wal) != 0 || a.path.find("/../") != std::string::npos) {
      return Status::Internal(fmt::format("refusing to remove {}: not a WAL archive", a.path));
    }
    return RemoveTree(a.path);
  }
  if (a.kind == "restart-branch" || a.kind == "set-state") {
    auto row = catalog_->GetBranch(a.branch_id);
    if (!row.ok() && row.status().Is(StatusCode::kNotFound)) return Status::OK();
    PGB_RETURN_IF_ERROR(row.status());
    if (a.kind == "set-state") return catalog_->SetBranchState(row->id, a.state);
    if (a.state != kStateRunning) return Status::OK();
    PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(row->project_id));
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, *row));
    if (st.running) return Status::OK();
    return StartInstance(project, *row, /*set_password=*/false, nullptr);
  }
  if (a.kind == "destroy-branch") return DestroyBranch(a.branch_id);
  if (a.kind == "hand-back-branch") return DestroyBranch(a.branch_id, /*hand_back=*/true);
  if (a.kind == "hand-back-volume" || a.kind == "restore-adopted-password") {
    auto project = catalog_->GetProject(a.project_id);
    if (!project.ok() && project.status().Is(StatusCode::kNotFound)) return Status::OK();
    PGB_RETURN_IF_ERROR(project.status());
    if (a.kind == "hand-back-volume") return HandBackVolume(*project, a.volume);
    PGB_ASSIGN_OR_RETURN(BranchRow main, catalog_->GetBranch(a.branch_id));
    return RestoreAdoptedPassword(*project, main);
  }
  if (a.kind == "sweep-snapshots") return SweepImplicitSnapshots(a.project_id);
  if (a.kind == "rename-instance") {
    auto row = catalog_->GetBranch(a.branch_id);
    if (!row.ok() && row.status().Is(StatusCode::kNotFound)) return Status::OK();
    PGB_RETURN_IF_ERROR(row.status());
    PGB_ASSIGN_OR_RETURN(ProjectRow project, catalog_->GetProject(row->project_id));
    PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, *row));
    InstanceSpec old_spec = spec;
    old_spec.container_name = a.text;
    if (!a.text.empty() && a.text != spec.container_name) {
      PGB_RETURN_IF_ERROR(RuntimeFor(project).Rename(old_spec, spec));
    }
    std::optional<FileOwner> owner;
    if (spec.os_user) owner = FileOwner{spec.os_user->uid, spec.os_user->gid};
    if (PathExists(spec.data_dir)) {
      PGB_RETURN_IF_ERROR(WriteInstanceConfig(spec.data_dir, ConfigFor(project, *row), owner));
    }
    // A running server reads its new WAL archive directory on reload; until then an archive
    // attempt fails and the archiver retries it.
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, RuntimeFor(project).Inspect(spec));
    if (st.running && st.ready) {
      auto conn = Connection::Open(AdminParams(project, *row));
      Status reloaded = conn.ok() ? (*conn)->Exec("SELECT pg_reload_conf()") : conn.status();
      if (!reloaded.ok()) {
        Note(fmt::format("{} not reloaded: {}", Ref(project, *row), reloaded.message()));
      }
    }
    return Status::OK();
  }
  if (a.kind == "move-dir") {
    if (!PathExists(a.from) || PathExists(a.path)) return Status::OK();
    if (::rename(a.from.c_str(), a.path.c_str()) != 0) {
      return PosixError(fmt::format("rename {} to {}", a.from, a.path), errno);
    }
    return Status::OK();
  }
  return Status::Internal(fmt::format("unknown journal action {}", QuoteForDisplay(a.kind)));
}

}  // namespace pgb
