#include "engine/engine.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include "common/bytes.h"
#include "common/failpoint.h"
#include "common/fs.h"
#include "common/os_user.h"
#include "common/random.h"
#include "pg/wal.h"
#include "runtime/container.h"
#include "engine/engine_internal.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers
namespace {

// The client-facing host for a listen address: a wildcard is reached through loopback.
std::string ClientHost(const std::string& listen_address) {
  std::string first = listen_address.substr(0, listen_address.find(','));
  if (first == "*" || first == "0.0.0.0" || first.empty()) return "127.0.0.1";
  if (first == "::") return "::1";
  return first;
}

std::string MakeUri(const std::string& user, const std::string& password, const std::string& host,
                    int port) {
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("postgresql://{}:{}@{}{}{}:{}/postgres", user, password, v6 ? "[" : "", host,
                     v6 ? "]" : "", port);
}

// Listen addresses end up inside a quoted postgresql.conf value: accept only what an address
// can look like, so nothing else can be smuggled into the file.
Status ValidateListenAddress(const std::string& address) {
  if (address == "*" || address == "localhost") return Status::OK();
  unsigned char buf[16];
  if (inet_pton(AF_INET, address.c_str(), buf) == 1 ||
      inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    return Status::OK();
  }
  return Status::InvalidArgument(fmt::format(
      "listen address {} is not an IP address, 'localhost' or '*'", QuoteForDisplay(address)));
}

}  // namespace

std::string DefaultHome() {
  if (const char* env = std::getenv("PGBRANCH_HOME"); env && *env) return env;
  if (RunningAsRoot()) return "/var/lib/pgbranch";
  const char* home = std::getenv("HOME");
  return fmt::format("{}/.pgbranch", home && *home ? home : ".");
}

Engine::Engine(const EngineEnv& env) : env_(env), audit_(*env.clock) {}

Engine::~Engine() {
  Status s = FlushAudit();
  if (!s.ok()) spdlog::warn("audit trail not written: {}", s.message());
}

Status Engine::FlushAudit() {
  std::vector<AuditRow> rows = audit_.Take();
  if (rows.empty() || !catalog_) return Status::OK();
  return catalog_->Transaction([&] { return catalog_->InsertAudit(rows); });
}

Result<std::unique_ptr<Engine>> Engine::Open(const EngineEnv& env) {
  if (!env.runner || !env.clock || !env.ports) return Status::Internal("incomplete EngineEnv");
  std::unique_ptr<Engine> engine(new Engine(env));
  PGB_ASSIGN_OR_RETURN(engine->env_.home, AbsolutePath(env.home));
  const std::string& home = engine->env_.home;
  // Root runs the servers as another account, which must be able to traverse (not list) the
  // home to reach the pool and the socket directory; everything inside stays owner-only.
  PGB_RETURN_IF_ERROR(EnsureDir(home, RunningAsRoot() ? 0711 : 0700));
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(home, "locks"), 0700));
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(home, "logs"), 0700));
  PGB_ASSIGN_OR_RETURN(engine->catalog_, Catalog::Open(JoinPath(home, "state.db")));
  engine->runner_ = NewAuditedRunner(*env.runner, engine->audit_);
  return engine;
}

Runtime& Engine::RuntimeOfKind(const std::string& kind) {
  std::string key = IsContainerRuntime(kind) ? kind : "native";
  auto& slot = runtimes_[key];
  if (!slot) {
    // Containers are driven with the caller's runner: their state queries (one per readiness
    // poll) are reads, and the audited runtime records every call that changes something.
    slot = NewAuditedRuntime(key == "native" ? NewNativeRuntime(*runner_)
                                             : NewContainerRuntime(*env_.runner, key),
                             audit_);
  }
  return *slot;
}

Runtime& Engine::RuntimeFor(const ProjectRow& project) { return RuntimeOfKind(project.runtime); }

std::string Engine::SocketDir(const ProjectRow& project) const {
  if (!IsContainerRuntime(project.runtime)) return JoinPath(env_.home, "run");
  return JoinPath(env_.home, fmt::format("sockets/{}", project.id));
}

Result<std::optional<OsUser>> Engine::ServerUserFor(const ProjectRow& project) {
  if (!IsContainerRuntime(project.runtime)) return ServerUser();
  if (project.server_uid <= 0 || project.server_gid < 0) {
    return Status::Internal(fmt::format("project {} has no postgres uid for its image", project.name));
  }
  OsUser user;
  user.name = "postgres";
  user.uid = static_cast<uid_t>(project.server_uid);
  user.gid = static_cast<gid_t>(project.server_gid);
  user.groups = {user.gid};
  return std::optional<OsUser>(user);
}

Status Engine::InitProjectDataDir(const ProjectRow& project, const std::string& data_dir,
                                  const std::optional<OsUser>& os_user) {
  InstanceSpec spec;
  spec.name = project.name;
  spec.data_dir = data_dir;
  spec.bin_dir = project.pg_bin;
  spec.os_user = os_user;
  spec.image = project.image;
  PGB_ASSIGN_OR_RETURN(CommandResult r,
                       RuntimeFor(project).RunTool(spec, "initdb",
                                                   InitdbArgs(data_dir, project.superuser, project.pg_major),
                                                   std::chrono::minutes(5)));
  if (!r.Succeeded()) {
    return Status::CommandFailed(fmt::format("initdb failed: {}", TailLines(r.out + r.err, 5)));
  }
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  return FinishInitDataDir(data_dir, owner);
}

Status Engine::CheckDataDirVersion(const InstanceSpec& spec, int major,
                                  const std::string& binaries) {
  Result<int> made_by = DataDirMajorVersion(spec.data_dir);
  if (!made_by.ok() || major <= 0 || *made_by == major) return Status::OK();
  return Status::FailedPrecondition(fmt::format(
      "the data directory of {} was made by PostgreSQL {}, but {} PostgreSQL {}; a major "
      "version cannot read another's data directory (upgrade with pg_upgrade, or run "
      "PostgreSQL {})",
      spec.name, *made_by, binaries, major, *made_by));
}

