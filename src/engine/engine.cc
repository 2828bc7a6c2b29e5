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
#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/failpoint.h"
#include "common/fs.h"
#include "common/os_user.h"
#include "common/random.h"
#include "engine/engine_internal.h"
#include "pg/wal.h"
#include "runtime/container.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace internal {

std::string ClientHost(const std::string& listen_address) {
  std::string first = listen_address.substr(0, listen_address.find(','));
  if (first == "*" || first == "0.0.0.0" || first.empty()) return "127.0.0.1";
  if (first == "::") return "::1";
  return first;
}

std::string MakeUri(const std::string& user, const std::string& password, const std::string& host,
                    int port, const std::string& database) {
  bool v6 = host.find(':') != std::string::npos;
  return fmt::format("postgresql://{}:{}@{}{}{}:{}/{}", user, password, v6 ? "[" : "", host,
                     v6 ? "]" : "", port, database);
}

}  // namespace internal

namespace {

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
  return catalog_->InsertAudit(rows);
}

Result<std::unique_ptr<Engine>> Engine::Open(const EngineEnv& env) {
  if (!env.runner || !env.clock || !env.ports) return Status::Internal("incomplete EngineEnv");
  std::unique_ptr<Engine> engine(new Engine(env));
  PGB_ASSIGN_OR_RETURN(engine->env_.home, AbsolutePath(env.home));
  const std::string& home = engine->env_.home;
  // Root runs the servers as another account, which must be able to traverse (not list) the
  // home to reach the pool and the socket directory; everything inside stays owner-only. A new
  // home is made 0711 (0700 without root); an existing one keeps its mode (`--home /tmp` keeps
  // its sticky bit, a 0777 directory stays 0777), with only the traverse bits added for root.
  const mode_t traverse = RunningAsRoot() ? 0711 : 0700;
  if (IsDirectory(home)) {
    PGB_RETURN_IF_ERROR(AddModeBits(home, traverse & 0011));
  } else {
    PGB_RETURN_IF_ERROR(EnsureDir(home, traverse));
  }
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(home, "locks"), 0700));
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(home, "logs"), 0700));
  engine->locks_ = std::make_unique<Locks>(
      JoinPath(home, "locks"), [e = engine.get()](const std::string& note) { e->Note(note); });
  // A catalog is never made anew where a pool with data already is: that would hide every
  // branch and let doctor take their data for orphans.
  Catalog::Options options;
  options.backup_dir = JoinPath(home, "backups");
  std::string evidence;
  const bool has_pool = HomeHasPool(home, &evidence);
  options.create_if_missing = env.allow_lost_catalog || !has_pool;
  std::string db = JoinPath(home, "state.db");
  struct stat st {};
  const bool lost = has_pool && (::stat(db.c_str(), &st) != 0 || st.st_size == 0);
  auto refuse = [&](const std::string& what) {
    return Status::FailedPrecondition(fmt::format(
        "{}, but this home holds a pool with data ({}); pgbranch will not start over with an "
        "empty catalog. Restore the newest backup with 'pgbranch catalog restore --latest' (see "
        "'pgbranch catalog list'), or rebuild the catalog from the pool with 'pgbranch doctor "
        "--adopt'",
        what, evidence));
  };
  auto catalog = Catalog::Open(db, options);
  if (!catalog.ok() && catalog.status().Is(StatusCode::kNotFound)) {
    return refuse(catalog.status().message());
  }
  PGB_RETURN_IF_ERROR(catalog.status());
  engine->catalog_ = std::move(*catalog);
  if (lost) {
    // Made anew for a restore or an adoption: marked, so nothing else takes it for the truth
    // until one of them has run.
    PGB_RETURN_IF_ERROR(
        engine->catalog_->SetSetting(kCatalogLost, FormatTimestamp(env.clock->Now())));
    PGB_RETURN_IF_ERROR(engine->RestoreSettingsFromMarker());
  }
  PGB_ASSIGN_OR_RETURN(auto lost_since, engine->catalog_->GetSetting(kCatalogLost));
  if (lost_since && !env.allow_lost_catalog) {
    return refuse(
        fmt::format("the catalog {} was lost at {} and is being rebuilt", db, *lost_since));
  }
  if (!lost_since && !PathExists(JoinPath(home, "pool.json"))) {
    // A home from before pool.json: write it now that the catalog is known good.
    PGB_ASSIGN_OR_RETURN(auto kind, engine->catalog_->GetSetting(kPoolKind));
    if (kind) PGB_RETURN_IF_ERROR(engine->WriteHomeMarker());
  }
  PGB_RETURN_IF_ERROR(engine->DecideNaming());
  engine->audit_.SetSink(
      [e = engine.get()](const AuditRow& row) { return e->catalog_->InsertAudit({row}); });
  engine->runner_ = NewAuditedRunner(*env.runner, engine->audit_);
  engine->BackupCatalogIfDue();
  return engine;
}

Runtime& Engine::RuntimeOfKind(const std::string& kind) {
  std::string key = IsContainerRuntime(kind) ? kind : "native";
  MutexLock lock(init_mu_);
  auto& slot = runtimes_[key];
  if (!slot) {
    // Containers are driven with the caller's runner: their state queries (one per readiness
    // poll) are reads, and the audited runtime records every call that changes something.
    slot = NewAuditedRuntime(
        key == "native" ? NewNativeRuntime(*runner_) : NewContainerRuntime(*env_.runner, key),
        audit_);
  }
  return *slot;
}

Runtime& Engine::RuntimeFor(const ProjectRow& project) { return RuntimeOfKind(project.runtime); }

std::string Engine::SocketDir(const ProjectRow& project) const {
  if (!IsContainerRuntime(project.runtime) && !HasOwnOsUser(project)) {
    return JoinPath(env_.home, "run");
  }
  return JoinPath(env_.home, fmt::format("sockets/{}", project.id));
}

std::string Engine::ContainerOf(const ProjectRow& project, const BranchRow& branch) const {
  if (!by_ids_) return ContainerName(env_.home, project.name, branch.name);
  return ContainerName(env_.home, std::to_string(project.id), std::to_string(branch.id));
}

