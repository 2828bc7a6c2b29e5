// `project create P --from-server URI [--replica [--slot S]]`: main as a physical copy of a
// running server (pg_basebackup), either an independent primary or a streaming standby that
// keeps following the source; the masking transforms, and a replica main's lag.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/failpoint.h"
#include "common/fs.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "pg/client.h"
#include "pg/source.h"
#include "pg/wal.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

// How long one copy may take before it is stopped.
constexpr auto kCopyTimeout = std::chrono::hours(48);
// How often the copy's progress is reported.
constexpr auto kCopyProgressEvery = std::chrono::seconds(5);

// The bytes under `dir` (apparent sizes), for the copy's progress. Best effort: files that
// come and go while pg_basebackup writes are skipped.
uint64_t TreeBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      uint64_t n = it->file_size(size_ec);
      if (!size_ec) total += n;
    }
  }
  return total;
}

// Reports the growth of `dir` every kCopyProgressEvery while it lives ("copied 1.2 GiB,
// 85.0 MiB/s"), through `note`.
class CopyProgress {
 public:
  CopyProgress(std::string dir, std::function<void(std::string_view)> note)
      : dir_(std::move(dir)), note_(std::move(note)), start_(std::chrono::steady_clock::now()) {
    thread_ = std::thread([this] { Run(); });
  }
  ~CopyProgress() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // The total and the mean rate so far.
  std::string Summary() const {
    uint64_t bytes = TreeBytes(dir_);
    return fmt::format("{} at {}/s", FormatBytes(bytes), FormatBytes(Rate(bytes)));
  }

 private:
  uint64_t Rate(uint64_t bytes) const {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return s > 0 ? static_cast<uint64_t>(static_cast<double>(bytes) / s) : 0;
  }
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, kCopyProgressEvery, [this] { return done_; })) {
      lock.unlock();
      uint64_t bytes = TreeBytes(dir_);
      note_(fmt::format("copied {} ({}/s)", FormatBytes(bytes), FormatBytes(Rate(bytes))));
      lock.lock();
    }
  }

  std::string dir_;
  std::function<void(std::string_view)> note_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// The copy's pg_hba.conf lines and signal files are the source's; the settings a standby must
// not inherit from the source's own postgresql.auto.conf (the source may itself be a standby)
// are dropped: pgbranch.conf sets them for a replica main, and auto.conf would win over it.
constexpr const char* kInheritedRecoverySettings[] = {
    "primary_conninfo",         "primary_slot_name",   "restore_command",
    "recovery_target",          "recovery_target_lsn", "recovery_target_name",
    "recovery_target_time",     "recovery_target_xid", "recovery_target_action",
    "recovery_target_timeline", "archive_command",     "archive_library"};

std::string TransformError(const std::string& name, const std::string& err) {
  // psql names its input; for stdin, say the file the SQL came from.
  std::string text = ToolErrorLine(err);
  size_t at = text.find("<stdin>");
  if (at != std::string::npos) text.replace(at, 7, name);
  return text;
}

}  // namespace

std::string Engine::SourceDir(const ProjectRow& project) const {
  return JoinPath(JoinPath(env_.home, "sources"), std::to_string(project.id));
}

Result<std::string> Engine::ClientBinDir(const ProjectRow& project, const std::string& what,
                                         const std::vector<std::string>& tools) {
  // The project's own client tools: the server's bin directory (native), else the host's
  // installation of the same major (containers run the server; these run from here).
  std::string bin = IsContainerRuntime(project.runtime)
                        ? fmt::format("/usr/lib/postgresql/{}/bin", project.pg_major)
                        : project.pg_bin;
  for (const auto& tool : tools) {
    if (!PathExists(JoinPath(bin, tool))) {
      return Status::NotFound(fmt::format(
          "{} needs {} of PostgreSQL {} in {} (Debian: apt-get install postgresql-client-{})", what,
          tool, project.pg_major, bin, project.pg_major));
    }
  }
  return bin;
}

Result<std::vector<NamedSql>> Engine::ReadTransforms(const std::vector<std::string>& files) {
  std::vector<NamedSql> out;
  for (const auto& file : files) {
    if (IsDirectory(file)) {
      return Status::InvalidArgument(
          fmt::format("the transform {} is a directory; give an SQL file", QuoteForDisplay(file)));
    }
    Result<std::string> text = ReadFile(file);
    if (!text.ok()) {
      return Status::InvalidArgument(
          fmt::format("the transform {}: {}", QuoteForDisplay(file), text.status().message()));
    }
    out.push_back({file, *text});
  }
  return out;
}