Status Engine::ExplainStartFailure(const ProjectRow& project, const InstanceSpec& spec,
                                   Status failure) {
  if (failure.ok() || !IsContainerRuntime(project.runtime)) return failure;
  // The image may no longer be what the project was made with (a tag moved): say so, rather
  // than what the engine or the server tripped over first.
  Result<ImageInfo> image = ProbeImage(*env_.runner, project.runtime, project.image);
  if (!image.ok()) return failure;
  Status clash = CheckDataDirVersion(
      spec, image->major, fmt::format("image {} now holds", project.image));
  return clash.ok() ? failure : clash;
}

// ---------------------------------------------------------------------------------------------
// Settings, pool, paths

void Engine::Note(std::string_view message) {
  if (env_.progress) env_.progress->Note(message);
}

Status Engine::Timed(std::string_view step, const std::function<Status()>& body) {
  auto start = std::chrono::steady_clock::now();
  Status s = body();
  if (s.ok() && env_.progress) env_.progress->Step(step, std::chrono::steady_clock::now() - start);
  return s;
}

Result<Pool*> Engine::RequirePool(bool create_default) {
  if (pool_) return pool_.get();
  auto config = LoadPoolConfig();
  if (!config.ok() && config.status().Is(StatusCode::kNotFound)) {
    if (!create_default) return config.status();
    PGB_RETURN_IF_ERROR(Init(InitOptions{}).status());
    if (pool_) return pool_.get();
    config = LoadPoolConfig();
  }
  if (!config.ok()) return config.status();
  PGB_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool, OpenPool(*config, *runner_));
  pool_ = NewAuditedPool(std::move(pool), audit_);
  return pool_.get();
}

Result<std::optional<OsUser>> Engine::ServerUser() {
  PGB_ASSIGN_OR_RETURN(auto name, catalog_->GetSetting(kOsUser));
  if (!name && !RunningAsRoot()) return std::optional<OsUser>();  // run as ourselves
  std::string user = name.value_or("postgres");
  auto found = LookupOsUser(user);
  if (!found.ok()) {
    return Status::FailedPrecondition(fmt::format(
        "PostgreSQL refuses to run as root and there is no OS user {} to run it as; install "
        "PostgreSQL (apt-get install postgresql-15) or choose one with 'pgbranch init --os-user "
        "NAME'",
        user));
  }
  if (found->uid == 0) {
    return Status::FailedPrecondition("PostgreSQL refuses to run as root; choose another OS user");
  }
  return std::optional<OsUser>(*found);
}

Result<PortRange> Engine::LoadPortRange() {
  PGB_ASSIGN_OR_RETURN(auto text, catalog_->GetSetting(kPortRange));
  if (!text) return PortRange{};
  return ParsePortRange(*text);
}

Result<ProjectRow> Engine::LoadProject(const std::string& name) {
  PGB_RETURN_IF_ERROR(ValidateName("project", name));
  PGB_ASSIGN_OR_RETURN(auto row, catalog_->FindProject(name));
  if (!row) {
    return Status::NotFound(
        fmt::format("project {} does not exist; see 'pgbranch project list'", name));
  }
  return std::move(*row);
}

Result<BranchRow> Engine::LoadBranch(const ProjectRow& project, const std::string& name) {
  PGB_RETURN_IF_ERROR(ValidateName("branch", name));
  PGB_ASSIGN_OR_RETURN(auto row, catalog_->FindBranch(project.id, name));
  if (!row) {
    return Status::NotFound(
        fmt::format("branch {}/{} does not exist; see 'pgbranch branch list {}'", project.name,
                    name, project.name));
  }
  return std::move(*row);
}

Result<std::unique_ptr<FileLock>> Engine::LockProject(const ProjectRow& project) {
  return FileLock::Acquire(JoinPath(env_.home, fmt::format("locks/project-{}.lock", project.id)),
                           kLockWait);
}

std::string Engine::LogPath(const BranchRow& branch) const {
  return JoinPath(env_.home, fmt::format("logs/branch-{}.log", branch.id));
}

Result<InstanceSpec> Engine::Spec(const ProjectRow& project, const BranchRow& branch) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  InstanceSpec spec;
  spec.name = Ref(project, branch);
  spec.data_dir = pool->VolumePath(branch.volume);
  spec.bin_dir = project.pg_bin;
  spec.log_path = LogPath(branch);
  PGB_ASSIGN_OR_RETURN(spec.os_user, ServerUserFor(project));
  if (IsContainerRuntime(project.runtime)) {
    spec.image = project.image;
    spec.container_name = ContainerName(env_.home, project.name, branch.name);
    spec.mounts = {SocketDir(project), JoinPath(env_.home, "wal")};
    spec.labels = {{kLabelHome, env_.home},
                   {kLabelBranchId, std::to_string(branch.id)},
                   {kLabelBranch, Ref(project, branch)}};
  }
  return spec;
}

ConnParams Engine::AdminParams(const ProjectRow& project, const BranchRow& branch) const {
  ConnParams params;
  params.host = SocketDir(project);
  params.port = branch.port;
  params.user = project.superuser;
  params.dbname = "postgres";
  return params;
}

InstanceConfig Engine::ConfigFor(const ProjectRow& project, const BranchRow& branch) const {
  InstanceConfig config;
  config.port = branch.port;
  config.listen_addresses = project.listen_address;
  config.socket_dir = SocketDir(project);
  config.cluster_name = Ref(project, branch);
  config.archive_dir = ArchiveDir(project, branch);
  config.pg_major = project.pg_major;
  return config;
}

Status Engine::CheckPoolSpace(Pool& pool) {
  PGB_ASSIGN_OR_RETURN(PoolUsage usage, pool.Usage());
  if (usage.free_bytes < kMinFreeBytes) {
    return Status::ResourceExhausted(
        fmt::format("the pool is full: {} free of {} ({}); delete branches or choose a larger pool",
                    FormatBytes(usage.free_bytes), FormatBytes(usage.size_bytes), pool.Describe()));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Instances

Result<InstanceStatus> Engine::InspectBranch(const ProjectRow& project, const BranchRow& branch) {
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, branch));
  return RuntimeFor(project).Inspect(spec);
}