Result<std::optional<OsUser>> Engine::ServerUserFor(const ProjectRow& project) {
  if (HasOwnOsUser(project)) {
    const auto uid = static_cast<uid_t>(project.server_uid);
    Result<OsUser> own =
        CachedOsUser(fmt::format("uid {}", uid), [uid] { return LookupOsUserById(uid); });
    if (!own.ok()) {
      return Status::FailedPrecondition(
          fmt::format("the OS user of project {} (uid {}) is gone: {}; see 'pgbranch doctor'",
                      project.name, project.server_uid, own.status().message()));
    }
    return std::optional<OsUser>(*own);
  }
  if (!IsContainerRuntime(project.runtime)) return ServerUser();
  if (project.server_uid <= 0 || project.server_gid < 0) {
    return Status::Internal(
        fmt::format("project {} has no postgres uid for its image", project.name));
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
  PGB_ASSIGN_OR_RETURN(
      CommandResult r,
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
  Status clash =
      CheckDataDirVersion(spec, image->major, fmt::format("image {} now holds", project.image));
  return clash.ok() ? failure : clash;
}

// ---------------------------------------------------------------------------------------------
// Settings, pool, paths

namespace {
thread_local Progress* t_progress = nullptr;  // ProgressScope's binding
}  // namespace

ProgressScope::ProgressScope(Progress* progress) : previous_(t_progress) { t_progress = progress; }
ProgressScope::~ProgressScope() { t_progress = previous_; }

Progress* Engine::CurrentProgress() const { return t_progress ? t_progress : env_.progress; }

void Engine::Note(std::string_view message) {
  if (Progress* p = CurrentProgress()) p->Note(message);
}

Status Engine::Timed(std::string_view step, const std::function<Status()>& body) {
  Progress* progress = CurrentProgress();
  if (progress) progress->StepStarted(step);
  auto start = std::chrono::steady_clock::now();
  Status s = body();
  if (s.ok() && progress) progress->Step(step, std::chrono::steady_clock::now() - start);
  return s;
}

Result<Pool*> Engine::RequirePool(bool create_default) {
  {
    MutexLock lock(init_mu_);
    if (pool_) return pool_.get();
  }
  auto config = LoadPoolConfig();
  if (!config.ok() && config.status().Is(StatusCode::kNotFound)) {
    if (!create_default) return config.status();
    PGB_RETURN_IF_ERROR(Init(InitOptions{}).status());
    MutexLock lock(init_mu_);
    if (pool_) return pool_.get();
    config = LoadPoolConfig();
  }
  if (!config.ok()) return config.status();
  // One opening at a time: OpenPool mounts an image pool that is not mounted, and two threads
  // doing that at once would stack two mounts on one directory.
  MutexLock opening(open_mu_);
  {
    MutexLock lock(init_mu_);
    if (pool_) return pool_.get();
  }
  PGB_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool, OpenPool(*config, *runner_));
  MutexLock lock(init_mu_);
  if (!pool_) pool_ = NewAuditedPool(std::move(pool), audit_);
  return pool_.get();
}

Result<std::optional<OsUser>> Engine::ServerUser() {
  PGB_ASSIGN_OR_RETURN(auto name, catalog_->GetSetting(kOsUser));
  if (!name && !RunningAsRoot()) return std::optional<OsUser>();  // run as ourselves
  std::string user = name.value_or("postgres");
  auto found = CachedOsUser("name " + user, [&user] { return LookupOsUser(user); });
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

Result<OsUser> Engine::CachedOsUser(const std::string& key,
                                    const std::function<Result<OsUser>()>& lookup) {
  // Long enough for one listing or one serve poll; short enough that an account made or
  // removed meanwhile is seen at the next.
  constexpr auto kUserCacheAge = std::chrono::seconds(5);
  const auto now = std::chrono::steady_clock::now();
  {
    MutexLock lock(users_mu_);
    auto it = users_.find(key);
    if (it != users_.end() && now - it->second.first < kUserCacheAge) return it->second.second;
  }
  Result<OsUser> found = lookup();
  if (found.ok()) {
    MutexLock lock(users_mu_);
    users_[key] = {now, *found};
  }
  return found;
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

std::string Engine::LogPath(const BranchRow& branch) const {
  return JoinPath(env_.home, fmt::format("logs/branch-{}.log", branch.id));
}

std::string Engine::PassfilePath(const BranchRow& branch) const {
  return JoinPath(env_.home, fmt::format("pgpass/branch-{}", branch.id));
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
    spec.container_name = ContainerOf(project, branch);
    // Named by ids, a project's archives are one directory that no rename moves: the container
    // sees only its own project's. Named by names, a rename moves it under a running container,
    // so such a home's containers keep the whole of wal/.
    spec.mounts = {SocketDir(project), by_ids_ ? ArchiveRoot(project) : JoinPath(env_.home, "wal")};
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
  config.ssl = true;
  config.standby = StandbyFor(project, branch);
  // Enough to rebuild the catalog rows from the volume alone (doctor --adopt).
  nlohmann::json meta = {{"project", project.name},        {"branch", branch.name},
                         {"runtime", project.runtime},     {"image", project.image},
                         {"pg_bin", project.pg_bin},       {"superuser", project.superuser},
                         {"created_at", branch.created_at}};
  if (branch.parent_id) {
    auto parent = catalog_->GetBranch(*branch.parent_id);
    if (parent.ok()) meta["parent"] = parent->name;
  }
  if (!branch.recovery_target.empty()) meta["recovery_target"] = branch.recovery_target;
  config.metadata = meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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
  if (IsContainerRuntime(project.runtime) || HasOwnOsUser(project)) {
    PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "sockets"), 0711));
  }
  PGB_RETURN_IF_ERROR(EnsureDir(SocketDir(project), 0700, owner));
  PGB_RETURN_IF_ERROR(EnsureArchiveDir(project, branch, owner));
  // pgbranch.conf turns TLS on (ConfigFor): a new branch (whose clone dropped its parent's
  // files), one made before pgbranch served TLS, or one whose certificate is near its end or
  // no longer names the project's host, gets a new certificate here.
  PGB_ASSIGN_OR_RETURN(LocalCa ca, CertificateAuthority());
  ServerCertificateRequest request;
  request.common_name = Ref(project, branch);
  request.hosts = {"localhost", "127.0.0.1"};
  std::string host = ClientHost(project.listen_address);
  if (host != "localhost" && host != "127.0.0.1") request.hosts.push_back(host);
  Result<bool> issued = EnsureServerCertificate(ca, request, spec.data_dir, owner);
  if (!issued.ok()) {
    return Status(issued.status().code(),
                  fmt::format("issue a TLS certificate for {}: {}", Ref(project, branch),
                              issued.status().message()));
  }
  return owner;
}

Result<LocalCa> Engine::CertificateAuthority() {
  Result<LocalCa> ca = EnsureLocalCa(JoinPath(env_.home, "tls"));
  if (!ca.ok()) {
    return Status(ca.status().code(),
                  fmt::format("local certificate authority: {}", ca.status().message()));
  }
  return ca;
}

Result<LocalCa> Engine::ImportCertificateAuthority(const std::string& cert_path,
                                                   const std::string& key_path,
                                                   std::string* replaced) {
  PGB_ASSIGN_OR_RETURN(
      LockHandle home_lock,
      locks_->Home(LockMode::kExclusive, fmt::format("ca import by pid {}", ::getpid())));
  Result<std::string> cert = ReadFile(cert_path);
  if (!cert.ok()) {
    return Status(cert.status().code(),
                  fmt::format("read {}: {}", cert_path, cert.status().message()));
  }
  Result<std::string> key = ReadFile(key_path);
  if (!key.ok()) {
    return Status(key.status().code(),
                  fmt::format("read {}: {}", key_path, key.status().message()));
  }
  Result<LocalCa> ca = InstallCa(JoinPath(env_.home, "tls"), *cert, *key, replaced);
  if (!ca.ok()) {
    return Status(ca.status().code(),
                  fmt::format("{} and {}: {}", cert_path, key_path, ca.status().message()));
  }
  return ca;
}

