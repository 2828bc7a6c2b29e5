// The engine: one OS account per native project, so that one project's superuser (who can
// read files and run programs as its server's account: pg_read_server_files,
// pg_execute_server_program) reaches nothing of another project's.
//
// The model (README "Isolation between projects"): as root, with no `init --os-user`, project
// P's servers run as "pgb-<HomeTag(home)>-<P's id>", made by useradd when P is made and removed
// with P. Its data directories, WAL archive, socket directory ($HOME/sockets/<id>) and server
// log belong to that account, mode 0700/0600; pgbranch's own directories are root's, 0711 where
// a server must pass through them. Projects made before this, or with --os-user, keep the one
// shared account they run as.

#include <fmt/format.h>
#include <sys/stat.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/os_user.h"
#include "common/subprocess.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "runtime/container.h"
#include "storage/pool.h"

namespace pgb {

using namespace internal;  // NOLINT(build/namespaces)

namespace {

constexpr auto kUserToolTimeout = std::chrono::seconds(60);

// "pgb-<tag>-": the prefix of every account of the home tagged `tag`.
std::string AccountPrefix(const std::string& home) { return fmt::format("pgb-{}-", HomeTag(home)); }

}  // namespace

namespace internal {
bool HasOwnOsUser(const ProjectRow& project) {
  return !IsContainerRuntime(project.runtime) && project.server_uid > 0;
}
}  // namespace internal

Result<bool> Engine::WantsOwnOsUser() {
  if (!RunningAsRoot()) return false;
  PGB_ASSIGN_OR_RETURN(auto chosen, catalog_->GetSetting(kOsUser));
  return !chosen.has_value();
}

std::string Engine::ProjectOsUserName(int64_t project_id) const {
  return AccountPrefix(env_.home) + std::to_string(project_id);
}

Result<OsUser> Engine::CreateProjectOsUser(ProjectRow& project) {
  std::string name = ProjectOsUserName(project.id);
  // A create cut short after useradd finds its account made: take it over.
  Result<OsUser> found = LookupOsUser(name);
  if (!found.ok()) {
    if (!found.status().Is(StatusCode::kNotFound)) return found.status();
    // The comment names the home, so that an account outliving its home can be traced back.
    std::string comment = "pgbranch project";
    if (env_.home.find_first_of(":,\n") == std::string::npos) comment += " in " + env_.home;
    Command add;
    add.argv = {"useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                comment,
                name};
    add.timeout = kUserToolTimeout;
    Result<CommandResult> made = RunChecked(*runner_, add);
    if (!made.ok()) {
      return Status(made.status().code(), fmt::format("make the OS user {} of project {}: {}", name,
                                                      project.name, made.status().message()));
    }
    found = LookupOsUser(name);
    PGB_RETURN_IF_ERROR(found.status());
  } else {
    // Never two projects on one account (a catalog restored from before a project could hand
    // its id out again).
    PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
    for (const auto& other : projects) {
      if (other.id != project.id && HasOwnOsUser(other) &&
          other.server_uid == static_cast<int64_t>(found->uid)) {
        return Status::AlreadyExists(
            fmt::format("make the OS user {} of project {}: it exists and project {} runs as it",
                        name, project.name, other.name));
      }
    }
  }
  PGB_RETURN_IF_ERROR(catalog_->UpdateProjectServerUser(project.id, found->uid, found->gid));
  project.server_uid = found->uid;
  project.server_gid = found->gid;
  return *found;
}

Status Engine::RemoveProjectOsUser(const ProjectRow& project) {
  if (IsContainerRuntime(project.runtime)) return Status::OK();
  // By the uid the row records (an adopted project keeps the account its data belongs to) and
  // by the name of its id (a create cut short before the uid was recorded); only accounts
  // named as this home's.
  std::set<std::string> names;
  if (project.server_uid > 0) {
    Result<OsUser> by_uid = LookupOsUserById(static_cast<uid_t>(project.server_uid));
    if (by_uid.ok() && by_uid->name.rfind(AccountPrefix(env_.home), 0) == 0) {
      names.insert(by_uid->name);
    }
  }
  if (LookupOsUser(ProjectOsUserName(project.id)).ok()) {
    names.insert(ProjectOsUserName(project.id));
  }
  for (const auto& name : names) PGB_RETURN_IF_ERROR(RemoveOsUser(name));
  return Status::OK();
}

Status Engine::RemoveOsUser(const std::string& name) {
  Command del;
  // --force: its processes are gone by now; userdel otherwise refuses while any runs.
  del.argv = {"userdel", "--force", name};
  del.timeout = kUserToolTimeout;
  PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(del));
  // 6: "specified user doesn't exist" (userdel(8)): gone already is what was wanted.
  if (r.Succeeded() || r.exit_code == 6) return Status::OK();
  return CommandStatus(del, r);
}