Status Engine::RunTransforms(const ProjectRow& project, const BranchRow& branch,
                             const std::vector<NamedSql>& transforms) {
  if (transforms.empty()) return Status::OK();
  PGB_ASSIGN_OR_RETURN(std::string bin, ClientBinDir(project, "--transform", {"psql"}));
  PGB_ASSIGN_OR_RETURN(BranchConnection c, ConnectionOf(BranchRef{project.name, branch.name}));
  for (const auto& t : transforms) {
    Command run;
    // One transaction, stopped at the first error (docs: psql --single-transaction,
    // ON_ERROR_STOP): a failing transform leaves nothing half-applied, and fails the operation.
    // The SQL on stdin: the file may be gone by the time a replica's clone runs it.
    run.argv = {JoinPath(bin, "psql"), "--no-psqlrc",          "--quiet", "--set",
                "ON_ERROR_STOP=1",     "--single-transaction", "--file",  "-"};
    run.env = ConnectionEnv(c);
    // Only the variables above: nothing of the caller's (PGSERVICE, PGOPTIONS) reaches psql.
    run.clean_env = true;
    run.stdin_data = t.sql;
    run.timeout = kCopyTimeout;
    PGB_RETURN_IF_ERROR(Timed("Transform", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(run));
      if (!r.Succeeded()) {
        return Status::Internal(fmt::format("transform {} failed in {}: {}",
                                            QuoteForDisplay(t.name), Ref(project, branch),
                                            TransformError(t.name, r.err)));
      }
      return Status::OK();
    }));
  }
  return Status::OK();
}

Result<std::vector<NamedSql>> Engine::CloneTransforms(const ProjectRow& project,
                                                      const SnapshotRow& snapshot) {
  if (!project.replica || project.transforms.empty()) return std::vector<NamedSql>();
  // Only what comes straight from the replica main is unmasked; its descendants are masked.
  PGB_ASSIGN_OR_RETURN(BranchRow from, catalog_->GetBranch(snapshot.branch_id));
  if (from.parent_id) return std::vector<NamedSql>();
  std::vector<NamedSql> out;
  nlohmann::json list = nlohmann::json::parse(project.transforms, nullptr, false);
  if (!list.is_array()) {
    return Status::Internal(
        fmt::format("the stored transforms of project {} are not a JSON list", project.name));
  }
  for (const auto& t : list) {
    out.push_back({t.value("name", ""), t.value("sql", "")});
  }
  return out;
}

Result<SourceServer> Engine::CheckServerCopy(ProjectRow* project,
                                             const ProjectCreateOptions& options) {
  if (!options.from_dump.empty()) {
    return Status::InvalidArgument("--from-server and --from-dump are two ways in; choose one");
  }
  if (options.logical) {
    if (options.replica) {
      return Status::InvalidArgument(
          "--logical loads a dump once; a replica follows the server physically: choose one");
    }
    if (options.restore_jobs < 1 || options.restore_jobs > 64) {
      return Status::InvalidArgument("--jobs must be from 1 to 64");
    }
    PGB_RETURN_IF_ERROR(
        ClientBinDir(*project, "--logical", {"pg_dump", "pg_restore", "psql"}).status());
    SourceServer source;
    PGB_RETURN_IF_ERROR(Timed("Source", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(
          source, ProbeSourceServer(options.from_server, "", options.source_passfile, false));
      return Status::OK();
    }));
    PGB_RETURN_IF_ERROR(CheckSourceMajor(source, project->pg_major, project->pg_bin, true));
    project->source = FormatConninfo(source.params);
    return source;
  }
  if (IsContainerRuntime(project->runtime)) {
    return Status::InvalidArgument(
        "--from-server copies into native projects; a container project loads with --from-dump "
        "or --from-server --logical");
  }
  if (!options.slot.empty()) PGB_RETURN_IF_ERROR(ValidateSlotName(options.slot));
  PGB_ASSIGN_OR_RETURN(std::vector<NamedSql> transforms, ReadTransforms(options.transforms));
  PGB_RETURN_IF_ERROR(ClientBinDir(*project, "--from-server", {"pg_basebackup", "psql"}).status());
  SourceServer source;
  PGB_RETURN_IF_ERROR(Timed("Source", [&]() -> Status {
    PGB_ASSIGN_OR_RETURN(
        source, ProbeSourceServer(options.from_server, options.slot, options.source_passfile));
    return Status::OK();
  }));
  PGB_RETURN_IF_ERROR(CheckSourceMajor(source, project->pg_major, project->pg_bin, false));
  project->source = FormatConninfo(source.params);
  project->replica = options.replica;
  project->replication_slot = options.slot;
  project->slot_created = !options.slot.empty() && !source.slot_exists;
  project->wal_segment_size = static_cast<int64_t>(source.wal_segment_size);
  // Until the copy runs and says who its bootstrap superuser is, the role we logged in as:
  // it exists in the copy, and the private socket trusts it (AdoptCopiedSuperuser).
  project->superuser = source.user;
  if (options.replica) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : transforms) list.push_back({{"name", t.name}, {"sql", t.sql}});
    project->transforms = list.dump();
  }
  return source;
}