Status Engine::StartInstance(const ProjectRow& project, const BranchRow& branch, bool set_password,
                             Operation* op) {
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, branch));
  PGB_ASSIGN_OR_RETURN(std::optional<FileOwner> owner, PrepareStart(project, branch, spec));
  if (op && FailpointEnabled("start-bad-config")) {
    // Makes the real postgres of a new instance refuse to start, to exercise the undo.
    std::string conf = JoinPath(spec.data_dir, "pgbranch.conf");
    PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(conf));
    PGB_RETURN_IF_ERROR(WriteFileAtomic(conf, text + "shared_buffers = 'nonsense'\n", 0600, owner));
  }
  if (!IsContainerRuntime(project.runtime)) {
    PGB_RETURN_IF_ERROR(CheckDataDirVersion(spec, project.pg_major,
                                            fmt::format("the binaries in {} are", project.pg_bin)));
  }
  if (op) {
    Action stop;
    stop.kind = "stop-server";
    stop.project_id = project.id;
    stop.branch_id = branch.id;
    stop.volume = branch.volume;
    stop.text = spec.container_name;
    PGB_RETURN_IF_ERROR(op->PushUndo(std::move(stop)));
  }
  ConnParams admin = AdminParams(project, branch);
  std::unique_ptr<Connection> conn;
  Runtime& runtime = RuntimeFor(project);
  // Readiness polls end early when the operation is interrupted.
  auto still_running = [check = StillRunningCheck(runtime, spec)]() -> Status {
    PGB_RETURN_IF_ERROR(CheckCancelled());
    return check();
  };
  PGB_RETURN_IF_ERROR(ExplainStartFailure(project, spec, Timed("Start", [&]() -> Status {
                                            spdlog::debug("{}: starting postgres", spec.name);
                                            PGB_RETURN_IF_ERROR(runtime.Start(spec));
                                            spdlog::debug("{}: postgres spawned", spec.name);
                                            // The connection that proves the server ready also sets
                                            // the password: after crash recovery every first
                                            // backend rebuilds the relation cache, so each saved
                                            // login counts.
                                            PGB_ASSIGN_OR_RETURN(
                                                conn, ConnectWhenReady(admin, kReadyTimeout,
                                                                       kReadyPoll, still_running));
                                            return Status::OK();
                                          })));
  if (!set_password) return Status::OK();
  if (op) PGB_RETURN_IF_ERROR(op->Step("password"));
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
  if (existing) {
    // A project whose main is still `creating` is a create in progress or one a crash cut
    // short: say which, and what to do.
    PGB_ASSIGN_OR_RETURN(auto main_row, catalog_->FindBranch(existing->id, kMainBranch));
    if (main_row && main_row->state == kStateCreating) {
      Status half = BranchExists(*existing, *main_row);
      return Status::AlreadyExists(fmt::format("project {}: {}", name, half.message()));
    }
    return Status::AlreadyExists(fmt::format("project {} already exists", name));
  }
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
        return Status::InvalidArgument(
            fmt::format("a {} project needs --image IMG or --pg-version N (which runs {})",
                        options.runtime, DefaultImageName(17)));
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
  // As root, a native project gets its own OS account (engine_users.cc), made once its row
  // gives it an id; otherwise its servers run as the account chosen for all.
  bool own_user = false;
  if (!IsContainerRuntime(project.runtime)) {
    PGB_ASSIGN_OR_RETURN(own_user, WantsOwnOsUser());
  }
  std::optional<OsUser> os_user;
  if (!own_user) {
    PGB_ASSIGN_OR_RETURN(os_user, ServerUserFor(project));
  }
  project.listen_address = options.listen_address;
  project.created_at = FormatTimestamp(env_.clock->Now());
  std::string pg_restore;
  std::optional<SourceServer> source;
  if (options.replica && options.from_server.empty()) {
    return Status::InvalidArgument("--replica follows the server of --from-server; give both");
  }
  if (options.logical && options.from_server.empty()) {
    return Status::InvalidArgument("--logical dumps the server of --from-server; give both");
  }
  if (!options.slot.empty() && !options.replica) {
    return Status::InvalidArgument("--slot is the replica's replication slot; add --replica");
  }
  if (!options.adopt.empty()) {
    PGB_RETURN_IF_ERROR(CheckAdopt(&project, options));
  } else if (options.adopt_stop) {
    return Status::InvalidArgument("--stop stops the server of --adopt's directory; give both");
  } else if (!options.from_server.empty()) {
    PGB_ASSIGN_OR_RETURN(source, CheckServerCopy(&project, options));
  } else if (!options.from_dump.empty()) {
    PGB_ASSIGN_OR_RETURN(pg_restore, CheckDumpLoad(project, options));
  } else if (!options.transforms.empty()) {
    return Status::InvalidArgument(
        "--transform runs after --from-dump or --from-server; give one of them");
  }
  PGB_ASSIGN_OR_RETURN(std::vector<NamedSql> transforms, ReadTransforms(options.transforms));

  BranchRow main;
  main.name = kMainBranch;
  main.state = kStateCreating;
  main.password = RandomPassword(kPasswordLength);
  main.volume = NewVolumeName();
  main.created_at = project.created_at;

  PGB_ASSIGN_OR_RETURN(PortRange range, LoadPortRange());
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("project create " + name));
  Status s = RunOperation("project.create", name, std::nullopt, std::nullopt, [&](Operation& op) {
    PGB_RETURN_IF_ERROR(op.Step("reserve"));
    PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
      auto id = catalog_->InsertProject(project);
      if (!id.ok() && id.status().Is(StatusCode::kAlreadyExists)) {
        return Status::AlreadyExists(fmt::format("project {} already exists", name));
      }
      PGB_RETURN_IF_ERROR(id.status());
      project.id = *id;
      main.project_id = project.id;
      PGB_ASSIGN_OR_RETURN(std::set<int> used, catalog_->UsedPorts());
      PGB_ASSIGN_OR_RETURN(
          main.port, PickPort(range, used, project.listen_address, *env_.ports, options.port));
      PGB_ASSIGN_OR_RETURN(main.id, catalog_->InsertBranch(main));
      PGB_RETURN_IF_ERROR(op.SetIds(project.id, main.id));
      Action remove_project;
      remove_project.kind = "remove-project";
      remove_project.project_id = project.id;
      remove_project.text = fmt::format("remove project {}", name);
      PGB_RETURN_IF_ERROR(op.PushUndo(std::move(remove_project)));
      Action remove_main;
      remove_main.kind = "remove-branch-row";
      remove_main.project_id = project.id;
      remove_main.branch_id = main.id;
      remove_main.text = fmt::format("remove the row of {}/main", name);
      return op.PushUndo(std::move(remove_main));
    }));
    // Nothing else happens in the project until it exists.
    PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
    PGB_ASSIGN_OR_RETURN(LockHandle main_lock,
                         locks_->Branch(main.id, Ref(project, main), op.HolderText()));
    if (own_user) {
      // Removed with the project's row by the undo above (RemoveProjectOsUser).
      PGB_RETURN_IF_ERROR(op.Step("os user"));
      PGB_RETURN_IF_ERROR(Timed("OS user", [&]() -> Status {
        PGB_ASSIGN_OR_RETURN(os_user, CreateProjectOsUser(project));
        return Status::OK();
      }));
    }
    std::optional<FileOwner> owner;
    if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
    PGB_RETURN_IF_ERROR(op.Step("volume"));
    if (!project.adopted_from.empty()) {
      PGB_RETURN_IF_ERROR(AdoptDataDir(project, main, owner, op));
    } else {
      Action destroy;
      destroy.kind = "destroy-volume";
      destroy.volume = main.volume;
      destroy.text = fmt::format("destroy the volume {} of {}/main", main.volume, name);
      PGB_RETURN_IF_ERROR(op.PushUndo(std::move(destroy)));
      PGB_RETURN_IF_ERROR(Timed("Volume", [&] { return pool->CreateVolume(main.volume, owner); }));
    }
    PGB_RETURN_IF_ERROR(
        FillMainVolume(&project, main, source, pg_restore, transforms, os_user, options, op));
    // Point-in-time recovery starts from a snapshot: this one lets main be recovered to any
    // time since it was made.
    PGB_RETURN_IF_ERROR(op.Step("snapshot"));
    SnapshotRow base;
    PGB_RETURN_IF_ERROR(TakeSnapshot(project, main, /*fast=*/false, "base", false, op, &base));
    PGB_RETURN_IF_ERROR(op.Step("commit"));
    return catalog_->Transaction([&]() -> Status {
      PGB_RETURN_IF_ERROR(catalog_->InsertSnapshot(base).status());
      PGB_RETURN_IF_ERROR(catalog_->SetBranchState(main.id, kStateRunning));
      return op.MarkCommitted({});
    });
  });
  PGB_RETURN_IF_ERROR(s);
  main.state = kStateRunning;
  return Describe(project, main, SizeMode::kNone);
}

