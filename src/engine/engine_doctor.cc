// `pgbranch doctor`: checks what pgbranch depends on, and reconciles the catalog with what
// storage and runtime really hold (orphans in every direction). With --fix it repairs what is
// safe: it only removes what no row refers to, and finishes operations a crash interrupted.

#include <fmt/format.h>
#include <sys/stat.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "common/failpoint.h"
#include "common/fs.h"
#include "common/os_user.h"
#include "common/proc.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "runtime/container.h"
#include "storage/tree_copy.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

bool OnPath(const std::string& program) {
  for (const char* dir :
       {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    if (::access(JoinPath(dir, program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

bool KernelHas(const std::string& fs) {
  std::ifstream in("/proc/filesystems");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() >= fs.size() && line.compare(line.size() - fs.size(), fs.size(), fs) == 0) {
      return true;
    }
  }
  return false;
}

std::string ModeText(mode_t m) { return fmt::format("{:04o}", m & 07777); }

// Doctor skips what stays busy this long (an operation in progress holds it) rather than
// waiting for it.
constexpr auto kDoctorLockWait = std::chrono::seconds(5);

}  // namespace

Result<std::vector<DoctorFinding>> Engine::Doctor(const DoctorOptions& options) {
  CancelScope cancel(env_.cancel);
  const bool fix = options.fix;
  std::vector<DoctorFinding> out;
  auto add = [&](std::string check, std::string status, std::string detail) {
    out.push_back({std::move(check), std::move(status), std::move(detail)});
  };

  // Permissions: the catalog holds passwords.
  struct stat st {};
  std::string db = JoinPath(env_.home, "state.db");
  if (::stat(db.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    if (fix && ::chmod(db.c_str(), 0600) == 0) {
      add("permissions", "fixed", fmt::format("{} was {}, now 0600", db, ModeText(st.st_mode)));
    } else {
      add("permissions", "fail",
          fmt::format("{} is {}: others can read the branches' passwords", db,
                      ModeText(st.st_mode)));
    }
  } else {
    add("permissions", "ok", fmt::format("{} is readable by its owner only", db));
  }

  // Who runs the servers.
  Result<bool> own_users = WantsOwnOsUser();
  auto user = ServerUser();
  if (own_users.ok() && *own_users) {
    add("os user", "ok",
        fmt::format("each new native project's servers run as its own OS user "
                    "(pgb-{}-<project id>)",
                    HomeTag(env_.home)));
  } else if (user.ok()) {
    add("os user", "ok",
        *user ? fmt::format("servers run as {} (uid {})", (*user)->name, (*user)->uid)
              : std::string("servers run as the calling user"));
  } else {
    add("os user", "fail", user.status().message());
  }

  // The daemon: whether `pgbranch serve` runs, and where.
  auto serve = ReadServeRecord();
  if (!serve.ok()) {
    add("serve", "warn", serve.status().message());
  } else if (!*serve) {
    add("serve", "ok", "pgbranch serve is not running (it has not run in this home)");
  } else if ((*serve)->alive) {
    add("serve", "ok",
        fmt::format("pgbranch serve runs (pid {}), proxy on {}:{}", (*serve)->pid,
                    (*serve)->proxy_host, (*serve)->proxy_port));
  } else {
    // Its record outlived it (a kill -9, a crash): say so; the next `serve` replaces it.
    add("serve", "warn",
        fmt::format("pgbranch serve is not running: pid {} of serve.json is gone (it did not "
                    "stop cleanly); branches suspended by it wake only when it runs again",
                    (*serve)->pid));
  }

  // PostgreSQL binaries of every project.
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  std::set<std::string> engines_in_use;
  for (const auto& p : projects) {
    if (IsContainerRuntime(p.runtime)) {
      engines_in_use.insert(p.runtime);
      auto id = ImageId(*env_.runner, p.runtime, p.image);
      if (id.ok()) {
        add("postgresql", "ok",
            fmt::format("{}: PostgreSQL {} in {} image {}", p.name, p.pg_version, p.runtime,
                        p.image));
      } else {
        add("postgresql", "fail", fmt::format("{}: {}", p.name, id.status().message()));
      }
      continue;
    }
    std::string postgres = JoinPath(p.pg_bin, "postgres");
    if (::access(postgres.c_str(), X_OK) == 0) {
      add("postgresql", "ok",
          fmt::format("{}: PostgreSQL {} in {}", p.name, p.pg_version, p.pg_bin));
    } else {
      add("postgresql", "fail",
          fmt::format("{}: {} is missing; reinstall PostgreSQL {}", p.name, postgres, p.pg_major));
    }
  }

  // Container engines: reachable, the images pgbranch built, and containers of this home that
  // no branch owns (a crash between `run` and the catalog, or a row deleted by hand).
  std::map<int64_t, const BranchRow*> branch_by_id;
  PGB_ASSIGN_OR_RETURN(auto all_branches, catalog_->ListBranches());
  std::map<int64_t, ProjectRow> projects_by_id;
  for (const auto& p : projects) projects_by_id[p.id] = p;
  for (const auto& b : all_branches) branch_by_id[b.id] = &b;
  for (const char* engine : {"docker", "podman"}) {
    bool used = engines_in_use.count(engine) > 0;
    if (!OnPath(engine)) {
      if (used) add("container engine", "fail", fmt::format("{} is not installed", engine));
      continue;
    }
    auto images = ListImages(*env_.runner, engine, kImageRepository);
    if (!images.ok()) {
      // An engine nobody uses may well be stopped.
      add("container engine", used ? "fail" : "warn", images.status().message());
      continue;
    }
    add("images", "ok",
        images->empty()
            ? fmt::format("{}: no pgbranch images; 'pgbranch image build --pg-version 17 "
                          "--runtime {}' makes one",
                          engine, engine)
            : fmt::format("{}: {}", engine, fmt::join(*images, ", ")));
    auto found = RuntimeOfKind(engine).ListInstances(env_.home);
    if (!found.ok()) {
      add("container engine", "fail", found.status().message());
      continue;
    }
    for (const auto& inst : *found) {
      auto it = branch_by_id.find(inst.branch_id);
      bool owned = false;
      if (it != branch_by_id.end()) {
        const ProjectRow& p = projects_by_id[it->second->project_id];
        owned = p.runtime == engine && inst.name == ContainerOf(p, *it->second);
      }
      if (owned) continue;
      if (!fix) {
        add("orphan container", "fail",
            fmt::format("{} container {} ({}, was {}) belongs to no branch", engine, inst.name,
                        inst.state, inst.branch.empty() ? "unlabelled" : inst.branch));
        continue;
      }
      InstanceSpec spec;
      spec.name = inst.name;
      spec.container_name = inst.name;
      Status s = RuntimeOfKind(engine).Remove(spec);
      add("orphan container", s.ok() ? "fixed" : "fail",
          s.ok() ? fmt::format("removed {} container {}", engine, inst.name)
                 : fmt::format("{}: {}", inst.name, s.message()));
    }
  }

  // Tools and kernel support for the configured pool.
  auto config = LoadPoolConfig();
  if (!config.ok()) {
    add("pool", "warn", "no pool configured yet: the first 'project create' makes one");
    return out;
  }
  std::vector<std::string> missing;
  std::string kind = config->kind == "image" ? config->fs : config->kind;
  if (kind == "btrfs" && !KernelHas("btrfs")) missing.push_back("the kernel's btrfs module");
  if (kind == "xfs" && !KernelHas("xfs")) missing.push_back("the kernel's xfs module");
  if (config->kind == "image") {
    if (!OnPath(config->fs == "xfs" ? "mkfs.xfs" : "mkfs.btrfs")) {
      missing.push_back(config->fs == "xfs" ? "mkfs.xfs (xfsprogs)" : "mkfs.btrfs (btrfs-progs)");
    }
    if (!PathExists("/dev/loop-control")) missing.push_back("/dev/loop-control (loop devices)");
  }
  if (config->kind == "zfs") {
    for (const char* tool : {"zfs", "zpool"}) {
      if (!OnPath(tool)) missing.push_back(fmt::format("{} (zfsutils-linux or zfs-fuse)", tool));
    }
  }
  if (missing.empty()) {
    add("tools", "ok", fmt::format("what the {} pool needs is here", config->kind));
  } else {
    add("tools", "fail", fmt::format("missing: {}", fmt::join(missing, ", ")));
  }

  auto pool_or = RequirePool(false);
  if (!pool_or.ok()) {
    add("pool", "fail", pool_or.status().message());
    return out;
  }
  Pool* pool = *pool_or;
  add("pool", "ok", fmt::format("{} is mounted and usable", pool->Describe()));
  if (!pool->Capabilities().copy_on_write) {
    add("pool", "warn",
        "full copies: correct but slow, and every branch takes the full size of its parent; "
        "a Btrfs, ZFS or XFS (reflink) pool makes branches instant");
  }
  auto usage = pool->Usage();
  if (usage.ok() && usage->size_bytes > 0 && usage->free_bytes * 10 < usage->size_bytes) {
    add("pool", "warn",
        fmt::format("only {} free of {}", FormatBytes(usage->free_bytes),
                    FormatBytes(usage->size_bytes)));
  }

  // Doctor works beside running commands: the home lock (shared) keeps init and a catalog
  // restore out; the operations record and the project and branch locks say what is in flight.
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared(fmt::format("doctor by pid {}", ::getpid())));
  size_t problems = out.size();

  // 1. Operations whose process died: undone (before their commit) or finished (after), with
  //    the journal they wrote as they went. Operations still running are left alone, and so is
  //    everything they name.
  std::set<std::string> in_flight;
  PGB_RETURN_IF_ERROR(RepairOperations(fix, &out, &in_flight));

  // 2. Quarantine: what an earlier doctor moved aside, and what may now be purged.
  auto quarantined = pool->ListQuarantined();
  if (quarantined.ok()) {
    TimePoint now = env_.clock->Now();
    for (const auto& q : *quarantined) {
      auto age = std::chrono::duration_cast<std::chrono::seconds>(now - q.since);
      bool due = now - q.since >= options.grace;
      if (options.purge && due) {
        Status s = pool->Purge(q.name);
        out.push_back(
            {"quarantine", s.ok() ? "fixed" : "fail",
             s.ok() ? fmt::format("purged {} {} (quarantined {} ago)",
                                  q.is_snapshot ? "snapshot" : "volume", q.name, FormatAge(age))
                    : fmt::format("{}: {}", q.name, s.message())});
        continue;
      }
      out.push_back(
          {"quarantine", "warn",
           fmt::format("{} {} was moved aside {} ago, at {}: {}",
                       q.is_snapshot ? "snapshot" : "volume", q.name, FormatAge(age), q.path,
                       due ? "'pgbranch doctor --purge' destroys it"
                           : "'pgbranch doctor --adopt' brings a volume back as a branch; "
                             "'--purge' destroys it once a week old")});
    }
  }

  // 3. Lost rows: data directories the catalog does not know (after a catalog restore or loss).
  if (options.adopt) {
    PGB_RETURN_IF_ERROR(AdoptVolumes(*pool, /*fix=*/true, &out));
    // The catalog is whole again, as far as the pool can tell.
    PGB_RETURN_IF_ERROR(catalog_->DeleteSetting(kCatalogLost));
  }
  // The projects' OS accounts, once adopted projects have claimed theirs.
  CheckProjectOsUsers(*pool, fix, out);

  // 4. Reconcile what the catalog says with what storage and runtime hold. The pool is listed
  //    before the catalog is read: whatever an operation makes is in its journal (or a row)
  //    before it exists, so nothing listed can be missed by the reads that follow.
  PGB_ASSIGN_OR_RETURN(auto volume_list, pool->ListVolumes());
  PGB_ASSIGN_OR_RETURN(auto snapshot_list, pool->ListSnapshots());
  PGB_RETURN_IF_ERROR(CollectInFlight(&in_flight));
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches());
  PGB_ASSIGN_OR_RETURN(auto snapshot_rows, catalog_->ListSnapshots());
  PGB_ASSIGN_OR_RETURN(projects, catalog_->ListProjects());
  std::set<std::string> volumes(volume_list.begin(), volume_list.end());
  std::set<std::string> snapshots(snapshot_list.begin(), snapshot_list.end());
  std::set<std::string> known_volumes, known_snapshots;
  for (const auto& b : branches) known_volumes.insert(b.volume);
  for (const auto& sr : snapshot_rows) known_snapshots.insert(sr.name);
  std::map<int64_t, ProjectRow> project_of;
  for (const auto& p : projects) project_of[p.id] = p;
  std::set<int64_t> busy_branches;
  PGB_RETURN_IF_ERROR(CollectBusyBranches(&busy_branches));

  // Rows a crash left half-way that no operation record covers (an older pgbranch, or a
  // record lost with the catalog): a delete is finished, a create's data is quarantined.
  for (const auto& b : branches) {
    if (b.state != kStateCreating && b.state != kStateDeleting) continue;
    if (busy_branches.count(b.id)) continue;
    const ProjectRow& p = project_of[b.project_id];
    std::string what = b.state == kStateCreating ? "create" : "delete";
    if (!fix) {
      add("interrupted", "fail",
          fmt::format("{} was left by an interrupted {} with no record of it", Ref(p, b), what));
      continue;
    }
    auto lock = locks_->Branch(b.id, Ref(p, b), fmt::format("doctor by pid {}", ::getpid()),
                               kDoctorLockWait);
    if (!lock.ok()) {
      add("interrupted", "warn", fmt::format("{}: {}", Ref(p, b), lock.status().message()));
      continue;
    }
    // Read again under the lock: the operation may have ended between the listing of the rows
    // and that of the busy branches (a create that committed is no interrupted one), or begun
    // since.
    auto again = catalog_->GetBranch(b.id);
    if (!again.ok() || again->state != b.state || again->volume != b.volume) continue;
    std::set<int64_t> busy_now;
    PGB_RETURN_IF_ERROR(CollectBusyBranches(&busy_now));
    if (busy_now.count(b.id)) continue;
    Status s;
    if (b.state == kStateDeleting) {
      s = DestroyBranch(b.id);
    } else {
      s = StopInstance(p, b, StopMode::kImmediate);
      if (s.ok() && volumes.count(b.volume)) {
        s = pool->Quarantine(b.volume, env_.clock->Now());
        if (s.Is(StatusCode::kNotFound)) s = Status::OK();  // gone meanwhile
      }
      if (s.ok()) {
        Action remove;
        remove.kind = "remove-branch-row";
        remove.branch_id = b.id;
        s = RunAction(remove);
      }
    }
    volumes.erase(b.volume);
    add("interrupted", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("{}: finished the interrupted {}{}", Ref(p, b), what,
                             what == "create" ? " (its data, if any, is quarantined)" : "")
               : fmt::format("{}: {}", Ref(p, b), s.message()));
  }

  // Rows without data, and rows recorded running whose server is down.
  for (const auto& b : branches) {
    if (!IsSettledState(b.state)) continue;
    if (busy_branches.count(b.id)) continue;
    const ProjectRow& p = project_of[b.project_id];
    if (!volumes.count(b.volume)) {
      if (fix) {
        Status s = catalog_->SetBranchState(b.id, kStateFailed);
        add("missing volume", s.ok() ? "fixed" : "fail",
            fmt::format("{}: its volume {} is gone; marked failed, delete it with 'pgbranch "
                        "branch delete {}'",
                        Ref(p, b), b.volume, Ref(p, b)));
      } else {
        add("missing volume", "fail",
            fmt::format("{}: its volume {} is not in the pool", Ref(p, b), b.volume));
      }
      continue;
    }
    if (b.state != kStateRunning) continue;
    auto st = InspectBranch(p, b);
    if (!st.ok() || st->running) continue;
    PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(p, b));
    auto log = RuntimeFor(p).Logs(spec, 200);
    std::string why = log.ok() ? LogHighlights(*log) : "";
    std::string said = why.empty() ? "" : fmt::format(" (its log: {})", QuoteForDisplay(why));
    if (!fix) {
      add("server down", "fail",
          fmt::format("{} is recorded running but its server is down{}; 'pgbranch branch start "
                      "{}' or 'pgbranch doctor --fix' starts it",
                      Ref(p, b), said, Ref(p, b)));
      continue;
    }
    auto lock = locks_->Branch(b.id, Ref(p, b), fmt::format("doctor by pid {}", ::getpid()),
                               kDoctorLockWait);
    if (!lock.ok()) {
      add("server down", "warn", fmt::format("{}: {}", Ref(p, b), lock.status().message()));
      continue;
    }
    auto again = catalog_->GetBranch(b.id);
    auto st2 = again.ok() ? InspectBranch(p, *again) : again.status();
    if (!again.ok() || again->state != kStateRunning || (st2.ok() && st2->running)) continue;
    Status s = StartInstance(p, *again, /*set_password=*/false, nullptr);
    add("server down", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("started {}: it was recorded running but its server was down{}",
                             Ref(p, b), said)
               : fmt::format("{}: {}", Ref(p, b), s.message()));
  }

  for (const auto& sr : snapshot_rows) {
    if (snapshots.count(sr.name) || in_flight.count(sr.name)) continue;
    PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(sr.id));
    if (fix && users.empty()) {
      PGB_ASSIGN_OR_RETURN(bool deleted, catalog_->DeleteSnapshotIfUnused(sr.id));
      add("missing snapshot", deleted ? "fixed" : "warn",
          fmt::format("snapshot {} ({}) was gone from the pool; {}", sr.id, sr.name,
                      deleted ? "removed its row" : "a branch now uses it, so its row stays"));
    } else {
      add("missing snapshot", users.empty() ? "fail" : "warn",
          fmt::format("snapshot {} ({}) is not in the pool{}", sr.id, sr.name,
                      users.empty() ? "" : "; branches were made from it, so its row stays"));
    }
  }

  // Data without rows: never destroyed on a guess. A volume or snapshot no row and no running
  // operation refers to is moved aside (quarantined), after stopping a server on it.
  for (const auto& v : volumes) {
    if (known_volumes.count(v) || in_flight.count(v)) continue;
    InstanceSpec spec = BareVolumeSpec(*pool, v);
    Runtime& native = RuntimeOfKind("native");
    auto st_or = native.Inspect(spec);
    bool running = st_or.ok() && st_or->running;
    auto conf = ReadInstanceConfig(spec.data_dir);
    std::string holds = conf.ok() && !conf->cluster_name.empty()
                            ? fmt::format(" holds {} but", conf->cluster_name)
                            : "";
    if (!fix) {
      add("orphan volume", "fail",
          fmt::format(
              "{} ({}){} belongs to no branch{}; 'pgbranch doctor --adopt' brings it "
              "back, 'pgbranch doctor --fix' quarantines it",
              v, spec.data_dir, holds,
              running ? fmt::format(", and a postgres (pid {}) runs on it", st_or->pid) : ""));
      continue;
    }
    Status s = running ? native.Stop(spec, StopMode::kImmediate, kStopTimeout) : Status::OK();
    if (s.ok()) s = pool->Quarantine(v, env_.clock->Now());
    if (s.Is(StatusCode::kNotFound)) continue;  // gone meanwhile: nothing to report
    add("orphan volume", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("quarantined {}{}: nothing refers to it; 'pgbranch doctor --adopt' "
                             "brings it back as a branch",
                             v, running ? " after stopping its postgres" : "")
               : fmt::format("{}: {}", v, s.message()));
  }
  for (const auto& name : snapshots) {
    if (known_snapshots.count(name) || in_flight.count(name)) continue;
    if (!fix) {
      add("orphan snapshot", "fail",
          fmt::format("{} belongs to no snapshot row; 'pgbranch doctor --fix' quarantines it",
                      name));
      continue;
    }
    Status s = pool->Quarantine(name, env_.clock->Now());
    if (s.Is(StatusCode::kNotFound)) continue;  // gone meanwhile: nothing to report
    add("orphan snapshot", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("quarantined snapshot {}: nothing refers to it", name)
               : fmt::format("{}: {}", name, s.message()));
  }

  // WAL archives of volumes, branches and projects that are gone (not data directories: a
  // reset or delete removes them itself, and a crash may leave them).
  PGB_RETURN_IF_ERROR(CheckArchives(branches, projects, in_flight, fix, &out));

  // Implicit snapshots nothing uses any more (a delete killed before its sweep). A project with
  // an operation open sweeps its own at its end.
  PGB_ASSIGN_OR_RETURN(auto open_ops, catalog_->ListOpenOperations());
  std::set<int64_t> busy_projects;
  for (const auto& op : open_ops) {
    if (op.project_id) busy_projects.insert(*op.project_id);
  }
  for (const auto& p : projects) {
    if (busy_projects.count(p.id)) continue;
    PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListBranches(p.id));
    size_t unused = 0;
    for (const auto& b : rows) {
      PGB_ASSIGN_OR_RETURN(auto snaps, catalog_->ListSnapshots(b.id));
      for (const auto& sr : snaps) {
        if (!sr.implicit || in_flight.count(sr.name)) continue;
        PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(sr.id));
        if (users.empty()) ++unused;
      }
    }
    if (unused == 0) continue;
    if (!fix) {
      add("unused snapshot", "fail",
          fmt::format("{}: {} implicit snapshots no branch uses any more", p.name, unused));
      continue;
    }
    auto lock = LockProjectOf(p, nullptr);
    Status s = lock.ok() ? SweepImplicitSnapshots(p.id) : lock.status();
    add("unused snapshot", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("{}: destroyed {} implicit snapshots no branch used", p.name, unused)
               : fmt::format("{}: {}", p.name, s.message()));
  }

  // Socket lock files of servers that are gone (a reboot: the pid in them may now be anyone's).
  PGB_RETURN_IF_ERROR(CheckSocketLocks(branches, project_of, fix, &out));

  // Ports: a stopped branch whose port a stranger holds could not start. A suspended branch's
  // port is held by `serve` while it runs, to wake it on a connection.
  bool serve_alive = serve.ok() && *serve && (*serve)->alive;
  for (const auto& b : branches) {
    if (!IsSettledState(b.state)) continue;
    if (b.state == kStateSuspended && serve_alive) continue;
    const ProjectRow& p = project_of[b.project_id];
    auto spec = Spec(p, b);
    if (!spec.ok()) continue;
    auto st_or = RuntimeFor(p).Inspect(*spec);
    if (st_or.ok() && !st_or->running && !env_.ports->IsFree(p.listen_address, b.port)) {
      add("port", "fail",
          fmt::format("port {} of {} is held by another program; stop it before 'pgbranch "
                      "branch start {}'",
                      b.port, Ref(p, b), Ref(p, b)));
    }
  }
  if (out.size() == problems) {
    add("orphans", "ok",
        fmt::format("{} branches and {} snapshots match the pool and the running servers",
                    branches.size(), snapshot_rows.size()));
  }
  return out;
}