Result<std::optional<FileOwner>> Engine::PrepareStart(const ProjectRow& project,
                                                      const BranchRow& branch,
                                                      const InstanceSpec& spec) {
  std::optional<FileOwner> owner;
  if (spec.os_user) owner = FileOwner{spec.os_user->uid, spec.os_user->gid};
  if (IsContainerRuntime(project.runtime)) {
    PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "sockets"), 0711));
  }
  PGB_RETURN_IF_ERROR(EnsureDir(SocketDir(project), 0700, owner));
  PGB_RETURN_IF_ERROR(EnsureArchiveDir(project, branch, owner));
  return owner;
}

Status Engine::StartInstance(const ProjectRow& project, const BranchRow& branch, bool set_password,
                             UndoStack* undo) {
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, branch));
  PGB_ASSIGN_OR_RETURN(std::optional<FileOwner> owner, PrepareStart(project, branch, spec));
  if (undo && FailpointEnabled("start-bad-config")) {
    // Makes the real postgres of a new instance refuse to start, to exercise the undo.
    std::string conf = JoinPath(spec.data_dir, "pgbranch.conf");
    PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(conf));
    PGB_RETURN_IF_ERROR(WriteFileAtomic(conf, text + "shared_buffers = 'nonsense'\n", 0600, owner));
  }
  if (!IsContainerRuntime(project.runtime)) {
    PGB_RETURN_IF_ERROR(CheckDataDirVersion(
        spec, project.pg_major, fmt::format("the binaries in {} are", project.pg_bin)));
  }
  ConnParams admin = AdminParams(project, branch);
  std::unique_ptr<Connection> conn;
  Runtime& runtime = RuntimeFor(project);
  PGB_RETURN_IF_ERROR(ExplainStartFailure(project, spec, Timed("Start", [&]() -> Status {
    spdlog::debug("{}: starting postgres", spec.name);
    PGB_RETURN_IF_ERROR(runtime.Start(spec));
    spdlog::debug("{}: postgres spawned", spec.name);
    if (undo) {
      undo->Push("stop the new server", [&runtime, spec] {
        return runtime.Stop(spec, StopMode::kImmediate, kStopTimeout);
      });
    }
    // The connection that proves the server ready also sets the password: after crash
    // recovery every first backend rebuilds the relation cache, so each saved login counts.
    PGB_ASSIGN_OR_RETURN(conn, ConnectWhenReady(admin, kReadyTimeout, kReadyPoll,
                                                StillRunningCheck(runtime, spec)));
    return Status::OK();
  })));
  if (!set_password) return Status::OK();
  return Timed("Password",
               [&] { return SetRolePassword(*conn, project.superuser, branch.password); });
}

Status Engine::StopInstance(const ProjectRow& project, const BranchRow& branch, StopMode mode) {
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, branch));
  return Timed("Stop", [&] { return RuntimeFor(project).Stop(spec, mode, kStopTimeout); });
}

// ---------------------------------------------------------------------------------------------
// Projects

Result<BranchInfo> Engine::CreateProject(const std::string& name,
                                         const ProjectCreateOptions& options) {
  PGB_RETURN_IF_ERROR(ValidateName("project", name));
  PGB_RETURN_IF_ERROR(ValidateListenAddress(options.listen_address));
  PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindProject(name));
  if (existing) return Status::AlreadyExists(fmt::format("project {} already exists", name));
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(true));
  PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
  ProjectRow project;
  project.name = name;
  project.runtime = options.runtime;
  if (IsContainerRuntime(options.runtime)) {
    if (!options.pg_bin.empty()) {
      return Status::InvalidArgument("--pg-bin is for the native runtime; containers use --image");
    }
    std::string image = options.image;
    if (image.empty()) {
      if (!options.pg_version) {
        return Status::InvalidArgument(fmt::format(
            "a {} project needs --image IMG or --pg-version N (which runs {})", options.runtime,
            DefaultImageName(17)));
      }
      image = DefaultImageName(*options.pg_version);
    }
    ImageInfo img;
    PGB_RETURN_IF_ERROR(Timed("Image", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(img, ProbeImage(*env_.runner, options.runtime, image));
      return Status::OK();
    }));
    if (options.pg_version && img.major != *options.pg_version) {
      return Status::InvalidArgument(fmt::format("image {} has PostgreSQL {}, not {}", image,
                                                 img.version, *options.pg_version));
    }
    project.image = image;
    project.pg_bin = img.bin_dir;
    project.pg_version = img.version;
    project.pg_major = img.major;
    project.server_uid = img.uid;
    project.server_gid = img.gid;
  } else if (options.runtime == "native") {
    if (!options.image.empty() || options.pg_version) {
      return Status::InvalidArgument(
          "--image and --pg-version are for container runtimes (--runtime docker|podman); the "
          "native runtime takes --pg-bin DIR");
    }
    PGB_ASSIGN_OR_RETURN(PgBinaries bins, FindPgBinaries(*runner_, options.pg_bin));
    project.pg_bin = bins.bin_dir;
    project.pg_version = bins.version;
    project.pg_major = bins.major;
  } else {
    return Status::InvalidArgument(fmt::format(
        "unknown runtime {}; choose native, docker or podman", QuoteForDisplay(options.runtime)));
  }
  PGB_ASSIGN_OR_RETURN(std::optional<OsUser> os_user, ServerUserFor(project));
  project.listen_address = options.listen_address;
  project.created_at = FormatTimestamp(env_.clock->Now());

  BranchRow main;
  main.name = kMainBranch;
  main.state = kStateCreating;
  main.password = RandomPassword(kPasswordLength);
  main.volume = NewVolumeName();
  main.created_at = project.created_at;

  UndoStack undo;
  PGB_ASSIGN_OR_RETURN(PortRange range, LoadPortRange());
  Status s = catalog_->Transaction([&]() -> Status {
    auto id = catalog_->InsertProject(project);
    if (!id.ok() && id.status().Is(StatusCode::kAlreadyExists)) {
      return Status::AlreadyExists(fmt::format("project {} already exists", name));
    }
    PGB_RETURN_IF_ERROR(id.status());
    project.id = *id;
    main.project_id = project.id;
    PGB_ASSIGN_OR_RETURN(std::set<int> used, catalog_->UsedPorts());
    PGB_ASSIGN_OR_RETURN(main.port,
                         PickPort(range, used, project.listen_address, *env_.ports, options.port));
    PGB_ASSIGN_OR_RETURN(main.id, catalog_->InsertBranch(main));
    return Status::OK();
  });
  PGB_RETURN_IF_ERROR(s);
  undo.Push("remove the catalog rows", [this, project, main] {
    PGB_RETURN_IF_ERROR(catalog_->DeleteBranch(main.id));
    return catalog_->DeleteProject(project.id);
  });
  undo.Push("remove the log", [this, main] { return RemoveFile(LogPath(main)); });

  auto lock = LockProject(project);
  if (!lock.ok()) return undo.Rollback(lock.status());

  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  s = Timed("Volume", [&] { return pool->CreateVolume(main.volume, owner); });
  if (s.ok()) {
    undo.Push("destroy the volume", [pool, main] { return pool->DestroyVolume(main.volume); });
    s = Timed("initdb",
              [&] { return InitProjectDataDir(project, pool->VolumePath(main.volume), os_user); });
  }
  if (s.ok()) s = ReserveMainSpace(main);
  if (s.ok()) {
    s = WriteInstanceConfig(pool->VolumePath(main.volume), ConfigFor(project, main), owner);
  }
  if (s.ok()) s = StartInstance(project, main, /*set_password=*/true, &undo);
  // Point-in-time recovery starts from a snapshot: this one lets main be recovered to any
  // time since it was made.
  SnapshotRow base;
  if (s.ok()) s = TakeSnapshot(project, main, /*fast=*/false, "base", false, undo, &base);
  if (s.ok()) {
    s = catalog_->Transaction([&]() -> Status {
      PGB_RETURN_IF_ERROR(catalog_->InsertSnapshot(base).status());
      return catalog_->SetBranchState(main.id, kStateRunning);
    });
  }
  if (!s.ok()) return undo.Rollback(s);
  undo.Commit();
  main.state = kStateRunning;
  return Describe(project, main, /*with_sizes=*/false);
}