Status Engine::FillMainVolume(ProjectRow* project, const BranchRow& main,
                              const std::optional<SourceServer>& source,
                              const std::string& pg_restore,
                              const std::vector<NamedSql>& transforms,
                              const std::optional<OsUser>& os_user,
                              const ProjectCreateOptions& options, Operation& op) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  bool adopted = !project->adopted_from.empty();
  if (adopted) {
    // The data is there already (AdoptDataDir).
  } else if (source && !options.logical) {
    PGB_RETURN_IF_ERROR(op.Step("copy"));
    PGB_RETURN_IF_ERROR(CopyFromServer(*project, main, *source, os_user, op));
  } else {
    PGB_RETURN_IF_ERROR(op.Step("initdb"));
    PGB_RETURN_IF_ERROR(Timed("initdb", [&] {
      return InitProjectDataDir(*project, pool->VolumePath(main.volume), os_user);
    }));
  }
  PGB_RETURN_IF_ERROR(ReserveMainSpace(main));
  PGB_RETURN_IF_ERROR(
      WriteInstanceConfig(pool->VolumePath(main.volume), ConfigFor(*project, main), owner));
  PGB_RETURN_IF_ERROR(op.Step("start"));
  // A copy's roles are the source's: its bootstrap superuser becomes the project's first.
  // A replica main is read-only: it keeps the source's passwords.
  bool copied = source && !options.logical;
  PGB_RETURN_IF_ERROR(StartInstance(*project, main, /*set_password=*/!copied && !adopted, &op));
  if (adopted) return TakeOverAdoptedSuperuser(project, main, op);
  if (source && options.logical) {
    // The dump's scratch directory goes with the project if the create fails.
    std::string dump = JoinPath(SourceDir(*project), "dump");
    PGB_RETURN_IF_ERROR(op.Step("dump"));
    PGB_RETURN_IF_ERROR(DumpFromServer(*project, *source, dump, options.restore_jobs));
    PGB_RETURN_IF_ERROR(op.Step("restore"));
    PGB_ASSIGN_OR_RETURN(std::string bin, ClientBinDir(*project, "--logical", {"pg_restore"}));
    PGB_RETURN_IF_ERROR(
        LoadDump(*project, main, JoinPath(bin, "pg_restore"), dump, options.restore_jobs));
    PGB_RETURN_IF_ERROR(RemoveTree(SourceDir(*project)));
  }
  if (copied) {
    PGB_RETURN_IF_ERROR(AdoptCopiedSuperuser(project, main));
    if (!project->replica) {
      PGB_RETURN_IF_ERROR(op.Step("password"));
      PGB_RETURN_IF_ERROR(Timed("Password", [&]() -> Status {
        PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(*project, main)));
        return SetRolePassword(*conn, project->superuser, main.password);
      }));
    }
  }
  if (!pg_restore.empty()) {
    PGB_RETURN_IF_ERROR(op.Step("restore"));
    PGB_RETURN_IF_ERROR(
        LoadDump(*project, main, pg_restore, options.from_dump, options.restore_jobs));
  }
  if (!project->replica && !transforms.empty()) {
    PGB_RETURN_IF_ERROR(op.Step("transform"));
    PGB_RETURN_IF_ERROR(RunTransforms(*project, main, transforms));
  }
  return Status::OK();
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
    info.suspend_after_s = p.suspend_after_s;
    for (const auto& b : branches) {
      if (b.project_id != p.id) continue;
      if (p.active_branch_id ? b.id == *p.active_branch_id : !b.parent_id) {
        info.active_branch = b.name;
      }
    }
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

Status Engine::DeleteProject(const std::string& name, bool force, bool keep_data) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(name));
  if (keep_data && project.adopted_from.empty()) {
    return Status::InvalidArgument(fmt::format(
        "project {} was not adopted (--adopt); --keep-data hands back an adopted data directory",
        name));
  }
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("project delete " + name));
  return RunOperation("project.delete", name, project.id, std::nullopt, [&](Operation& op) {
    PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
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
    PGB_RETURN_IF_ERROR(CheckNotProtected(project, branches, "delete the project", force));
    // Deepest first, so no branch is destroyed before the ones cloned from it.
    std::vector<BranchRow> order;
    for (const auto& b : branches) {
      if (b.parent_id) continue;
      PGB_ASSIGN_OR_RETURN(auto below, Descendants(b));
      order.insert(order.end(), below.begin(), below.end());
      order.push_back(b);
    }
    Action remove;
    remove.kind = "remove-project";
    remove.project_id = project.id;
    remove.text = fmt::format("remove project {}", name);
    // With --keep-data main (last in `order`) is handed back rather than destroyed.
    std::optional<int64_t> hand_back;
    if (keep_data) hand_back = order.back().id;
    return MarkForDeletion(project, order, {}, op, {remove}, hand_back);
  });
}

// ---------------------------------------------------------------------------------------------
// Branches

Status Engine::BranchExists(const ProjectRow& project, const BranchRow& existing) {
  std::string ref = Ref(project, existing);
  if (existing.state != kStateCreating) {
    return Status::AlreadyExists(fmt::format("branch {} already exists", ref));
  }
  PGB_ASSIGN_OR_RETURN(auto open, catalog_->ListOpenOperations());
  for (const auto& op : open) {
    if (op.branch_id != existing.id) continue;
    if (OwnerAlive(op.owner)) {
      return Status::AlreadyExists(fmt::format(
          "branch {} is being created right now (pid {}, operation {})", ref, op.pid, op.id));
    }
  }
  return Status::AlreadyExists(fmt::format(
      "branch {} already exists, left half-made by an interrupted create; 'pgbranch doctor "
      "--fix' undoes it, then create it again",
      ref));
}

Status Engine::ReserveBranch(const ProjectRow& project, BranchRow* row, std::optional<int> port,
                             Operation& op) {
  PGB_ASSIGN_OR_RETURN(PortRange range, LoadPortRange());
  return catalog_->Transaction([&]() -> Status {
    PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindBranch(project.id, row->name));
    if (existing) return BranchExists(project, *existing);
    PGB_ASSIGN_OR_RETURN(std::set<int> used, catalog_->UsedPorts());
    PGB_ASSIGN_OR_RETURN(row->port,
                         PickPort(range, used, project.listen_address, *env_.ports, port));
    PGB_ASSIGN_OR_RETURN(row->id, catalog_->InsertBranch(*row));
    PGB_RETURN_IF_ERROR(op.SetIds(project.id, row->id));
    Action remove;
    remove.kind = "remove-branch-row";
    remove.project_id = project.id;
    remove.branch_id = row->id;
    remove.text = fmt::format("remove the row of {}", Ref(project, *row));
    return op.PushUndo(std::move(remove));
  });
}

