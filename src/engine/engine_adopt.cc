// `project create P --adopt DATADIR`: an existing, cleanly stopped PostgreSQL data directory
// that sits on the pool's filesystem (a Btrfs subvolume, a ZFS dataset of the same ZFS pool, a
// directory for the tree pools) becomes main's volume by a rename: no byte is copied. Its
// settings stay; pgbranch's are added beside them (the include of pgbranch.conf, our
// pg_hba.conf with theirs kept as pg_hba.conf.source), its files are given to the project's
// server account, and its bootstrap superuser becomes the project's with pgbranch's password.
// `project delete P --keep-data` undoes each of these and renames it back where it was.

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/os_user.h"
#include "common/proc.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "pg/client.h"
#include "pg/cluster.h"
#include "storage/volume_name.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

// Gives every file under `root` (and `root`) to `owner`, symbolic links themselves.
Status ChownTree(const std::string& root, FileOwner owner) {
  auto chown = [&](const std::filesystem::path& p) -> Status {
    if (::lchown(p.c_str(), owner.uid, owner.gid) != 0) {
      return PosixError(fmt::format("chown {}", p.string()), errno);
    }
    return Status::OK();
  };
  PGB_RETURN_IF_ERROR(chown(root));
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(root, ec), end;
  for (; !ec && it != end; it.increment(ec)) PGB_RETURN_IF_ERROR(chown(it->path()));
  if (ec) return Status::IOError(fmt::format("list {}: {}", root, ec.message()));
  return Status::OK();
}

// A whole decimal number, or nullopt.
std::optional<long long> ParseWhole(std::string_view s) {
  long long value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return value;
}

Result<FileOwner> ParseOwner(const std::string& text) {
  size_t colon = text.find(':');
  std::optional<long long> uid, gid;
  if (colon != std::string::npos) {
    uid = ParseWhole(std::string_view(text).substr(0, colon));
    gid = ParseWhole(std::string_view(text).substr(colon + 1));
  }
  if (!uid || !gid) return Status::Internal(fmt::format("adopted owner {:?} is not uid:gid", text));
  return FileOwner{static_cast<uid_t>(*uid), static_cast<gid_t>(*gid)};
}

}  // namespace

std::string Engine::AdoptedPasswordPath(const ProjectRow& project) const {
  return JoinPath(SourceDir(project), "adopted-password");
}