Result<std::vector<ProjectInfo>> Engine::ListProjects() {
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches());
  std::vector<ProjectInfo> out;
  for (const auto& p : projects) {
    ProjectInfo info;
    info.name = p.name;
    info.runtime = p.runtime;
    info.image = p.image;
    info.pg_version = p.pg_version;
    info.pg_bin = p.pg_bin;
    info.created_at = p.created_at;
    info.branch_count =
        static_cast<int>(std::count_if(branches.begin(), branches.end(),
                                       [&](const BranchRow& b) { return b.project_id == p.id; }));
    out.push_back(std::move(info));
  }
  return out;
}

Result<ProjectInfo> Engine::GetProject(const std::string& name) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(name));
  PGB_ASSIGN_OR_RETURN(auto all, ListProjects());
  for (auto& info : all) {
    if (info.name == project.name) return std::move(info);
  }
  return Status::NotFound(fmt::format("project {} does not exist", name));
}

Status Engine::DeleteProject(const std::string& name, bool force) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(name));
  PGB_ASSIGN_OR_RETURN(auto lock, LockProject(project));
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
  std::vector<BranchRow> others;
  for (const auto& b : branches) {
    if (b.parent_id) others.push_back(b);
  }
  if (!others.empty() && !force) {
    return Status::FailedPrecondition(
        fmt::format("project {} has branches {}; delete them first or use --force", name,
                    JoinNames(project, others)));
  }
  // Deepest first, so no branch is destroyed before the ones cloned from it.
  std::vector<BranchRow> order;
  for (const auto& b : branches) {
    if (b.parent_id) continue;
    PGB_ASSIGN_OR_RETURN(auto below, Descendants(b));
    order.insert(order.end(), below.begin(), below.end());
    order.push_back(b);
  }
  for (const auto& b : order) PGB_RETURN_IF_ERROR(DestroyBranch(project, b));
  PGB_RETURN_IF_ERROR(catalog_->DeleteProject(project.id));
  PGB_RETURN_IF_ERROR(RemoveTree(JoinPath(env_.home, fmt::format("wal/{}", project.name))));
  if (IsContainerRuntime(project.runtime)) PGB_RETURN_IF_ERROR(RemoveTree(SocketDir(project)));
  return RemoveFile(JoinPath(env_.home, fmt::format("locks/project-{}.lock", project.id)));
}

// ---------------------------------------------------------------------------------------------
// Branches

Status Engine::ReserveBranch(const ProjectRow& project, BranchRow* row, std::optional<int> port,
                             UndoStack& undo) {
  PGB_ASSIGN_OR_RETURN(PortRange range, LoadPortRange());
  PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
    PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindBranch(project.id, row->name));
    if (existing) {
      return Status::AlreadyExists(fmt::format("branch {} already exists", Ref(project, *row)));
    }
    PGB_ASSIGN_OR_RETURN(std::set<int> used, catalog_->UsedPorts());
    PGB_ASSIGN_OR_RETURN(row->port,
                         PickPort(range, used, project.listen_address, *env_.ports, port));
    PGB_ASSIGN_OR_RETURN(row->id, catalog_->InsertBranch(*row));
    return Status::OK();
  }));
  BranchRow reserved = *row;
  undo.Push("remove the catalog row", [this, reserved] {
    PGB_RETURN_IF_ERROR(RemoveFile(LogPath(reserved)));
    return catalog_->DeleteBranch(reserved.id);
  });
  return Status::OK();
}