Status Engine::TakeSnapshot(const ProjectRow& project, const BranchRow& branch, bool fast,
                            const std::string& label, bool implicit, Operation& op,
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
  Action destroy;
  destroy.kind = "destroy-snapshot";
  destroy.volume = snap.volume;
  destroy.snapshot = snap.name;
  destroy.text = fmt::format("destroy the snapshot {} of {}", snap.name, Ref(project, branch));
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(destroy)));
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
  PGB_RETURN_IF_ERROR(RecordWalPosition(project, branch, conn.get(), &snap));
  PGB_RETURN_IF_ERROR(Failpoint("branch-after-snapshot"));
  *snapshot = snap;
  return Status::OK();
}

Status Engine::CloneFromSnapshot(const ProjectRow& project, const SnapshotRow& snapshot,
                                 BranchRow* row, Operation& op, const RecoverySettings* recovery) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_RETURN_IF_ERROR(op.Step("clone"));
  Action destroy;
  destroy.kind = "destroy-volume";
  destroy.volume = row->volume;
  destroy.text = fmt::format("destroy the new volume {} of {}", row->volume, Ref(project, *row));
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(destroy)));
  PGB_RETURN_IF_ERROR(Timed(
      "Clone", [&] { return pool->CloneSnapshot(snapshot.volume, snapshot.name, row->volume); }));
  PGB_RETURN_IF_ERROR(LimitBranchSpace(project, *row));
  PGB_RETURN_IF_ERROR(Failpoint("branch-after-clone"));

  PGB_RETURN_IF_ERROR(op.Step("configure"));
  PGB_ASSIGN_OR_RETURN(std::optional<OsUser> os_user, ServerUserFor(project));
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  Action archive;
  archive.kind = "remove-dir";
  archive.path = ArchiveDir(project, *row);
  archive.text = fmt::format("remove the WAL archive of the new volume of {}", Ref(project, *row));
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(archive)));
  std::string data_dir = pool->VolumePath(row->volume);
  // A clone of a replica main was a standby: it starts as a standby of nothing (no
  // primary_conninfo, no restore_command), replays what its pg_wal holds, and is promoted
  // (pg_promote) on a timeline of its own before anyone sees it; then it is masked. A promotion,
  // unlike the end of an archive recovery, waits for no checkpoint of everything replayed.
  PGB_ASSIGN_OR_RETURN(BranchRow from, catalog_->GetBranch(snapshot.branch_id));
  bool promote = !recovery && project.replica && !from.parent_id;
  PGB_ASSIGN_OR_RETURN(std::vector<NamedSql> transforms, CloneTransforms(project, snapshot));
  if (!recovery && !promote) {
    PGB_RETURN_IF_ERROR(PrepareClonedDataDir(data_dir, ConfigFor(project, *row), owner));
    PGB_RETURN_IF_ERROR(op.Step("start"));
    PGB_RETURN_IF_ERROR(StartInstance(project, *row, /*set_password=*/true, &op));
    CrashPoint("crash-after-start");
    return Status::OK();
  }
  InstanceConfig config = ConfigFor(project, *row);
  if (recovery) config.recovery = *recovery;
  if (promote) config.standby = StandbySettings{};
  PGB_RETURN_IF_ERROR(PrepareClonedDataDir(data_dir, config, owner));
  if (promote) {
    PGB_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(data_dir, "standby.signal"), "", 0600, owner));
  } else {
    PGB_RETURN_IF_ERROR(WriteRecoverySignal(data_dir, owner));
  }
  PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, *row));
  PGB_RETURN_IF_ERROR(PrepareStart(project, *row, spec).status());
  Runtime& runtime = RuntimeFor(project);
  PGB_RETURN_IF_ERROR(op.Step("recover"));
  Action stop;
  stop.kind = "stop-server";
  stop.project_id = project.id;
  stop.branch_id = row->id;
  stop.volume = row->volume;
  stop.text = spec.container_name;
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(stop)));
  PGB_RETURN_IF_ERROR(Timed("Recover", [&]() -> Status {
    PGB_RETURN_IF_ERROR(runtime.Start(spec));
    if (promote) {
      // Hot standby takes connections once consistent; pg_promote without waiting (docs
      // 9.27.4): the replay of pg_wal ends, then the server promotes, which WaitForPromotion
      // sees within its deadline and cancel token.
      auto still_running = [check = StillRunningCheck(runtime, spec)]() -> Status {
        PGB_RETURN_IF_ERROR(CheckCancelled());
        return check();
      };
      PGB_ASSIGN_OR_RETURN(auto conn, ConnectWhenReady(AdminParams(project, *row), kReadyTimeout,
                                                       kReadyPoll, still_running));
      PGB_RETURN_IF_ERROR(conn->Exec("SELECT pg_promote(false)"));
    }
    return WaitForPromotion(project, *row, spec);
  }));
  // Promoted: the recovery settings are spent (PostgreSQL removed the signal file); the next
  // start is an ordinary one.
  PGB_RETURN_IF_ERROR(WriteInstanceConfig(data_dir, ConfigFor(project, *row), owner));
  PGB_RETURN_IF_ERROR(op.Step("password"));
  PGB_RETURN_IF_ERROR(Timed("Password", [&]() -> Status {
    PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(project, *row)));
    return SetRolePassword(*conn, project.superuser, row->password);
  }));
  if (transforms.empty()) return Status::OK();
  PGB_RETURN_IF_ERROR(op.Step("transform"));
  return RunTransforms(project, *row, transforms);
}