std::optional<OsUser> Engine::OwnAccountOf(const std::string& data_dir) {
  struct stat st {};
  if (!RunningAsRoot() || ::stat(data_dir.c_str(), &st) != 0) return std::nullopt;
  Result<OsUser> owner = LookupOsUserById(st.st_uid);
  if (!owner.ok() || owner->name.rfind(AccountPrefix(env_.home), 0) != 0) return std::nullopt;
  return *owner;
}

void Engine::CheckProjectOsUsers(Pool& pool, bool fix, std::vector<DoctorFinding>& out) {
  auto add = [&](std::string status, std::string detail) {
    out.push_back({"os user", std::move(status), std::move(detail)});
  };
  // Accounts first, rows second: an account is made after its project's row and removed after
  // it, so an account with no row in a later read is one whose project is gone.
  std::string prefix = AccountPrefix(env_.home);
  std::vector<std::string> accounts;
  for (auto& name : ListOsUserNames()) {
    if (name.rfind(prefix, 0) == 0) accounts.push_back(std::move(name));
  }
  auto projects = catalog_->ListProjects();
  if (!projects.ok()) {
    add("fail", fmt::format("list projects: {}", projects.status().message()));
    return;
  }
  std::set<int64_t> uids_in_use;
  std::set<std::string> names_in_use;
  for (const auto& p : *projects) {
    names_in_use.insert(ProjectOsUserName(p.id));  // a create may not have recorded it yet
    if (!HasOwnOsUser(p)) continue;
    uids_in_use.insert(p.server_uid);
    Result<OsUser> user = LookupOsUserById(static_cast<uid_t>(p.server_uid));
    if (!user.ok()) {
      add("fail", fmt::format("project {} runs as uid {}, which no OS user has any more; its "
                              "data still belongs to that uid (make an account with 'useradd "
                              "--system --uid {} {}')",
                              p.name, p.server_uid, p.server_uid, ProjectOsUserName(p.id)));
    }
  }
  // Who owns what the pool holds: an account that owns data is kept for its adoption. Read
  // once, and only when some account belongs to no project.
  std::optional<std::map<uid_t, std::string>> owners;
  auto owners_of_data = [&]() -> const std::map<uid_t, std::string>& {
    if (owners) return *owners;
    owners.emplace();
    auto note = [&](const std::string& path, const std::string& what) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0) owners->emplace(st.st_uid, what);
    };
    if (auto volumes = pool.ListVolumes(); volumes.ok()) {
      for (const auto& v : *volumes) note(pool.VolumePath(v), "volume " + v);
    }
    if (auto snapshots = pool.ListSnapshots(); snapshots.ok()) {
      for (const auto& s : *snapshots) note(pool.SnapshotPath("", s), "snapshot " + s);
    }
    if (auto held = pool.ListQuarantined(); held.ok()) {
      for (const auto& q : *held) note(q.path, "quarantined " + q.name);
    }
    return *owners;
  };
  for (const auto& name : accounts) {
    Result<OsUser> user = LookupOsUser(name);
    if (!user.ok() || uids_in_use.count(user->uid) || names_in_use.count(name)) continue;
    if (auto owned = owners_of_data().find(user->uid); owned != owners_of_data().end()) {
      add("fail", fmt::format("OS user {} belongs to no project but owns {} in the pool; "
                              "'pgbranch doctor --adopt' brings its project back",
                              name, owned->second));
      continue;
    }
    if (!fix) {
      add("fail", fmt::format("OS user {} belongs to no project; 'pgbranch doctor --fix' "
                              "removes it",
                              name));
      continue;
    }
    Status s = RemoveOsUser(name);
    if (s.ok()) {
      add("fixed", fmt::format("removed OS user {}, which belonged to no project", name));
    } else {
      add("fail", fmt::format("remove OS user {}: {}", name, s.message()));
    }
  }
}

}  // namespace pgb