Status Engine::TakeSnapshot(const ProjectRow& project, const BranchRow& branch, bool fast,
                            const std::string& label, bool implicit, UndoStack& undo,
                            SnapshotRow* snapshot) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(InstanceStatus status, InspectBranch(project, branch));

  SnapshotRow snap;
  snap.branch_id = branch.id;
  snap.volume = branch.volume;
  snap.name = NewSnapshotName();
  snap.label = label;
  snap.implicit = implicit;
  snap.created_at = FormatTimestamp(env_.clock->Now());

  std::unique_ptr<Connection> conn;
  if (status.running) {
    PGB_ASSIGN_OR_RETURN(conn, Connection::Open(AdminParams(project, branch)));
  }
  if (!status.running || pool->Capabilities().atomic_snapshots) {
    // A CHECKPOINT first keeps a clone's crash recovery short: it replays only the WAL written
    // since. Without it (--fast) the atomic snapshot is just as consistent, only slower to start.
    if (status.running && !fast) {
      PGB_RETURN_IF_ERROR(Timed("Checkpoint", [&] { return Checkpoint(*conn); }));
    }
    PGB_RETURN_IF_ERROR(
        Timed("Snapshot", [&] { return pool->CreateSnapshot(branch.volume, snap.name); }));
  } else {
    // A file-by-file copy of a running server is only consistent inside a base backup
    // (PostgreSQL docs 26.3.3): pg_backup_start checkpoints and marks the start; the pool copies;
    // pg_backup_stop returns the backup_label the copy needs to recover to a consistent point;
    // pg_wal is copied again so it holds the WAL up to the backup's end. Both calls must run in
    // one session; if anything fails, closing the session aborts the backup.
    bool v15 = conn->ServerVersion() >= 150000;
    PGB_RETURN_IF_ERROR(Timed("Backup start", [&] {
      return conn->Exec(
          v15 ? "SELECT pg_backup_start($1, true)" : "SELECT pg_start_backup($1, true, false)",
          {fmt::format("pgbranch {}", snap.name)});
    }));
    SnapshotBracket bracket;
    bracket.recopy_dirs = {"pg_wal"};
    bracket.between = [&]() -> Result<std::map<std::string, std::string>> {
      PGB_ASSIGN_OR_RETURN(
          std::vector<Row> rows,
          conn->Query(v15 ? "SELECT labelfile, spcmapfile FROM pg_backup_stop(false)"
                          : "SELECT labelfile, spcmapfile FROM pg_stop_backup(false, false)"));
      if (rows.size() != 1 || rows[0].size() != 2 || !rows[0][0]) {
        return Status::Internal("pg_backup_stop returned no backup_label");
      }
      std::map<std::string, std::string> files = {{"backup_label", *rows[0][0]}};
      if (rows[0][1] && !rows[0][1]->empty()) files["tablespace_map"] = *rows[0][1];
      return files;
    };
    PGB_RETURN_IF_ERROR(Timed(
        "Snapshot", [&] { return pool->CreateSnapshot(branch.volume, snap.name, &bracket); }));
  }
  undo.Push("destroy the snapshot",
            [pool, snap] { return pool->DestroySnapshot(snap.volume, snap.name); });
  PGB_RETURN_IF_ERROR(RecordWalPosition(project, branch, conn.get(), &snap));
  PGB_RETURN_IF_ERROR(Failpoint("branch-after-snapshot"));
  *snapshot = snap;
  return Status::OK();
}

Status Engine::CloneFromSnapshot(const ProjectRow& project, const SnapshotRow& snapshot,
                                 BranchRow* row, UndoStack& undo,
                                 const RecoverySettings* recovery) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_RETURN_IF_ERROR(Timed(
      "Clone", [&] { return pool->CloneSnapshot(snapshot.volume, snapshot.name, row->volume); }));
  BranchRow cloned = *row;
  undo.Push("destroy the volume", [pool, cloned] { return pool->DestroyVolume(cloned.volume); });
  PGB_RETURN_IF_ERROR(LimitBranchSpace(project, *row));
  PGB_RETURN_IF_ERROR(Failpoint("branch-after-clone"));

  PGB_ASSIGN_OR_RETURN(std::optional<OsUser> os_user, ServerUserFor(project));
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  std::string archive = ArchiveDir(project, *row);
  undo.Push("remove the WAL archive", [this, archive] { return RemoveTree(archive); });
  std::string data_dir = pool->VolumePath(row->volume);
  if (!recovery) {
    PGB_RETURN_IF_ERROR(PrepareClonedDataDir(data_dir, ConfigFor(project, *row), owner));
    PGB_RETURN_IF_ERROR(StartInstance(project, *row, /*set_password=*/true, &undo));
    CrashPoint("crash-after-start");
    return Status::OK();
  }
  InstanceConfig config = ConfigFor(project, *row);
  config.recovery = *recovery;
  PGB_RETURN_IF_ERROR(PrepareClonedDataDir(data_dir, config, owner));
  PGB_RETURN_IF_ERROR(WriteRecoverySignal(data_dir, owner));
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, *row));
  PGB_RETURN_IF_ERROR(PrepareStart(project, *row, spec).status());
  Runtime& runtime = RuntimeFor(project);
  PGB_RETURN_IF_ERROR(Timed("Recover", [&]() -> Status {
    PGB_RETURN_IF_ERROR(runtime.Start(spec));
    undo.Push("stop the new server", [&runtime, spec] {
      return runtime.Stop(spec, StopMode::kImmediate, kStopTimeout);
    });
    return WaitForPromotion(project, *row, spec);
  }));
  // Promoted: the recovery settings are spent (PostgreSQL removed recovery.signal); the next
  // start is an ordinary one.
  PGB_RETURN_IF_ERROR(WriteInstanceConfig(data_dir, ConfigFor(project, *row), owner));
  return Timed("Password", [&]() -> Status {
    PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(project, *row)));
    return SetRolePassword(*conn, project.superuser, row->password);
  });
}

Status Engine::CommitClone(BranchRow* row, SnapshotRow* snapshot, const EventRow& event) {
  return catalog_->Transaction([&]() -> Status {
    if (snapshot->id == 0) {
      PGB_ASSIGN_OR_RETURN(snapshot->id, catalog_->InsertSnapshot(*snapshot));
    }
    row->snapshot_id = snapshot->id;
    row->state = kStateRunning;
    PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(*row));
    EventRow e = event;
    e.detail = fmt::format("{} (snapshot {})", event.detail, snapshot->id);
    return catalog_->InsertEvent(e);
  });
}

EventRow Engine::Event(const BranchRow& branch, std::string kind, std::string detail) const {
  EventRow e;
  e.branch_id = branch.id;
  e.at = FormatTimestamp(env_.clock->Now());
  e.kind = std::move(kind);
  e.detail = std::move(detail);
  return e;
}