Status Engine::CommitClone(BranchRow* row, SnapshotRow* snapshot, const EventRow& event,
                           Operation& op, std::vector<Action> finish,
                           const std::function<Status()>& also) {
  PGB_RETURN_IF_ERROR(op.Step("commit"));
  return catalog_->Transaction([&]() -> Status {
    if (snapshot->id == 0) {
      PGB_ASSIGN_OR_RETURN(snapshot->id, catalog_->InsertSnapshot(*snapshot));
    }
    row->snapshot_id = snapshot->id;
    row->state = kStateRunning;
    PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(*row));
    EventRow e = event;
    e.detail = fmt::format("{} (snapshot {})", event.detail, snapshot->id);
    PGB_RETURN_IF_ERROR(catalog_->InsertEvent(e));
    if (also) PGB_RETURN_IF_ERROR(also());
    return op.MarkCommitted(std::move(finish));
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
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("branch create " + ref.ToString()));

  BranchRow row;
  row.project_id = project.id;
  row.name = ref.branch;
  row.state = kStateCreating;
  row.password = RandomPassword(kPasswordLength);
  row.volume = NewVolumeName();
  row.created_at = FormatTimestamp(env_.clock->Now());
  PGB_RETURN_IF_ERROR(ApplyLifetime(options, &row));
  std::string created_from;
  Status s = RunOperation(
      "branch.create", ref.ToString(), project.id, std::nullopt, [&](Operation& op) -> Status {
        SnapshotRow snapshot;
        RecoverySettings recovery;
        LockHandle own_lock;
        {
          // The moment lineage changes: the parent is checked, its snapshot taken (or the one
          // named picked) and the new branch recorded with both, under the project lock and the
          // parent's lock. Everything after needs only the new branch's own lock.
          PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
          spdlog::debug("{}: project locked", ref.ToString());
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
                  fmt::format("snapshot {} is of {}/{}, not of {}; leave out --parent",
                              *options.snapshot, project.name, of.name, parent_ref.ToString()));
            }
            parent_ref.branch = of.name;
            from = *snap;
          }
          auto parent = LoadBranch(project, parent_ref.branch);
          if (!parent.ok()) {
            return Status::NotFound(fmt::format("parent {} does not exist", parent_ref.ToString()));
          }
          PGB_ASSIGN_OR_RETURN(LockHandle parent_lock,
                               locks_->Branch(parent->id, parent_ref.ToString(), op.HolderText()));
          PGB_ASSIGN_OR_RETURN(*parent, catalog_->GetBranch(parent->id));
          if (!IsSettledState(parent->state)) {
            return Status::FailedPrecondition(
                fmt::format("parent {} is {}", parent_ref.ToString(), parent->state));
          }
          PGB_ASSIGN_OR_RETURN(auto existing, catalog_->FindBranch(project.id, ref.branch));
          if (existing) return BranchExists(project, *existing);
          PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
          row.parent_id = parent->id;
          if (target) {
            PGB_RETURN_IF_ERROR(op.Step("plan"));
            PGB_ASSIGN_OR_RETURN(snapshot, PlanPitr(project, *parent, *target, &recovery));
            row.recovery_target = target->text;
            row.snapshot_id = snapshot.id;
            created_from =
                fmt::format("created from {} at {}", parent_ref.ToString(), target->text);
          } else if (from) {
            snapshot = *from;
            row.snapshot_id = snapshot.id;
          } else {
            PGB_RETURN_IF_ERROR(op.Step("snapshot"));
            PGB_RETURN_IF_ERROR(TakeSnapshot(project, *parent, options.fast,
                                             fmt::format("for {}", ref.ToString()),
                                             /*implicit=*/true, op, &snapshot));
          }
          if (created_from.empty()) {
            created_from = fmt::format("created from {}", parent_ref.ToString());
          }
          PGB_RETURN_IF_ERROR(op.Step("reserve"));
          PGB_RETURN_IF_ERROR(ReserveBranch(project, &row, options.port, op));
          spdlog::debug("{}: reserved port {}", ref.ToString(), row.port);
          PGB_ASSIGN_OR_RETURN(own_lock, locks_->Branch(row.id, ref.ToString(), op.HolderText()));
        }
        if (!target) {
          PGB_RETURN_IF_ERROR(CloneFromSnapshot(project, snapshot, &row, op));
          if (options.max_size_bytes) {
            PGB_RETURN_IF_ERROR(SetBranchSpaceLimit(row, *options.max_size_bytes));
          }
          return CommitClone(&row, &snapshot, Event(row, "created", created_from), op);
        }
        // Point-in-time: clone the base, recover to the target, promote; then its own history goes
        // on in its own archive, on a new timeline: a snapshot now is where its own point-in-time
        // recoveries start.
        PGB_RETURN_IF_ERROR(CloneFromSnapshot(project, snapshot, &row, op, &recovery));
        PGB_RETURN_IF_ERROR(op.Step("base"));
        SnapshotRow own_base;
        PGB_RETURN_IF_ERROR(
            TakeSnapshot(project, row, /*fast=*/false, "base", /*implicit=*/false, op, &own_base));
        return CommitClone(&row, &snapshot, Event(row, "created", created_from), op, {},
                           [&] { return catalog_->InsertSnapshot(own_base).status(); });
      });
  PGB_RETURN_IF_ERROR(s);
  return Describe(project, row, SizeMode::kNone);
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

Status Engine::DeleteBranch(const BranchRef& ref, bool recursive, bool force) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("branch delete " + ref.ToString()));
  return RunOperation(
      "branch.delete", ref.ToString(), project.id, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
        // Deleting does not need a settled branch: a half-deleted one can be deleted again.
        PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
        PGB_RETURN_IF_ERROR(op.SetIds(project.id, row.id));
        PGB_ASSIGN_OR_RETURN(auto below, Descendants(row));
        if (!row.parent_id) {
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
        if (!below.empty() && !recursive) {
          return Status::FailedPrecondition(
              fmt::format("{} has child branches ({}); delete them first or use --recursive",
                          ref.ToString(), JoinNames(project, below)));
        }
        below.push_back(row);
        PGB_RETURN_IF_ERROR(CheckNotProtected(project, below, "delete", force));
        // The project route stops leading to a branch that goes: it leads to main again.
        PGB_ASSIGN_OR_RETURN(ProjectRow current, catalog_->GetProject(project.id));
        for (const auto& b : below) {
          if (current.active_branch_id && *current.active_branch_id == b.id) {
            current.active_branch_id.reset();
            PGB_RETURN_IF_ERROR(catalog_->UpdateProjectProxy(current));
            Note(fmt::format("{}/@ leads to the project's main branch again", project.name));
          }
        }
        return MarkForDeletion(project, below, {}, op, {});
      });
}

Result<BranchInfo> Engine::ResetBranch(const BranchRef& ref, const ResetOptions& options) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("branch reset " + ref.ToString()));
  BranchRow fresh;
  std::string parent_name;
  Status s = RunOperation(
      "branch.reset", ref.ToString(), project.id, std::nullopt, [&](Operation& op) -> Status {
        SnapshotRow snapshot;
        std::string what;
        std::vector<LockHandle> held;
        BranchRow row;
        {
          PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
          PGB_ASSIGN_OR_RETURN(row, LoadBranch(project, ref.branch));
          PGB_RETURN_IF_ERROR(op.SetIds(project.id, row.id));
          if (!row.parent_id) {
            return Status::FailedPrecondition(
                fmt::format("{} has no parent to reset to", ref.ToString()));
          }
          PGB_ASSIGN_OR_RETURN(BranchRow parent, catalog_->GetBranch(*row.parent_id));
          parent_name = Ref(project, parent);
          std::optional<SnapshotRow> to;
          if (options.snapshot) {
            auto snap = catalog_->GetSnapshot(*options.snapshot);
            if (!snap.ok()) {
              return Status::NotFound(fmt::format("snapshot {} does not exist", *options.snapshot));
            }
            if (snap->branch_id != row.id && snap->branch_id != parent.id) {
              return Status::InvalidArgument(
                  fmt::format("snapshot {} is of neither {} nor its parent {}", *options.snapshot,
                              ref.ToString(), parent_name));
            }
            to = *snap;
          }
          if (to && options.rebase) {
            return Status::InvalidArgument(
                "a rebase moves a branch onto its parent's data as it is now; 'branch reset "
                "--snapshot' goes back to a snapshot");
          }
          // The parent's lock while its snapshot is taken (or, to reset to one of its snapshots,
          // until the clone is made); the branch's own lock for the whole reset.
          bool needs_parent = !to || to->branch_id == parent.id;
          std::vector<int64_t> ids = {row.id};
          if (needs_parent) ids.push_back(parent.id);
          PGB_ASSIGN_OR_RETURN(held, LockBranches(project, ids, &op));
          PGB_ASSIGN_OR_RETURN(row, catalog_->GetBranch(row.id));
          PGB_ASSIGN_OR_RETURN(parent, catalog_->GetBranch(parent.id));
          if (!IsSettledState(row.state)) {
            return Status::FailedPrecondition(fmt::format("{} is {}", ref.ToString(), row.state));
          }
          PGB_RETURN_IF_ERROR(CheckNotProtected(project, {row}, "reset", options.force));
          if (needs_parent && !IsSettledState(parent.state)) {
            return Status::FailedPrecondition(
                fmt::format("parent {} is {}", parent_name, parent.state));
          }
          PGB_RETURN_IF_ERROR(CheckNoPitrInFlight(project, row, "reset it"));
          PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
          if (to) {
            snapshot = *to;
            PGB_ASSIGN_OR_RETURN(BranchRow of, catalog_->GetBranch(to->branch_id));
            what = fmt::format("reset to {}", Ref(project, of));
          } else {
            PGB_RETURN_IF_ERROR(op.Step("snapshot"));
            PGB_RETURN_IF_ERROR(TakeSnapshot(project, parent, options.fast,
                                             fmt::format("for {}", ref.ToString()),
                                             /*implicit=*/true, op, &snapshot));
            what = fmt::format("{} {}", options.rebase ? "rebased onto" : "reset to", parent_name);
            // Snapshot taken: the parent may go on (the branch's own lock is the higher id).
            if (held.size() == 2) held.erase(held.begin());
          }
        }
        // The old data is about to be discarded: no shutdown checkpoint needed.
        PGB_RETURN_IF_ERROR(StopForReplacement(project, row, StopMode::kImmediate, op));
        // The same port and password on a new volume: the URI does not change.
        fresh = row;
        fresh.volume = NewVolumeName();
        PGB_RETURN_IF_ERROR(CloneFromSnapshot(project, snapshot, &fresh, op));
        // After the commit the old volume and its WAL history are unreferenced: they go as the
        // finish (here, or by doctor after a crash).
        Action old_volume;
        old_volume.kind = "destroy-volume";
        old_volume.volume = row.volume;
        old_volume.text =
            fmt::format("destroy the old volume {} of {}", row.volume, ref.ToString());
        Action old_archive;
        old_archive.kind = "remove-dir";
        old_archive.path = ArchiveDir(project, row);
        old_archive.text = fmt::format("remove the old WAL archive of {}", ref.ToString());
        return CommitClone(
            &fresh, &snapshot, Event(fresh, options.rebase ? "rebase" : "reset", what), op,
            {old_volume, old_archive, SweepSnapshotsAction(project.id, project.name)});
      });
  PGB_RETURN_IF_ERROR(s);
  return Describe(project, fresh, SizeMode::kNone);
}

