// `pgbranch doctor`: checks what pgbranch depends on, and reconciles the catalog with what
// storage and runtime really hold (orphans in every direction). With --fix it repairs what is
// safe: it only removes what no row refers to, and finishes operations a crash interrupted.

#include <fmt/format.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>

#include "common/fs.h"
#include "common/os_user.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "runtime/container.h"

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

}  // namespace

Result<std::vector<DoctorFinding>> Engine::Doctor(bool fix) {
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
  auto user = ServerUser();
  if (user.ok()) {
    add("os user", "ok",
        *user ? fmt::format("servers run as {} (uid {})", (*user)->name, (*user)->uid)
              : std::string("servers run as the calling user"));
  } else {
    add("os user", "fail", user.status().message());
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
        owned = p.runtime == engine &&
                inst.name == ContainerName(env_.home, p.name, it->second->name);
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

  // Reconcile: what the catalog says against what storage and runtime hold.
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches());
  PGB_ASSIGN_OR_RETURN(auto snapshot_rows, catalog_->ListSnapshots());
  PGB_ASSIGN_OR_RETURN(auto volume_list, pool->ListVolumes());
  PGB_ASSIGN_OR_RETURN(auto snapshot_list, pool->ListSnapshots());
  std::set<std::string> volumes(volume_list.begin(), volume_list.end());
  std::set<std::string> snapshots(snapshot_list.begin(), snapshot_list.end());
  std::set<std::string> known_volumes, known_snapshots;
  for (const auto& b : branches) known_volumes.insert(b.volume);
  for (const auto& s : snapshot_rows) known_snapshots.insert(s.name);
  std::map<int64_t, ProjectRow> project_of;
  for (const auto& p : projects) project_of[p.id] = p;
  size_t problems = out.size();

  // Operations a crash interrupted: finish a delete, undo a create.
  for (const auto& b : branches) {
    const ProjectRow& p = project_of[b.project_id];
    if (b.state != kStateCreating && b.state != kStateDeleting) continue;
    std::string what =
        b.state == kStateCreating ? "an interrupted create" : "an interrupted delete";
    if (!fix) {
      add("interrupted", "fail", fmt::format("{} was left by {}", Ref(p, b), what));
      continue;
    }
    PGB_ASSIGN_OR_RETURN(auto lock, LockProject(p));
    Status s = DestroyBranch(p, b);
    add("interrupted", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("removed {} left by {}", Ref(p, b), what)
               : fmt::format("{}: {}", Ref(p, b), s.message()));
    if (s.ok()) volumes.erase(b.volume);  // gone now: neither known nor an orphan
  }

  // Rows without data.
  for (const auto& b : branches) {
    const ProjectRow& p = project_of[b.project_id];
    if (b.state == kStateCreating || b.state == kStateDeleting || volumes.count(b.volume)) continue;
    if (b.state == kStateFailed) continue;
    if (fix) {
      Status s = catalog_->SetBranchState(b.id, kStateFailed);
      add("missing volume", s.ok() ? "fixed" : "fail",
          fmt::format("{}: its volume {} is gone; marked failed, delete it with 'pgbranch branch "
                      "delete {}'",
                      Ref(p, b), b.volume, Ref(p, b)));
    } else {
      add("missing volume", "fail",
          fmt::format("{}: its volume {} is not in the pool", Ref(p, b), b.volume));
    }
  }
  for (const auto& s : snapshot_rows) {
    if (snapshots.count(s.name)) continue;
    PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(s.id));
    if (fix && users.empty()) {
      Status d = catalog_->DeleteSnapshot(s.id);
      add("missing snapshot", d.ok() ? "fixed" : "fail",
          fmt::format("snapshot {} ({}) was gone from the pool; removed its row", s.id, s.name));
    } else {
      add("missing snapshot", users.empty() ? "fail" : "warn",
          fmt::format("snapshot {} ({}) is not in the pool{}", s.id, s.name,
                      users.empty() ? "" : "; branches were made from it, so its row stays"));
    }
  }

  // Data without rows, and servers running on it.
  for (const auto& v : volumes) {
    if (known_volumes.count(v)) continue;
    InstanceSpec spec;
    spec.name = v;
    spec.data_dir = pool->VolumePath(v);
    spec.log_path = "/dev/null";
    Runtime& native = RuntimeOfKind("native");
    auto st_or = native.Inspect(spec);
    bool running = st_or.ok() && st_or->running;
    if (!fix) {
      add("orphan volume", "fail",
          fmt::format(
              "{} ({}) belongs to no branch{}", v, spec.data_dir,
              running ? fmt::format(", and a postgres (pid {}) runs on it", st_or->pid) : ""));
      continue;
    }
    Status s = running ? native.Stop(spec, StopMode::kImmediate, kStopTimeout) : Status::OK();
    if (s.ok()) s = pool->DestroyVolume(v);
    add("orphan volume", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("destroyed {}{}", v, running ? " after stopping its postgres" : "")
               : fmt::format("{}: {}", v, s.message()));
  }
  for (const auto& name : snapshots) {
    if (known_snapshots.count(name)) continue;
    if (!fix) {
      add("orphan snapshot", "fail", fmt::format("{} belongs to no snapshot row", name));
      continue;
    }
    Status s = pool->DestroySnapshot("", name);
    add("orphan snapshot", s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("destroyed {}", name) : fmt::format("{}: {}", name, s.message()));
  }

  // Ports: a stopped branch whose port a stranger holds could not start.
  for (const auto& b : branches) {
    if (b.state != kStateRunning && b.state != kStateStopped) continue;
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

}  // namespace pgb