Status Engine::CopyFromServer(const ProjectRow& project, const BranchRow& main,
                              const SourceServer& source, const std::optional<OsUser>& os_user,
                              Operation& op) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  std::string data_dir = pool->VolumePath(main.volume);
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  // The password in a private file that the copy (and a replica's WAL receiver, which runs as
  // the server's account) reads; outside the data directory, so no snapshot or clone holds it.
  // Removed with the project.
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "sources"), 0711));
  std::string dir = SourceDir(project);
  PGB_RETURN_IF_ERROR(EnsureDir(dir, 0700, owner));
  std::string passfile = JoinPath(dir, "pgpass");
  PGB_RETURN_IF_ERROR(WriteFileAtomic(passfile, PassfileEntry(source.password), 0600, owner));

  PGB_ASSIGN_OR_RETURN(std::string bin, ClientBinDir(project, "--from-server", {"pg_basebackup"}));
  Command copy;
  copy.argv = {JoinPath(bin, "pg_basebackup"),
               "--pgdata",
               data_dir,
               "--wal-method=stream",
               "--checkpoint=fast",
               "--label",
               fmt::format("pgbranch {}", project.name),
               "--dbname",
               FormatConninfo(source.params, {{"passfile", passfile}})};
  if (!project.replication_slot.empty()) {
    copy.argv.push_back("--slot");
    copy.argv.push_back(project.replication_slot);
    if (project.slot_created) copy.argv.push_back("--create-slot");
  }
  copy.clean_env = true;
  copy.user = os_user;
  copy.cwd = "/";
  copy.timeout = kCopyTimeout;
  PGB_RETURN_IF_ERROR(Timed("Copy", [&]() -> Status {
    CopyProgress progress(data_dir, [this](std::string_view s) { Note(s); });
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(copy));
    if (!r.Succeeded()) {
      return Status::Internal(fmt::format("pg_basebackup from {} failed: {}",
                                          DescribeSource(source.params), ToolErrorLine(r.err)));
    }
    Note(fmt::format("copied {} from {}", progress.Summary(), DescribeSource(source.params)));
    return Status::OK();
  }));
  PGB_RETURN_IF_ERROR(Failpoint("copy-after-basebackup"));

  // The copy as pgbranch shapes a data directory: its own pg_hba.conf and the include of
  // pgbranch.conf; no signal files of the source's; none of the source's recovery settings.
  for (const char* signal : {"standby.signal", "recovery.signal"}) {
    PGB_RETURN_IF_ERROR(RemoveFile(JoinPath(data_dir, signal)));
  }
  std::string auto_conf = JoinPath(data_dir, "postgresql.auto.conf");
  if (PathExists(auto_conf)) {
    PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(auto_conf));
    std::string kept;
    for (const std::string& line : SplitLines(text)) {
      // "name = value" (ALTER SYSTEM writes exactly that shape; docs 20.1.2).
      std::string name = line.substr(0, line.find_first_of(" \t="));
      bool drop =
          std::find(std::begin(kInheritedRecoverySettings), std::end(kInheritedRecoverySettings),
                    name) != std::end(kInheritedRecoverySettings);
      if (drop) {
        Note(fmt::format("dropped the source's setting from postgresql.auto.conf: {}",
                         line.substr(0, line.find('='))));
      } else {
        kept += line + "\n";
      }
    }
    PGB_RETURN_IF_ERROR(WriteFileAtomic(auto_conf, kept, 0600, owner));
  }
  PGB_RETURN_IF_ERROR(FinishCopiedDataDir(data_dir, source.settings, owner));
  if (project.replica) {
    // Standby mode: the server replays what it receives and stays read-only (docs 27.2.2).
    PGB_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(data_dir, "standby.signal"), "", 0600, owner));
  } else {
    PGB_RETURN_IF_ERROR(RemoveTree(dir));
  }
  return Status::OK();
}