Status Engine::CollectInFlight(std::set<std::string>* names) {
  // Operations still open: running, or interrupted and not repaired (their own finding says
  // so, and their journal will deal with what they made).
  PGB_ASSIGN_OR_RETURN(auto open, catalog_->ListOpenOperations());
  for (const auto& op : open) {
    auto journal = ActionsFromJson(op.journal);
    if (!journal.ok()) continue;
    for (const auto& a : *journal) {
      if (!a.volume.empty()) names->insert(a.volume);
      if (!a.snapshot.empty()) names->insert(a.snapshot);
      if (!a.path.empty()) names->insert(a.path);
    }
  }
  return Status::OK();
}

Status Engine::CollectBusyBranches(std::set<int64_t>* ids) {
  PGB_ASSIGN_OR_RETURN(auto open, catalog_->ListOpenOperations());
  for (const auto& op : open) {
    if (op.branch_id) ids->insert(*op.branch_id);
    auto journal = ActionsFromJson(op.journal);
    if (!journal.ok()) continue;
    for (const auto& a : *journal) {
      if (a.branch_id) ids->insert(a.branch_id);
    }
  }
  return Status::OK();
}

Status Engine::RepairOperations(bool fix, std::vector<DoctorFinding>* out,
                                std::set<std::string>* in_flight_names) {
  PGB_ASSIGN_OR_RETURN(auto open, catalog_->ListOpenOperations());
  for (const auto& row : open) {
    std::string verb = row.kind.substr(row.kind.find('.') + 1);
    std::string what = fmt::format("{} (operation {}, pid {}{})", verb, row.id, row.pid,
                                   row.step.empty() ? "" : ", at step " + row.step);
    if (OwnerAlive(row.owner)) {
      out->push_back({"operation", "ok", fmt::format("{} of {} is in progress", what, row.target)});
      continue;
    }
    bool committed = row.state == kOpCommitted;
    if (!fix) {
      out->push_back({"interrupted", "fail",
                      fmt::format("{} was left by an interrupted {}; 'pgbranch doctor --fix' "
                                  "will {} it",
                                  row.target, what, committed ? "finish" : "undo")});
      continue;
    }
    // The same locks an operation takes: the project's, then its branches' (ascending).
    std::optional<ProjectRow> project;
    if (row.project_id) {
      auto p = catalog_->GetProject(*row.project_id);
      if (p.ok()) project = *p;
    }
    std::vector<int64_t> ids;
    if (row.branch_id) ids.push_back(*row.branch_id);
    auto journal = ActionsFromJson(row.journal);
    if (journal.ok()) {
      for (const auto& a : *journal) {
        if (a.branch_id) ids.push_back(a.branch_id);
      }
    }
    std::string holder =
        fmt::format("doctor by pid {} (repairing operation {})", ::getpid(), row.id);
    LockHandle project_lock;
    if (project) {
      auto lock = locks_->Project(project->id, project->name, holder, kDoctorLockWait);
      if (!lock.ok()) {
        out->push_back(
            {"interrupted", "warn", fmt::format("{}: {}", what, lock.status().message())});
        continue;
      }
      project_lock = std::move(*lock);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::vector<LockHandle> held;
    Status locked;
    for (int64_t id : ids) {
      auto lock = locks_->Branch(id, fmt::format("branch {}", id), holder, kDoctorLockWait);
      if (!lock.ok()) {
        locked = lock.status();
        break;
      }
      held.push_back(std::move(*lock));
    }
    if (!locked.ok()) {
      out->push_back({"interrupted", "warn", fmt::format("{}: {}", what, locked.message())});
      continue;
    }
    // Another doctor may have taken it over, or finished it, while we waited.
    auto op = Operation::Adopt(*catalog_, *env_.clock, row.id);
    if (!op.ok()) continue;
    AuditScope audit(fmt::format("doctor --fix (operation {})", row.id), row.id);
    UncancellableScope uncancellable;
    Status s = (*op)->RunJournal([this](const Action& a) { return RunAction(a); });
    Status ended = (*op)->End(s, /*by_doctor=*/true);
    (void)ended;
    out->push_back(
        {"interrupted", s.ok() ? "fixed" : "fail",
         s.ok() ? fmt::format("{}: {} the interrupted {}", row.target,
                              committed ? "finished" : "undid", what)
                : fmt::format("{}: the interrupted {}: {}", row.target, what, s.message())});
  }
  return Status::OK();
}

namespace {

// Whether `dir` (wal/<project>, wal/<project>/<branch id> or wal/<project>/<id>/<volume>, the
// project by id or name as `archive_root` gives it) is the WAL archive of nothing the catalog
// rows `branches` and `projects` hold, and of nothing an open operation's journal (`in_flight`:
// names and paths) names, itself or an ancestor.
bool IsStaleArchive(
    const std::string& home, const std::string& dir, const std::vector<BranchRow>& branches,
    const std::vector<ProjectRow>& projects, const std::set<std::string>& in_flight,
    const std::function<std::string(const ProjectRow&)>& archive_root,
    const std::function<std::string(const ProjectRow&, const BranchRow&)>& archive_dir) {
  for (std::filesystem::path up(dir); up.has_relative_path() && up != up.parent_path();
       up = up.parent_path()) {
    if (in_flight.count(up.string())) return false;
  }
  // An archive being made right now belongs to an operation's volume.
  if (in_flight.count(std::filesystem::path(dir).filename().string())) return false;
  std::string wal = JoinPath(home, "wal");
  std::filesystem::path rel = std::filesystem::path(dir).lexically_relative(wal);
  std::vector<std::string> parts;
  for (const auto& part : rel) parts.push_back(part.string());
  if (parts.empty() || parts.size() > 3 || parts[0] == "..") return false;
  for (const auto& p : projects) {
    if (archive_root(p) != JoinPath(wal, parts[0])) continue;
    if (parts.size() == 1) return false;
    for (const auto& b : branches) {
      if (b.project_id != p.id || std::to_string(b.id) != parts[1]) continue;
      if (parts.size() == 2 || archive_dir(p, b) == dir) return false;
    }
  }
  return true;
}

}  // namespace

Status Engine::CheckArchives(const std::vector<BranchRow>& branches,
                             const std::vector<ProjectRow>& projects,
                             const std::set<std::string>& in_flight, bool fix,
                             std::vector<DoctorFinding>* out) {
  auto archive_root = [this](const ProjectRow& p) { return ArchiveRoot(p); };
  auto archive_dir = [this](const ProjectRow& p, const BranchRow& b) { return ArchiveDir(p, b); };
  PausePoint("doctor:archives");
  std::string wal = JoinPath(env_.home, "wal");
  std::vector<std::string> candidates;  // every directory down to wal/<project>/<id>/<volume>
  std::error_code ec;
  for (const auto& project_dir : std::filesystem::directory_iterator(wal, ec)) {
    candidates.push_back(project_dir.path().string());
    for (const auto& branch_dir : std::filesystem::directory_iterator(project_dir.path(), ec)) {
      candidates.push_back(branch_dir.path().string());
      for (const auto& volume_dir : std::filesystem::directory_iterator(branch_dir.path(), ec)) {
        candidates.push_back(volume_dir.path().string());
      }
    }
  }
  std::set<std::string> reported;  // a stale directory speaks for what is under it
  for (const auto& dir : candidates) {
    if (!IsStaleArchive(env_.home, dir, branches, projects, in_flight, archive_root, archive_dir)) {
      continue;
    }
    bool under_reported = false;
    for (const auto& r : reported) under_reported |= dir.rfind(r + "/", 0) == 0;
    if (under_reported) continue;
    if (!fix) {
      reported.insert(dir);
      out->push_back({"stale archive", "fail",
                      fmt::format("{} is the WAL archive of something that is gone", dir)});
      continue;
    }
    // The reads above are older than the listing: a create that began since has its row (and
    // holds its branch's lock) before it makes the directory, and a delete removes its own
    // directory while it holds that lock. So the verdict is given again under the branch's
    // lock, from fresh reads, before anything goes.
    std::optional<LockHandle> lock;
    std::filesystem::path rel = std::filesystem::path(dir).lexically_relative(wal);
    auto it = rel.begin();
    int64_t id = 0;
    if (it != rel.end() && ++it != rel.end()) {
      const std::string s = it->string();
      auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), id);
      if (err == std::errc() && end == s.data() + s.size()) {
        auto held = locks_->Branch(id, fmt::format("branch {}", id),
                                   fmt::format("doctor by pid {}", ::getpid()), kDoctorLockWait);
        if (!held.ok()) {
          out->push_back(
              {"stale archive", "warn", fmt::format("{}: {}", dir, held.status().message())});
          continue;
        }
        lock = std::move(*held);
      }
    }
    std::set<std::string> now_in_flight;
    PGB_RETURN_IF_ERROR(CollectInFlight(&now_in_flight));
    PGB_ASSIGN_OR_RETURN(auto now_branches, catalog_->ListBranches());
    PGB_ASSIGN_OR_RETURN(auto now_projects, catalog_->ListProjects());
    if (!IsStaleArchive(env_.home, dir, now_branches, now_projects, now_in_flight, archive_root,
                        archive_dir) ||
        !std::filesystem::exists(dir, ec)) {
      continue;
    }
    Status s = RemoveTree(dir);
    if (!s.ok() && !std::filesystem::exists(dir, ec)) continue;  // removed meanwhile by its owner
    if (s.ok()) reported.insert(dir);
    bool row_gone = std::none_of(now_branches.begin(), now_branches.end(),
                                 [id](const BranchRow& b) { return b.id == id; });
    if (s.ok() && lock && row_gone) locks_->RemoveBranchLock(id);
    out->push_back({"stale archive", s.ok() ? "fixed" : "fail",
                    s.ok() ? fmt::format("removed {}: the WAL archive of something gone", dir)
                           : fmt::format("{}: {}", dir, s.message())});
  }
  return Status::OK();
}