Status Engine::StopForReplacement(const ProjectRow& project, const BranchRow& row, StopMode mode,
                                  Operation& op) {
  PGB_ASSIGN_OR_RETURN(InstanceStatus before, InspectBranch(project, row));
  PGB_RETURN_IF_ERROR(op.Step("stop"));
  Action restart;
  restart.kind = "restart-branch";
  restart.project_id = project.id;
  restart.branch_id = row.id;
  restart.state = before.running ? kStateRunning : kStateStopped;
  restart.text = fmt::format("start the old data of {} again", Ref(project, row));
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(restart)));
  return StopInstance(project, row, mode);
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
      return Status::InvalidArgument(fmt::format(
          "unknown container engine {}; choose docker or podman", QuoteForDisplay(engine)));
    }
  }
  if (options.work_dir.empty()) options.work_dir = JoinPath(env_.home, "tmp");
  return pgb::BuildImage(*runner_, options, [this](std::string_view step) { Note(step); });
}

Result<BranchInfo> Engine::StartBranch(const BranchRef& ref) {
  struct RemoveAtEnd {
    std::string path;
    ~RemoveAtEnd() {
      if (!path.empty()) (void)RemoveFile(path);
    }
  } marker{PrepareSuspendedStart(ref)};
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("branch start " + ref.ToString()));
  std::optional<BranchInfo> info;
  PGB_RETURN_IF_ERROR(RunOperation(
      "branch.start", ref.ToString(), std::nullopt, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true, &op));
        const ProjectRow& project = b.project;
        BranchRow& row = b.row;
        PGB_RETURN_IF_ERROR(op.SetIds(project.id, row.id));
        PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, row));
        if (st.running) {
          Note(fmt::format("{} is already running", ref.ToString()));
        } else {
          if (row.state == kStateRunning) {
            // Recorded running, yet down: it died (a full disk, a kill, a reboot). Say why, from
            // its own log, and bring it back.
            PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, row));
            auto log = RuntimeFor(project).Logs(spec, 200);
            std::string why = log.ok() ? LogHighlights(*log) : "";
            Note(fmt::format("{} had stopped without being asked{}; starting it again",
                             ref.ToString(),
                             why.empty() ? "" : " (its log: " + QuoteForDisplay(why) + ")"));
          }
          PGB_RETURN_IF_ERROR(op.Step("start"));
          PGB_RETURN_IF_ERROR(StartInstance(project, row, /*set_password=*/false, nullptr));
        }
        PGB_RETURN_IF_ERROR(catalog_->SetBranchState(row.id, kStateRunning));
        row.state = kStateRunning;
        PGB_ASSIGN_OR_RETURN(info, Describe(project, row, SizeMode::kNone));
        return Status::OK();
      }));
  return std::move(*info);
}

Result<BranchInfo> Engine::StopBranch(const BranchRef& ref) {
  return StopBranchAs(ref, kStateStopped);
}

Result<BranchInfo> Engine::SuspendBranch(const BranchRef& ref) {
  return StopBranchAs(ref, kStateSuspended);
}

Result<BranchInfo> Engine::StopBranchAs(const BranchRef& ref, const std::string& state) {
  const std::string verb = state == kStateSuspended ? "suspend" : "stop";
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("branch " + verb + " " + ref.ToString()));
  std::optional<BranchInfo> info;
  PGB_RETURN_IF_ERROR(RunOperation(
      "branch." + verb, ref.ToString(), std::nullopt, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/true, &op));
        const ProjectRow& project = b.project;
        BranchRow& row = b.row;
        PGB_RETURN_IF_ERROR(op.SetIds(project.id, row.id));
        PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, row));
        if (st.running && st.ready) {
          // Archive the WAL up to now, so a stopped branch can still be recovered to any time
          // before it stopped.
          PGB_RETURN_IF_ERROR(op.Step("archive"));
          Status archived =
              Timed("Archive", [&] { return ArchiveCurrentWal(project, row).status(); });
          if (archived.Is(StatusCode::kCancelled)) return archived;
          if (!archived.ok()) {
            Note(fmt::format("WAL not archived before the stop: {}", archived.message()));
          }
        }
        PGB_RETURN_IF_ERROR(op.Step("stop"));
        PGB_RETURN_IF_ERROR(StopInstance(project, row, StopMode::kFast));
        PGB_RETURN_IF_ERROR(catalog_->SetBranchState(row.id, state));
        row.state = state;
        PGB_ASSIGN_OR_RETURN(info, Describe(project, row, SizeMode::kNone));
        return Status::OK();
      }));
  return std::move(*info);
}

Result<BranchInfo> Engine::RestartBranch(const BranchRef& ref) {
  PGB_RETURN_IF_ERROR(StopBranch(ref).status());
  return StartBranch(ref);
}

// ---------------------------------------------------------------------------------------------
// Reading