Status Engine::DumpFromServer(const ProjectRow& project, const SourceServer& source,
                              const std::string& dir, int jobs) {
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "sources"), 0711));
  PGB_RETURN_IF_ERROR(EnsureDir(SourceDir(project), 0700));
  std::string passfile = JoinPath(SourceDir(project), "pgpass");
  PGB_RETURN_IF_ERROR(WriteFileAtomic(passfile, PassfileEntry(source.password), 0600));
  PGB_ASSIGN_OR_RETURN(std::string bin, ClientBinDir(project, "--logical", {"pg_dump"}));
  Command dump;
  // Directory format: the only one pg_dump writes with parallel jobs (docs: pg_dump -j).
  dump.argv = {JoinPath(bin, "pg_dump"),
               "--format=directory",
               "--jobs",
               std::to_string(jobs),
               "--file",
               dir,
               "--dbname",
               FormatConninfo(source.params, {{"passfile", passfile}})};
  dump.clean_env = true;
  dump.timeout = kCopyTimeout;
  return Timed("Dump", [&]() -> Status {
    CopyProgress progress(dir, [this](std::string_view s) { Note(s); });
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(dump));
    if (!r.Succeeded()) {
      return Status::Internal(fmt::format("pg_dump from {} failed: {}",
                                          DescribeSource(source.params), ToolErrorLine(r.err)));
    }
    Note(fmt::format("dumped {} from {}", progress.Summary(), DescribeSource(source.params)));
    return Status::OK();
  });
}

Status Engine::AdoptCopiedSuperuser(ProjectRow* project, const BranchRow& main) {
  // pg_roles is readable by every role; OID 10 is the bootstrap superuser initdb made.
  PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(*project, main)));
  PGB_ASSIGN_OR_RETURN(std::string name,
                       conn->QueryValue("SELECT rolname FROM pg_roles WHERE oid = 10"));
  if (name == project->superuser) return Status::OK();
  project->superuser = name;
  PGB_RETURN_IF_ERROR(catalog_->UpdateProjectSuperuser(project->id, name));
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_ASSIGN_OR_RETURN(std::optional<OsUser> os_user, ServerUserFor(*project));
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  // The metadata line names the superuser (doctor --adopt); nothing the server reads changed.
  return WriteInstanceConfig(pool->VolumePath(main.volume), ConfigFor(*project, main), owner);
}

std::optional<StandbySettings> Engine::StandbyFor(const ProjectRow& project,
                                                  const BranchRow& branch) const {
  if (!project.replica || branch.parent_id) return std::nullopt;
  StandbySettings standby;
  standby.primary_conninfo =
      project.source + " " +
      FormatConninfo({}, {{"passfile", JoinPath(SourceDir(project), "pgpass")},
                          {"application_name", fmt::format("pgbranch_{}", project.id)}});
  standby.slot = project.replication_slot;
  return standby;
}

void Engine::DropCreatedSlot(const ProjectRow& project) {
  if (!project.slot_created || project.replication_slot.empty()) return;
  std::string passfile = JoinPath(SourceDir(project), "pgpass");
  auto bin = ClientBinDir(project, "dropping the replication slot", {"pg_receivewal"});
  Status s = bin.status();
  if (s.ok()) {
    Command drop;
    drop.argv = {JoinPath(*bin, "pg_receivewal"),
                 "--drop-slot",
                 "--slot",
                 project.replication_slot,
                 "--dbname",
                 project.source + " " + FormatConninfo({}, {{"passfile", passfile}})};
    drop.clean_env = true;
    auto os_user = ServerUserFor(project);
    if (os_user.ok()) drop.user = *os_user;
    drop.cwd = "/";
    drop.timeout = std::chrono::seconds(30);
    auto r = runner_->Run(drop);
    s = !r.ok()          ? r.status()
        : r->Succeeded() ? Status::OK()
                         : Status::Unavailable(ToolErrorLine(r->err));
  }
  if (s.ok()) {
    Note(fmt::format("dropped the replication slot {} on the source", project.replication_slot));
    return;
  }
  Note(fmt::format(
      "could not drop the replication slot {} on the source ({}); drop it there, or the source "
      "keeps its WAL: SELECT pg_drop_replication_slot('{}')",
      project.replication_slot, s.message(), project.replication_slot));
}