Result<BranchInfo> Engine::CreateBranch(const BranchRef& ref, const BranchCreateOptions& options) {
  PGB_RETURN_IF_ERROR(ValidateName("project", ref.project));
  PGB_RETURN_IF_ERROR(ValidateName("branch", ref.branch));
  std::optional<RecoveryTarget> target;
  if (options.pitr) {
    if (options.snapshot) {
      return Status::InvalidArgument("--pitr picks its own snapshot; leave out --snapshot");
    }
    PGB_ASSIGN_OR_RETURN(target, ParseRecoveryTarget(*options.pitr, env_.clock->Now()));
  }
  BranchRef parent_ref{ref.project, kMainBranch};
  if (options.parent) {
    PGB_ASSIGN_OR_RETURN(parent_ref, ParseBranchRef(*options.parent));
    if (parent_ref.project != ref.project) {
      return Status::InvalidArgument(
          fmt::format("parent {} is in another project; a branch's parent must be in project {}",
                      parent_ref.ToString(), ref.project));
    }
  }
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(auto lock, LockProject(project));
  spdlog::debug("{}: project locked", ref.ToString());

  // From an existing snapshot, the parent is the branch the snapshot is of.
  std::optional<SnapshotRow> from;
  if (options.snapshot) {
    auto snap = catalog_->GetSnapshot(*options.snapshot);
    if (!snap.ok()) {
      return Status::NotFound(fmt::format("snapshot {} does not exist", *options.snapshot));
    }
    PGB_ASSIGN_OR_RETURN(BranchRow of, catalog_->GetBranch(snap->branch_id));
    if (of.project_id != project.id) {
      return Status::InvalidArgument(
          fmt::format("snapshot {} is of a branch of another project", *options.snapshot));
    }
    if (options.parent && parent_ref.branch != of.name) {
      return Status::InvalidArgument(
          fmt::format("snapshot {} is of {}/{}, not of {}; leave out --parent", *options.snapshot,
                      project.name, of.name, parent_ref.ToString()));
    }
    parent_ref.branch = of.name;
    from = *snap;
  }
  auto parent = LoadBranch(project, parent_ref.branch);
  if (!parent.ok()) {
    return Status::NotFound(fmt::format("parent {} does not exist", parent_ref.ToString()));
  }
  if (parent->state != kStateRunning && parent->state != kStateStopped) {
    return Status::FailedPrecondition(
        fmt::format("parent {} is {}", parent_ref.ToString(), parent->state));
  }
  PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindBranch(project.id, ref.branch));
  if (existing) {
    return Status::AlreadyExists(fmt::format("branch {} already exists", ref.ToString()));
  }
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(true));
  PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));

  BranchRow row;
  row.project_id = project.id;
  row.name = ref.branch;
  row.parent_id = parent->id;
  row.state = kStateCreating;
  row.password = RandomPassword(kPasswordLength);
  row.volume = NewVolumeName();
  row.created_at = FormatTimestamp(env_.clock->Now());
  if (target) return CreatePitrBranch(project, *parent, std::move(row), *target, options.port);

  UndoStack undo;
  PGB_RETURN_IF_ERROR(ReserveBranch(project, &row, options.port, undo));
  spdlog::debug("{}: reserved port {}", ref.ToString(), row.port);
  SnapshotRow snapshot;
  Status s;
  if (from) {
    snapshot = *from;
  } else {
    s = TakeSnapshot(project, *parent, options.fast, fmt::format("for {}", ref.ToString()),
                     /*implicit=*/true, undo, &snapshot);
  }
  if (s.ok()) s = CloneFromSnapshot(project, snapshot, &row, undo);
  if (s.ok() && options.max_size_bytes) s = SetBranchSpaceLimit(row, *options.max_size_bytes);
  if (s.ok()) {
    s = CommitClone(&row, &snapshot,
                    Event(row, "created", fmt::format("created from {}", parent_ref.ToString())));
  }
  if (!s.ok()) return undo.Rollback(s);
  undo.Commit();
  return Describe(project, row, /*with_sizes=*/false);
}

Result<std::vector<BranchRow>> Engine::Descendants(const BranchRow& branch) {
  std::vector<BranchRow> out;
  PGB_ASSIGN_OR_RETURN(auto children, catalog_->ChildBranches(branch.id));
  for (const auto& child : children) {
    PGB_ASSIGN_OR_RETURN(auto below, Descendants(child));
    out.insert(out.end(), below.begin(), below.end());
    out.push_back(child);
  }
  return out;
}

Status Engine::DestroySnapshotAndRow(const SnapshotRow& snapshot) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_RETURN_IF_ERROR(pool->DestroySnapshot(snapshot.volume, snapshot.name));
  return catalog_->DeleteSnapshot(snapshot.id);
}

Status Engine::SweepImplicitSnapshots(const ProjectRow& project) {
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
  for (const auto& branch : branches) {
    PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(branch.id));
    for (const auto& snap : snapshots) {
      if (!snap.implicit) continue;
      PGB_ASSIGN_OR_RETURN(auto users, catalog_->BranchesFromSnapshot(snap.id));
      if (!users.empty()) continue;
      Status s = DestroySnapshotAndRow(snap);
      // Storage may still hold on to it (ZFS: a retired volume cloned from it); a later sweep
      // takes it once that is gone.
      if (s.Is(StatusCode::kFailedPrecondition)) continue;
      PGB_RETURN_IF_ERROR(s);
    }
  }
  return Status::OK();
}

Status Engine::DestroyBranch(const ProjectRow& project, const BranchRow& branch) {
  // Marked first, so a crash part-way leaves a row that says what was happening.
  BranchRow row = branch;
  row.state = kStateDeleting;
  PGB_RETURN_IF_ERROR(catalog_->SetBranchState(row.id, kStateDeleting));
  PGB_RETURN_IF_ERROR(StopInstance(project, row, StopMode::kImmediate));
  {
    PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, row));
    PGB_RETURN_IF_ERROR(RuntimeFor(project).Remove(spec));
  }
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_RETURN_IF_ERROR(Timed("Destroy", [&] { return pool->DestroyVolume(row.volume); }));
  // The row points at its origin snapshot, which may be one of its own (after a reset to it):
  // let go of it first, then the branch's own snapshots can go (the branches made from them
  // were destroyed before this one), then the row. Its origin, if implicit and now unused,
  // goes with the caller's SweepImplicitSnapshots.
  row.snapshot_id.reset();
  PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(row));
  PGB_ASSIGN_OR_RETURN(auto snapshots, catalog_->ListSnapshots(row.id));
  for (const auto& snap : snapshots) PGB_RETURN_IF_ERROR(DestroySnapshotAndRow(snap));
  PGB_RETURN_IF_ERROR(catalog_->DeleteBranch(row.id));
  PGB_RETURN_IF_ERROR(
      RemoveTree(JoinPath(env_.home, fmt::format("wal/{}/{}", project.name, row.id))));
  return RemoveFile(LogPath(row));
}