Status Engine::CheckSocketLocks(const std::vector<BranchRow>& branches,
                                const std::map<int64_t, ProjectRow>& project_of, bool fix,
                                std::vector<DoctorFinding>* out) {
  std::vector<std::string> dirs = {JoinPath(env_.home, "run")};
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator(JoinPath(env_.home, "sockets"), ec)) {
    dirs.push_back(d.path().string());
  }
  for (const auto& dir : dirs) {
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = entry.path().filename().string();
      if (name.rfind(".s.PGSQL.", 0) != 0 || name.size() < 14 ||
          name.compare(name.size() - 5, 5, ".lock") != 0) {
        continue;
      }
      Result<std::string> text = ReadFile(entry.path().string());
      if (!text.ok()) continue;
      pid_t pid = static_cast<pid_t>(std::atol(text->c_str()));
      std::optional<ProcInfo> info = ReadProc(pid);
      if (pid > 0 && info && !info->Dead() && info->comm == "postgres") continue;
      if (!fix) {
        out->push_back({"socket lock", "fail",
                        fmt::format("{} names pid {}, which is no postgres now; a server on that "
                                    "port would refuse to start",
                                    entry.path().string(), pid)});
        continue;
      }
      Status s = RemoveFile(entry.path().string());
      out->push_back({"socket lock", s.ok() ? "fixed" : "fail",
                      s.ok() ? fmt::format("removed {} (pid {} is no postgres now)",
                                           entry.path().string(), pid)
                             : fmt::format("{}: {}", entry.path().string(), s.message())});
    }
  }
  return Status::OK();
}

}  // namespace pgb