Result<BranchInfo> Engine::Describe(const ProjectRow& project, const BranchRow& branch,
                                    SizeMode sizes,
                                    const std::map<std::string, VolumeSizeRow>* cached) {
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
  if (StandbyFor(project, branch)) {
    // A replica main is read-only with the source's roles and passwords, never pgbranch's: a
    // URI with no password (the user's own, from their password file or prompt).
    info.uri = MakeUri(project.superuser, "", info.host, branch.port);
    info.uri.erase(info.uri.find(":@"), 1);
    info.masked_uri = info.uri;
  }
  info.created_at = branch.created_at;
  info.pg_version = project.pg_version;
  if (IsContainerRuntime(project.runtime)) {
    info.container = ContainerOf(project, branch);
  } else {
    info.log_path = LogPath(branch);
  }
  info.snapshot_id = branch.snapshot_id;
  info.recovery_target = branch.recovery_target;
  info.active =
      project.active_branch_id ? branch.id == *project.active_branch_id : !branch.parent_id;
  info.suspend_after_s = branch.suspend_after_s ? branch.suspend_after_s : project.suspend_after_s;
  DescribeLifetime(branch, &info);

  auto pool = RequirePool(false);
  if (!pool.ok()) return info;  // no pool (yet): nothing more to learn
  info.data_dir = (*pool)->VolumePath(branch.volume);
  if (IsSettledState(branch.state)) {
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, InspectBranch(project, branch));
    info.state = st.running                        ? kStateRunning
                 : branch.state == kStateSuspended ? kStateSuspended
                                                   : kStateStopped;
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
  DescribeReplica(project, branch, &info);
  if (sizes != SizeMode::kNone) {
    std::optional<VolumeSizeRow> size;
    if (sizes == SizeMode::kCached) {
      if (cached) {
        auto it = cached->find(branch.volume);
        if (it != cached->end()) size = it->second;
      } else {
        auto row = catalog_->GetVolumeSize(branch.volume);
        if (row.ok()) size = *row;
      }
    }
    if (!size) size = MeasureVolume(**pool, branch.volume);
    if (size) {
      info.size_bytes = size->logical_bytes;
      info.exclusive_bytes = size->exclusive_bytes;
      info.sizes_measured_at = size->measured_at;
    }
    if (IsSettledState(branch.state)) {
      auto wal = DescribeWal(project, branch, info.state == kStateRunning);
      if (wal.ok()) info.window = wal->window;
    }
  }
  return info;
}

std::optional<VolumeSizeRow> Engine::MeasureVolume(Pool& pool, const std::string& volume) {
  auto space = pool.VolumeSpace(volume);
  if (!space.ok()) {
    spdlog::debug("size of volume {}: {}", volume, space.status().message());
    return std::nullopt;
  }
  VolumeSizeRow row{volume, space->logical_bytes, space->exclusive_bytes,
                    FormatTimestamp(env_.clock->Now())};
  // Kept for the next listing; a catalog that cannot take it (busy, read-only) only means the
  // next listing measures again.
  Status kept = catalog_->PutVolumeSize(row);
  if (!kept.ok()) spdlog::debug("keep the size of volume {}: {}", volume, kept.message());
  return row;
}

Result<int> Engine::MeasureSizes(std::chrono::seconds older_than) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListBranches());
  PGB_ASSIGN_OR_RETURN(auto sizes, catalog_->ListVolumeSizes());
  TimePoint now = env_.clock->Now();
  int measured = 0;
  for (const auto& row : rows) {
    if (!IsSettledState(row.state)) continue;  // being made, reset or deleted: not yet, or gone
    auto it = sizes.find(row.volume);
    if (it != sizes.end()) {
      auto at = ParseTimestamp(it->second.measured_at);
      if (at.ok() && now - *at < older_than) continue;
    }
    if (MeasureVolume(*pool, row.volume)) ++measured;
  }
  PGB_RETURN_IF_ERROR(catalog_->PruneVolumeSizes());
  return measured;
}

Result<std::vector<BranchInfo>> Engine::ListBranches(const std::string& project_name,
                                                     SizeMode sizes) {
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
  std::map<std::string, VolumeSizeRow> cached;
  if (sizes == SizeMode::kCached) {
    PGB_ASSIGN_OR_RETURN(cached, catalog_->ListVolumeSizes());
  }
  std::vector<BranchInfo> out;
  for (const auto& row : rows) {
    PGB_ASSIGN_OR_RETURN(BranchInfo info, Describe(projects[row.project_id], row, sizes, &cached));
    out.push_back(std::move(info));
  }
  return out;
}

Result<BranchInfo> Engine::GetBranch(const BranchRef& ref, SizeMode sizes) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
  return Describe(project, row, sizes);
}

namespace {

// A field of a password file line: '\\' and ':' escaped with a backslash (docs 34.16).
std::string PassfileField(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == ':') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

std::vector<ConnectionParam> ConnectionParams(const BranchConnection& c) {
  return {{"host", "PGHOST", c.host},
          {"port", "PGPORT", std::to_string(c.port)},
          {"user", "PGUSER", c.user},
          {"dbname", "PGDATABASE", c.database},
          {"passfile", "PGPASSFILE", c.passfile},
          {"sslmode", "PGSSLMODE", "verify-full"},
          {"sslrootcert", "PGSSLROOTCERT", c.root_cert}};
}

std::vector<std::pair<std::string, std::string>> ConnectionKeywords(const BranchConnection& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& p : ConnectionParams(c)) out.emplace_back(p.keyword, std::move(p.value));
  return out;
}

std::vector<std::pair<std::string, std::string>> ConnectionEnv(const BranchConnection& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& p : ConnectionParams(c)) out.emplace_back(p.variable, std::move(p.value));
  return out;
}

Result<BranchConnection> Engine::ConnectionOf(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
  PGB_ASSIGN_OR_RETURN(BranchInfo info, Describe(project, row, SizeMode::kNone));
  BranchConnection c;
  c.ref = Ref(project, row);
  c.state = info.state;
  c.host = info.host;
  // A replica main keeps the source's passwords, not pgbranch's: `psql` reaches it over the
  // private socket, which trusts local connections (no TLS there: libpq uses none on a socket).
  if (StandbyFor(project, row)) c.host = SocketDir(project);
  c.port = row.port;
  c.user = project.superuser;
  c.passfile = PassfilePath(row);
  PGB_ASSIGN_OR_RETURN(LocalCa ca, CertificateAuthority());
  c.root_cert = ca.cert_path;
  c.psql = "psql";
  if (!IsContainerRuntime(project.runtime) && !project.pg_bin.empty() &&
      PathExists(JoinPath(project.pg_bin, "psql"))) {
    c.psql = JoinPath(project.pg_bin, "psql");
  }
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "pgpass"), 0700));
  PGB_RETURN_IF_ERROR(WriteFileAtomic(
      c.passfile,
      fmt::format("{}:{}:{}:{}:{}\n", PassfileField(c.host), c.port, PassfileField(c.database),
                  PassfileField(c.user), PassfileField(row.password)),
      0600));
  return c;
}

Result<StatusInfo> Engine::GetStatus(SizeMode sizes) {
  StatusInfo info;
  info.home = env_.home;
  PGB_ASSIGN_OR_RETURN(info.ports, LoadPortRange());
  auto user = ServerUser();
  Result<bool> own_users = WantsOwnOsUser();
  if (own_users.ok() && *own_users) {
    info.os_user = fmt::format("pgb-{}-<project id> (one per project)", HomeTag(env_.home));
  } else if (user.ok()) {
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
  PGB_ASSIGN_OR_RETURN(info.branches, ListBranches("", sizes));
  return info;
}

}  // namespace pgb