Status Engine::DeleteBranch(const BranchRef& ref, bool recursive) {
  // Deleting does not need a settled branch: a half-deleted one can be deleted again.
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/false));
  const ProjectRow& project = b.project;
  const BranchRow& row = b.row;
  if (!row.parent_id) {
    PGB_ASSIGN_OR_RETURN(auto below, Descendants(row));
    if (!below.empty()) {
      return Status::FailedPrecondition(fmt::format(
          "{} is the project's root and other branches exist ({}); delete them first, or the "
          "whole project with 'pgbranch project delete {} --force'",
          ref.ToString(), JoinNames(project, below), project.name));
    }
    return Status::FailedPrecondition(fmt::format(
        "{} is the project's root; delete the project instead: pgbranch project delete {}",
        ref.ToString(), project.name));
  }
  PGB_ASSIGN_OR_RETURN(auto below, Descendants(row));
  if (!below.empty() && !recursive) {
    return Status::FailedPrecondition(
        fmt::format("{} has child branches ({}); delete them first or use --recursive",
                    ref.ToString(), JoinNames(project, below)));
  }
  for (const auto& b : below) PGB_RETURN_IF_ERROR(DestroyBranch(project, b));
  PGB_RETURN_IF_ERROR(DestroyBranch(project, row));
  return SweepImplicitSnapshots(project);
}

Result<BranchInfo> Engine::ResetBranch(const BranchRef& ref, const ResetOptions& options) {
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true));
  const ProjectRow& project = b.project;
  const BranchRow& row = b.row;
  if (!row.parent_id) {
    return Status::FailedPrecondition(fmt::format("{} has no parent to reset to", ref.ToString()));
  }
  PGB_ASSIGN_OR_RETURN(BranchRow parent, catalog_->GetBranch(*row.parent_id));
  std::optional<SnapshotRow> to;
  if (options.snapshot) {
    auto snap = catalog_->GetSnapshot(*options.snapshot);
    if (!snap.ok()) {
      return Status::NotFound(fmt::format("snapshot {} does not exist", *options.snapshot));
    }
    if (snap->branch_id != row.id && snap->branch_id != parent.id) {
      return Status::InvalidArgument(fmt::format("snapshot {} is not of {} or of its parent {}",
                                                 *options.snapshot, ref.ToString(),
                                                 Ref(project, parent)));
    }
    to = *snap;
  }
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(true));
  PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
  PGB_ASSIGN_OR_RETURN(InstanceStatus before, InspectBranch(project, row));

  UndoStack undo;
  // The old data is about to be discarded: no shutdown checkpoint needed.
  PGB_RETURN_IF_ERROR(StopInstance(project, row, StopMode::kImmediate));
  if (before.running) {
    undo.Push("restart the old data", [this, project, row] {
      return StartInstance(project, row, /*set_password=*/false, nullptr);
    });
  }
  // The same port and password on a new volume: the URI does not change.
  BranchRow fresh = row;
  fresh.volume = NewVolumeName();
  SnapshotRow snapshot;
  Status s;
  std::string what;
  if (to) {
    snapshot = *to;
    PGB_ASSIGN_OR_RETURN(BranchRow of, catalog_->GetBranch(to->branch_id));
    what = fmt::format("reset to {}", Ref(project, of));
  } else {
    s = TakeSnapshot(project, parent, options.fast, fmt::format("for {}", ref.ToString()),
                     /*implicit=*/true, undo, &snapshot);
    what = fmt::format("reset to {}", Ref(project, parent));
  }
  if (s.ok()) s = CloneFromSnapshot(project, snapshot, &fresh, undo);
  if (s.ok()) s = CommitClone(&fresh, &snapshot, Event(fresh, "reset", what));
  if (!s.ok()) return undo.Rollback(s);
  undo.Commit();

  // The catalog now points at the new volume; the old one and its origin snapshot are
  // orphans whatever happens next, so failing to remove them is only worth a note (doctor
  // finds what is left).
  Status cleanup = Timed("Destroy", [&] { return pool->DestroyVolume(row.volume); });
  // The old data's WAL history ends here; the new volume archives into its own directory.
  if (cleanup.ok()) cleanup = RemoveTree(ArchiveDir(project, row));
  if (cleanup.ok()) cleanup = SweepImplicitSnapshots(project);
  if (!cleanup.ok()) Note(fmt::format("left the old data behind: {}", cleanup.message()));
  return Describe(project, fresh, /*with_sizes=*/false);
}

Result<Engine::LockedBranch> Engine::LockBranch(const BranchRef& ref, bool require_settled) {
  LockedBranch b;
  PGB_ASSIGN_OR_RETURN(b.project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(b.lock, LockProject(b.project));
  PGB_ASSIGN_OR_RETURN(b.row, LoadBranch(b.project, ref.branch));
  if (require_settled && b.row.state != kStateRunning && b.row.state != kStateStopped) {
    return Status::FailedPrecondition(fmt::format("{} is {}", ref.ToString(), b.row.state));
  }
  return b;
}

Result<std::string> Engine::BranchLogs(const BranchRef& ref, int tail_lines) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow branch, LoadBranch(project, ref.branch));
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, branch));
  return RuntimeFor(project).Logs(spec, tail_lines);
}

Result<ImageInfo> Engine::BuildImage(ImageBuildOptions options) {
  for (const auto& engine : options.engines) {
    if (!IsContainerRuntime(engine)) {
      return Status::InvalidArgument(
          fmt::format("unknown container engine {}; choose docker or podman", QuoteForDisplay(engine)));
    }
  }
  if (options.work_dir.empty()) options.work_dir = JoinPath(env_.home, "tmp");
  return pgb::BuildImage(*runner_, options, [this](std::string_view step) { Note(step); });
}