void Engine::DescribeReplica(const ProjectRow& project, const BranchRow& branch, BranchInfo* info) {
  if (!project.replica || branch.parent_id) return;
  BranchInfo::Replica r;
  r.source = project.source;
  r.slot = project.replication_slot;
  if (info->state == kStateRunning) {
    auto conn = Connection::Open(AdminParams(project, branch));
    if (conn.ok()) {
      // latest_end_lsn: the end of WAL the source last reported to this receiver.
      auto rows = (*conn)->Query(
          "SELECT COALESCE(pg_last_wal_receive_lsn()::text, ''),"
          " COALESCE(pg_last_wal_replay_lsn()::text, ''),"
          " (SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'),"
          " COALESCE((SELECT pg_wal_lsn_diff(latest_end_lsn, pg_last_wal_replay_lsn())"
          "   FROM pg_stat_wal_receiver), pg_wal_lsn_diff(pg_last_wal_receive_lsn(),"
          "   pg_last_wal_replay_lsn()), 0)::bigint,"
          " COALESCE(EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8");
      if (rows.ok() && rows->size() == 1 && (*rows)[0].size() == 5) {
        const Row& row = (*rows)[0];
        r.receive_lsn = row[0].value_or("");
        r.replay_lsn = row[1].value_or("");
        r.streaming = row[2].value_or("0") != "0";
        int64_t bytes = std::atoll(row[3].value_or("0").c_str());
        r.lag_bytes = bytes > 0 ? static_cast<uint64_t>(bytes) : 0;
        double seconds = std::atof(row[4].value_or("0").c_str());
        // An idle source sends no transactions: the last one's age is no lag while replay has
        // caught up with what was received and the receiver streams.
        bool caught_up = r.receive_lsn == r.replay_lsn && r.lag_bytes == 0 && r.streaming;
        r.lag_seconds = caught_up ? 0 : std::max(0.0, seconds);
      } else if (!rows.ok()) {
        spdlog::debug("replica state of {}: {}", Ref(project, branch), rows.status().message());
      }
    }
  }
  info->replica = std::move(r);
}

}  // namespace pgb