Status Engine::CheckAdopt(ProjectRow* project, const ProjectCreateOptions& options) {
  if (IsContainerRuntime(project->runtime)) {
    return Status::InvalidArgument("--adopt takes a data directory for the native runtime");
  }
  if (!options.from_dump.empty() || !options.from_server.empty()) {
    return Status::InvalidArgument(
        "--adopt keeps the data directory's own data; --from-dump and --from-server load other "
        "data: choose one");
  }
  if (!options.transforms.empty()) {
    return Status::InvalidArgument(
        "--transform would change the adopted data itself; adopt it, then run the SQL in a "
        "branch");
  }
  PGB_ASSIGN_OR_RETURN(std::string path, AbsolutePath(options.adopt));
  if (!IsDirectory(path)) return Status::NotFound(fmt::format("{} is not a directory", path));
  PGB_ASSIGN_OR_RETURN(int major, DataDirMajorVersion(path));
  if (major != project->pg_major) {
    return Status::FailedPrecondition(fmt::format(
        "{} holds PostgreSQL {} data, the project runs PostgreSQL {} ({}); choose the same major "
        "with --pg-bin",
        path, major, project->pg_major, project->pg_bin));
  }
  // Never one of pgbranch's own volumes or snapshots.
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  std::string volume = NewVolumeName();
  for (const std::string& dir : {Dirname(pool->VolumePath(volume)),
                                 Dirname(pool->SnapshotPath(volume, NewSnapshotName()))}) {
    if (JoinPath(path, "").compare(0, dir.size() + 1, JoinPath(dir, "")) == 0) {
      return Status::InvalidArgument(fmt::format("{} is inside the pool's own {}", path, dir));
    }
  }
  // A snapshot holds the data directory and nothing outside it.
  std::error_code ec;
  if (std::filesystem::is_symlink(JoinPath(path, "pg_wal"), ec)) {
    return Status::FailedPrecondition(fmt::format(
        "{}/pg_wal is a symbolic link (initdb --waldir); pgbranch snapshots only the data "
        "directory, so the WAL must live inside it",
        path));
  }
  if (!std::filesystem::is_empty(JoinPath(path, "pg_tblspc"), ec) && !ec) {
    return Status::FailedPrecondition(fmt::format(
        "{} has tablespaces outside it (pg_tblspc); pgbranch snapshots only the data directory",
        path));
  }
  for (const char* signal : {"standby.signal", "recovery.signal"}) {
    if (PathExists(JoinPath(path, signal))) {
      return Status::FailedPrecondition(
          fmt::format("{} is a standby or in recovery ({}); adopt a primary", path, signal));
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return PosixError(fmt::format("stat {}", path), errno);
  if (::geteuid() != 0) {
    PGB_ASSIGN_OR_RETURN(std::optional<OsUser> server, ServerUserFor(*project));
    uid_t runs_as = server ? server->uid : ::geteuid();
    if (st.st_uid != runs_as) {
      return Status::PermissionDenied(fmt::format(
          "{} belongs to uid {}; pgbranch runs servers as uid {} and, without root, cannot take "
          "it over",
          path, st.st_uid, runs_as));
    }
  }

  // Running? Stop it only when asked to (pg_ctl stop -m fast, as the directory's owner).
  PGB_ASSIGN_OR_RETURN(std::optional<PostmasterPid> pid, ReadPostmasterPid(path));
  if (pid) {
    std::optional<ProcInfo> proc = ReadProc(pid->pid);
    bool alive = proc && proc->state != 'Z' && proc->state != 'X';
    if (alive && !options.adopt_stop) {
      return Status::FailedPrecondition(fmt::format(
          "{} is in use by a running server (pid {}); stop it, or add --stop to have pgbranch "
          "stop it (pg_ctl stop -m fast)",
          path, pid->pid));
    }
    if (alive) {
      PGB_ASSIGN_OR_RETURN(OsUser server_owner, LookupOsUserById(st.st_uid));
      Command stop;
      stop.argv = {
          JoinPath(project->pg_bin, "pg_ctl"), "stop", "-D", path, "-m", "fast", "-w", "-t", "120"};
      stop.clean_env = true;
      stop.user = server_owner;
      stop.cwd = "/";
      stop.timeout = std::chrono::minutes(3);
      PGB_RETURN_IF_ERROR(Timed("Stop source", [&]() -> Status {
        PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(stop));
        if (!r.Succeeded()) {
          return Status::Internal(
              fmt::format("pg_ctl stop -D {} failed: {}", path, ToolErrorLine(r.err)));
        }
        Note(fmt::format("stopped the server of {} (pid {})", path, pid->pid));
        return Status::OK();
      }));
    }
  }
  Command control;
  control.argv = {JoinPath(project->pg_bin, "pg_controldata"), path};
  control.clean_env = true;
  control.timeout = std::chrono::seconds(30);
  PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(control));
  if (!r.Succeeded()) {
    return Status::FailedPrecondition(
        fmt::format("pg_controldata {} failed: {}", path, ToolErrorLine(r.err)));
  }
  std::string state = ControlDataField(r.out, "Database cluster state:");
  if (state != "shut down") {
    return Status::FailedPrecondition(fmt::format(
        "{} was not shut down cleanly (cluster state {:?}); start it and stop it cleanly "
        "(pg_ctl stop -m fast) first",
        path, state));
  }
  // The bootstrap superuser (OID 10) becomes the project's, and pgbranch's first connection
  // needs its name: asked of the stopped cluster in single-user mode, as its owner (docs:
  // postgres, "Single-User Mode"), which prints each column as `name = "value"`.
  PGB_ASSIGN_OR_RETURN(OsUser owner, LookupOsUserById(st.st_uid));
  Command single;
  single.argv = {JoinPath(project->pg_bin, "postgres"), "--single", "-D", path};
  if (!PathExists(JoinPath(path, "postgresql.conf"))) {
    single.argv.insert(single.argv.end(), {"-c", "config_file=/dev/null"});
  }
  single.argv.push_back("template1");
  single.stdin_data = "SELECT rolname FROM pg_authid WHERE oid = 10\n";
  single.clean_env = true;
  single.user = owner;
  single.cwd = "/";
  single.timeout = std::chrono::minutes(2);
  PGB_ASSIGN_OR_RETURN(CommandResult q, runner_->Run(single));
  constexpr std::string_view kRolname = "rolname = \"";
  size_t at = q.out.rfind(kRolname);
  size_t end = at == std::string::npos ? at : q.out.find('"', at + kRolname.size());
  if (!q.Succeeded() || end == std::string::npos) {
    return Status::FailedPrecondition(
        fmt::format("{}: single-user postgres could not say who its superuser is: {}", path,
                    ToolErrorLine(q.err.empty() ? q.out : q.err)));
  }
  project->superuser = q.out.substr(at + kRolname.size(), end - at - kRolname.size());
  std::optional<long long> segment = ParseWhole(ControlDataField(r.out, "Bytes per WAL segment:"));
  if (segment && *segment > 0) project->wal_segment_size = *segment;
  project->adopted_from = path;
  project->adopted_owner = fmt::format("{}:{}", st.st_uid, st.st_gid);
  return Status::OK();
}