Result<BranchInfo> Engine::StartBranch(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true));
  const ProjectRow& project = b.project;
  BranchRow& row = b.row;
  PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, row));
  if (st.running) {
    Note(fmt::format("{} is already running", ref.ToString()));
  } else {
    PGB_RETURN_IF_ERROR(StartInstance(project, row, /*set_password=*/false, nullptr));
  }
  PGB_RETURN_IF_ERROR(catalog_->SetBranchState(row.id, kStateRunning));
  row.state = kStateRunning;
  return Describe(project, row, false);
}

Result<BranchInfo> Engine::StopBranch(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true));
  const ProjectRow& project = b.project;
  BranchRow& row = b.row;
  PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, row));
  if (st.running && st.ready) {
    // Archive the WAL up to now, so a stopped branch can still be recovered to any time
    // before it stopped.
    Status archived = Timed("Archive", [&] { return ArchiveCurrentWal(project, row).status(); });
    if (!archived.ok()) Note(fmt::format("WAL not archived before the stop: {}", archived.message()));
  }
  PGB_RETURN_IF_ERROR(StopInstance(project, row, StopMode::kFast));
  PGB_RETURN_IF_ERROR(catalog_->SetBranchState(row.id, kStateStopped));
  row.state = kStateStopped;
  return Describe(project, row, false);
}

Result<BranchInfo> Engine::RestartBranch(const BranchRef& ref) {
  PGB_RETURN_IF_ERROR(StopBranch(ref).status());
  return StartBranch(ref);
}

// ---------------------------------------------------------------------------------------------
// Reading

Result<BranchInfo> Engine::Describe(const ProjectRow& project, const BranchRow& branch,
                                    bool with_sizes) {
  BranchInfo info;
  info.project = project.name;
  info.name = branch.name;
  if (branch.parent_id) {
    PGB_ASSIGN_OR_RETURN(BranchRow parent, catalog_->GetBranch(*branch.parent_id));
    info.parent = Ref(project, parent);
  }
  info.state = branch.state;
  info.port = branch.port;
  info.host = ClientHost(project.listen_address);
  info.user = project.superuser;
  info.uri = MakeUri(project.superuser, branch.password, info.host, branch.port);
  info.masked_uri = MakeUri(project.superuser, "****", info.host, branch.port);
  info.created_at = branch.created_at;
  info.pg_version = project.pg_version;
  if (IsContainerRuntime(project.runtime)) {
    info.container = ContainerName(env_.home, project.name, branch.name);
  } else {
    info.log_path = LogPath(branch);
  }
  info.snapshot_id = branch.snapshot_id;
  info.recovery_target = branch.recovery_target;

  auto pool = RequirePool(false);
  if (!pool.ok()) return info;  // no pool (yet): nothing more to learn
  info.data_dir = (*pool)->VolumePath(branch.volume);
  if (branch.state == kStateRunning || branch.state == kStateStopped) {
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, branch));
    info.state = st.running ? kStateRunning : kStateStopped;
    info.runtime_detail = st.detail;
    // A container that ended, or restarts, without pgbranch stopping it says so.
    bool ended = st.engine_state == "exited" || st.engine_state == "restarting";
    if (!st.running && ended && branch.state == kStateRunning) info.state = st.engine_state;
    if (st.running) {
      info.pid = st.pid;
      if (st.started_at) {
        info.started_at = FormatTimestamp(*st.started_at);
        info.uptime_seconds =
            std::chrono::duration_cast<std::chrono::seconds>(env_.clock->Now() - *st.started_at)
                .count();
      }
    }
  }
  if (with_sizes) {
    auto space = (*pool)->VolumeSpace(branch.volume);
    if (space.ok()) {
      info.size_bytes = space->logical_bytes;
      info.exclusive_bytes = space->exclusive_bytes;
    } else {
      spdlog::debug("size of {}: {}", Ref(project, branch), space.status().message());
    }
    if (branch.state == kStateRunning || branch.state == kStateStopped) {
      auto wal = DescribeWal(project, branch, info.state == kStateRunning);
      if (wal.ok()) info.window = wal->window;
    }
  }
  return info;
}

Result<std::vector<BranchInfo>> Engine::ListBranches(const std::string& project_name,
                                                     bool with_sizes) {
  std::optional<int64_t> filter;
  std::map<int64_t, ProjectRow> projects;
  if (!project_name.empty()) {
    PGB_ASSIGN_OR_RETURN(ProjectRow p, LoadProject(project_name));
    filter = p.id;
    projects[p.id] = p;
  } else {
    PGB_ASSIGN_OR_RETURN(auto all, catalog_->ListProjects());
    for (auto& p : all) projects[p.id] = p;
  }
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListBranches(filter));
  std::vector<BranchInfo> out;
  for (const auto& row : rows) {
    PGB_ASSIGN_OR_RETURN(BranchInfo info, Describe(projects[row.project_id], row, with_sizes));
    out.push_back(std::move(info));
  }
  return out;
}

Result<BranchInfo> Engine::GetBranch(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
  return Describe(project, row, /*with_sizes=*/true);
}

Result<StatusInfo> Engine::GetStatus() {
  StatusInfo info;
  info.home = env_.home;
  PGB_ASSIGN_OR_RETURN(info.ports, LoadPortRange());
  auto user = ServerUser();
  if (user.ok()) {
    if (*user) {
      info.os_user = (*user)->name;
    } else {
      auto me = CurrentOsUser();
      info.os_user = me.ok() ? me->name : "";
    }
  }
  auto pool = RequirePool(false);
  if (pool.ok()) {
    info.pool.configured = true;
    info.pool.kind = (*pool)->Kind();
    info.pool.description = (*pool)->Describe();
    info.pool.capabilities = (*pool)->Capabilities();
    PGB_ASSIGN_OR_RETURN(auto why, catalog_->GetSetting(kPoolWhy));
    info.pool.why = why.value_or("");
    auto usage = (*pool)->Usage();
    if (usage.ok()) info.pool.usage = *usage;
  } else if (!pool.status().Is(StatusCode::kNotFound)) {
    return pool.status();
  }
  PGB_ASSIGN_OR_RETURN(info.projects, ListProjects());
  PGB_ASSIGN_OR_RETURN(info.branches, ListBranches("", /*with_sizes=*/true));
  return info;
}

}  // namespace pgb