namespace pgb {

Result<BranchInfo> Engine::RefreshProject(const std::string& name,
                                          const ProjectCreateOptions& options) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(name));
  if (project.replica) {
    return Status::FailedPrecondition(fmt::format(
        "project {} follows its source: main is always current; 'branch reset' or 'branch "
        "rebase' moves a branch onto it",
        name));
  }
  if (!project.adopted_from.empty()) {
    // The new data would take the adopted directory's place as main, and that directory would
    // go with the old volume.
    return Status::FailedPrecondition(fmt::format(
        "project {} is {} adopted in place; a refresh would replace that directory (hand it "
        "back with 'project delete {} --keep-data' first)",
        name, project.adopted_from, name));
  }
  if (options.replica || !options.slot.empty()) {
    return Status::InvalidArgument("--replica and --slot are for project create");
  }
  if (options.from_dump.empty() == options.from_server.empty()) {
    return Status::InvalidArgument("give the new data: --from-dump FILE or --from-server URI");
  }
  if (options.logical && options.from_server.empty()) {
    return Status::InvalidArgument("--logical dumps the server of --from-server; give both");
  }
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PGB_RETURN_IF_ERROR(CheckPoolSpace(*pool));
  std::optional<SourceServer> source;
  std::string pg_restore;
  ProjectRow next = project;
  if (!options.from_server.empty()) {
    PGB_ASSIGN_OR_RETURN(source, CheckServerCopy(&next, options));
  } else {
    PGB_ASSIGN_OR_RETURN(pg_restore, CheckDumpLoad(project, options));
  }
  PGB_ASSIGN_OR_RETURN(std::vector<NamedSql> transforms, ReadTransforms(options.transforms));
  PGB_ASSIGN_OR_RETURN(std::optional<OsUser> os_user, ServerUserFor(project));
  std::optional<FileOwner> owner;
  if (os_user) owner = FileOwner{os_user->uid, os_user->gid};
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared("project refresh " + name));
  BranchRow fresh;
  Status s =
      RunOperation("project.refresh", name, project.id, std::nullopt, [&](Operation& op) -> Status {
        PGB_ASSIGN_OR_RETURN(LockHandle project_lock, LockProjectOf(project, &op));
        PGB_ASSIGN_OR_RETURN(BranchRow main, LoadBranch(project, kMainBranch));
        PGB_RETURN_IF_ERROR(op.SetIds(project.id, main.id));
        PGB_ASSIGN_OR_RETURN(std::vector<LockHandle> held, LockBranches(project, {main.id}, &op));
        PGB_ASSIGN_OR_RETURN(main, catalog_->GetBranch(main.id));
        if (!IsSettledState(main.state)) {
          return Status::FailedPrecondition(
              fmt::format("{} is {}", Ref(project, main), main.state));
        }
        PGB_RETURN_IF_ERROR(CheckNoPitrInFlight(project, main, "refresh it"));
        // Down until the new data starts; anything failing before the commit brings it back.
        PGB_RETURN_IF_ERROR(StopForReplacement(project, main, StopMode::kFast, op));
        // Same row, port and password; a new volume.
        fresh = main;
        fresh.volume = NewVolumeName();
        PGB_RETURN_IF_ERROR(op.Step("volume"));
        Action destroy;
        destroy.kind = "destroy-volume";
        destroy.volume = fresh.volume;
        destroy.text =
            fmt::format("destroy the new volume {} of {}", fresh.volume, Ref(project, main));
        PGB_RETURN_IF_ERROR(op.PushUndo(std::move(destroy)));
        Action archive;
        archive.kind = "remove-dir";
        archive.path = ArchiveDir(project, fresh);
        archive.text =
            fmt::format("remove the WAL archive of the new volume of {}", Ref(project, main));
        PGB_RETURN_IF_ERROR(op.PushUndo(std::move(archive)));
        PGB_RETURN_IF_ERROR(
            Timed("Volume", [&] { return pool->CreateVolume(fresh.volume, owner); }));
        PGB_RETURN_IF_ERROR(
            FillMainVolume(&next, fresh, source, pg_restore, transforms, os_user, options, op));
        PGB_RETURN_IF_ERROR(Failpoint("refresh-before-snapshot"));
        PGB_RETURN_IF_ERROR(op.Step("snapshot"));
        SnapshotRow base;
        PGB_RETURN_IF_ERROR(TakeSnapshot(next, fresh, /*fast=*/false, "refresh", false, op, &base));
        PGB_RETURN_IF_ERROR(op.Step("commit"));
        // After the commit the old volume and its archive are main's no more: they go as the
        // finish, where no snapshot a branch was made from needs them (the pool keeps those).
        Action old_volume;
        old_volume.kind = "destroy-volume";
        old_volume.volume = main.volume;
        old_volume.text =
            fmt::format("destroy the old volume {} of {}", main.volume, Ref(project, main));
        Action old_archive;
        old_archive.kind = "remove-dir";
        old_archive.path = ArchiveDir(project, main);
        old_archive.text = fmt::format("remove the old WAL archive of {}", Ref(project, main));
        std::string what =
            !options.from_dump.empty()
                ? fmt::format("refreshed from the dump {}", QuoteForDisplay(options.from_dump))
                : fmt::format("refreshed from {}{}", next.source,
                              options.logical ? " (pg_dump)" : "");
        return catalog_->Transaction([&]() -> Status {
          PGB_RETURN_IF_ERROR(catalog_->InsertSnapshot(base).status());
          PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(fresh));
          if (source) {
            PGB_RETURN_IF_ERROR(
                catalog_->UpdateProjectSource(project.id, next.source, next.wal_segment_size));
          }
          PGB_RETURN_IF_ERROR(catalog_->InsertEvent(Event(fresh, "refresh", what)));
          return op.MarkCommitted(
              {old_volume, old_archive, SweepSnapshotsAction(project.id, project.name)});
        });
      });
  PGB_RETURN_IF_ERROR(s);
  PGB_ASSIGN_OR_RETURN(project, LoadProject(name));
  return Describe(project, fresh, SizeMode::kNone);
}

}  // namespace pgb