Status Engine::AdoptDataDir(const ProjectRow& project, const BranchRow& main,
                            std::optional<FileOwner> owner, Operation& op) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  Action back;
  back.kind = "hand-back-volume";
  back.project_id = project.id;
  back.volume = main.volume;
  back.path = project.adopted_from;
  back.text = fmt::format("hand {} back from volume {}", project.adopted_from, main.volume);
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(back)));
  PGB_RETURN_IF_ERROR(
      Timed("Adopt", [&] { return pool->AdoptVolume(project.adopted_from, main.volume); }));
  std::string data_dir = pool->VolumePath(main.volume);
  if (owner) PGB_RETURN_IF_ERROR(Timed("Owner", [&] { return ChownTree(data_dir, *owner); }));
  if (!PathExists(JoinPath(data_dir, "postgresql.conf"))) {
    Note(fmt::format(
        "{} keeps no postgresql.conf (Debian keeps it in /etc/postgresql): main runs with "
        "PostgreSQL's defaults and pgbranch's settings",
        project.adopted_from));
  }
  PGB_RETURN_IF_ERROR(SetAsideServerCertificate(data_dir));
  return FinishCopiedDataDir(data_dir, {}, owner);
}

Status Engine::TakeOverAdoptedSuperuser(ProjectRow* project, const BranchRow& main, Operation& op) {
  PGB_RETURN_IF_ERROR(AdoptCopiedSuperuser(project, main));
  PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(*project, main)));
  // Its password as stored (a SCRAM or MD5 verifier, or none), for the way back.
  PGB_ASSIGN_OR_RETURN(std::vector<Row> rows,
                       conn->Query("SELECT rolpassword FROM pg_authid WHERE oid = 10"));
  nlohmann::json saved = {{"role", project->superuser}, {"verifier", nullptr}};
  if (rows.size() == 1 && !rows[0].empty() && rows[0][0]) saved["verifier"] = *rows[0][0];
  PGB_RETURN_IF_ERROR(EnsureDir(JoinPath(env_.home, "sources"), 0711));
  PGB_RETURN_IF_ERROR(EnsureDir(SourceDir(*project), 0700));
  PGB_RETURN_IF_ERROR(WriteFileAtomic(AdoptedPasswordPath(*project), saved.dump(), 0600));
  Action restore;
  restore.kind = "restore-adopted-password";
  restore.project_id = project->id;
  restore.branch_id = main.id;
  restore.text = fmt::format("give role {} its own password back", project->superuser);
  PGB_RETURN_IF_ERROR(op.PushUndo(std::move(restore)));
  PGB_RETURN_IF_ERROR(op.Step("password"));
  return Timed("Password",
               [&] { return SetRolePassword(*conn, project->superuser, main.password); });
}

Status Engine::RestoreAdoptedPassword(const ProjectRow& project, const BranchRow& main) {
  Result<std::string> text = ReadFile(AdoptedPasswordPath(project));
  if (text.status().Is(StatusCode::kNotFound)) return Status::OK();  // never changed
  PGB_RETURN_IF_ERROR(text.status());
  nlohmann::json saved = nlohmann::json::parse(*text, nullptr, false);
  if (saved.is_discarded() || !saved.contains("role") || !saved["role"].is_string()) {
    return Status::Internal(fmt::format("{} is not pgbranch's", AdoptedPasswordPath(project)));
  }
  PGB_ASSIGN_OR_RETURN(InstanceStatus status, InspectBranch(project, main));
  if (!status.running) {
    PGB_RETURN_IF_ERROR(StartInstance(project, main, /*set_password=*/false, nullptr));
  }
  PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(project, main)));
  PGB_ASSIGN_OR_RETURN(std::string role, conn->QuoteIdentifier(saved["role"].get<std::string>()));
  std::string password = "NULL";
  if (saved["verifier"].is_string()) {
    // A verifier is stored as it is (docs: CREATE ROLE, "PASSWORD").
    PGB_ASSIGN_OR_RETURN(password, conn->QuoteLiteral(saved["verifier"].get<std::string>()));
  }
  return conn->Exec(fmt::format("ALTER ROLE {} PASSWORD {}", role, password));
}

Status Engine::PrepareHandBack(const ProjectRow& project, const BranchRow& main) {
  PGB_RETURN_IF_ERROR(RestoreAdoptedPassword(project, main));
  // Handed back cleanly shut down, as it came.
  return StopInstance(project, main, StopMode::kFast);
}

Status Engine::HandBackVolume(const ProjectRow& project, const std::string& volume) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  std::string data_dir = pool->VolumePath(volume);
  bool adopted = PathExists(data_dir);
  if (adopted) {
    PGB_RETURN_IF_ERROR(RestoreAdoptedDataDir(data_dir));
    PGB_ASSIGN_OR_RETURN(FileOwner owner, ParseOwner(project.adopted_owner));
    PGB_RETURN_IF_ERROR(ChownTree(data_dir, owner));
  }
  PGB_RETURN_IF_ERROR(pool->ReleaseVolume(volume, project.adopted_from));
  if (adopted) Note(fmt::format("handed {} back", project.adopted_from));
  return Status::OK();
}

}  // namespace pgb
