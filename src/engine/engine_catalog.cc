// The catalog's safety net: noticing a lost catalog, backups, restore, and rebuilding rows
// from the volumes themselves (`doctor --adopt`).

#include <dirent.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/fs.h"
#include "common/random.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "runtime/container.h"
#include "storage/volume_name.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

constexpr size_t kCatalogBackups = 10;  // copies kept in $PGBRANCH_HOME/backups
constexpr auto kBackupEvery = std::chrono::hours(24);

std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// "20261201T014426Z" for file names that sort by time.
std::string FileTime(TimePoint t) {
  std::string iso = FormatTimestamp(t);  // 2026-12-01T01:44:26.123Z
  std::string out;
  for (char c : iso.substr(0, 19)) {
    if (c != '-' && c != ':') out += c;
  }
  return out + "Z";
}

}  // namespace

bool Engine::HomeHasPool(const std::string& home, std::string* evidence) {
  std::vector<std::string> found;
  if (PathExists(JoinPath(home, "pool.json"))) found.push_back("pool.json");
  struct stat st {};
  std::string image = JoinPath(home, "pool.img");
  if (::stat(image.c_str(), &st) == 0 && st.st_size > 0) found.push_back("the image pool.img");
  size_t volumes = 0;
  for (const auto& name : DirEntries(JoinPath(home, "pool/volumes"))) {
    if (IsVolumeName(name)) ++volumes;
  }
  if (volumes > 0) found.push_back(fmt::format("{} volumes in pool/volumes", volumes));
  size_t logs = 0;
  for (const auto& name : DirEntries(JoinPath(home, "logs"))) {
    if (name.rfind("branch-", 0) == 0) ++logs;
  }
  if (logs > 0) found.push_back(fmt::format("the server logs of {} branches", logs));
  if (!DirEntries(JoinPath(home, "wal")).empty()) found.push_back("WAL archives in wal/");
  if (evidence) *evidence = fmt::format("{}", fmt::join(found, ", "));
  return !found.empty();
}

Status Engine::WriteHomeMarker() {
  PGB_ASSIGN_OR_RETURN(auto settings, catalog_->ListSettings());
  settings.erase(kCatalogLost);
  nlohmann::json j = {{"what", "pgbranch home: the pool and settings, kept outside the catalog"},
                      {"settings", settings}};
  return WriteFileAtomic(JoinPath(env_.home, "pool.json"),
                         j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                         0600);
}

Status Engine::DecideNaming() {
  PGB_ASSIGN_OR_RETURN(auto naming, catalog_->GetSetting(kNaming));
  if (!naming) {
    // Only a home whose projects an older pgbranch made has archives and containers by name.
    PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
    naming = projects.empty() ? "ids" : "names";
    PGB_RETURN_IF_ERROR(catalog_->SetSetting(kNaming, *naming));
    PGB_ASSIGN_OR_RETURN(auto kind, catalog_->GetSetting(kPoolKind));
    if (kind) PGB_RETURN_IF_ERROR(WriteHomeMarker());
  }
  by_ids_ = *naming != "names";
  return Status::OK();
}

Status Engine::RestoreSettingsFromMarker() {
  auto text = ReadFile(JoinPath(env_.home, "pool.json"));
  if (!text.ok()) return Status::OK();  // an older home: the pool is chosen again by hand
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("settings") || !j["settings"].is_object()) {
    return Status::Internal(fmt::format("{}/pool.json is garbled", env_.home));
  }
  return catalog_->Transaction([&]() -> Status {
    for (const auto& [key, value] : j["settings"].items()) {
      if (!value.is_string()) continue;
      PGB_ASSIGN_OR_RETURN(auto existing, catalog_->GetSetting(key));
      if (!existing) PGB_RETURN_IF_ERROR(catalog_->SetSetting(key, value.get<std::string>()));
    }
    return Status::OK();
  });
}

Result<CatalogBackup> Engine::BackupCatalog(const std::string& reason) {
  std::string dir = JoinPath(env_.home, "backups");
  PGB_RETURN_IF_ERROR(EnsureDir(dir, 0700));
  CatalogBackup backup;
  TimePoint now = env_.clock->Now();
  backup.path = JoinPath(dir, fmt::format("state-{}-{}.db", FileTime(now), reason));
  backup.at = FormatTimestamp(now);
  PGB_RETURN_IF_ERROR(catalog_->BackupTo(backup.path));
  struct stat st {};
  if (::stat(backup.path.c_str(), &st) == 0) backup.bytes = st.st_size;
  backup.schema_version = Catalog::SchemaVersion();
  // Rotate: the newest kCatalogBackups stay.
  PGB_ASSIGN_OR_RETURN(auto all, ListCatalogBackups());
  for (size_t i = kCatalogBackups; i < all.size(); ++i) {
    PGB_RETURN_IF_ERROR(RemoveFile(all[i].path));
  }
  return backup;
}

Result<std::vector<CatalogBackup>> Engine::ListCatalogBackups() {
  std::string dir = JoinPath(env_.home, "backups");
  std::vector<CatalogBackup> out;
  for (const auto& name : DirEntries(dir)) {
    if (name.rfind("state-", 0) != 0 || name.size() < 4 ||
        name.compare(name.size() - 3, 3, ".db") != 0) {
      continue;
    }
    CatalogBackup b;
    b.path = JoinPath(dir, name);
    struct stat st {};
    if (::stat(b.path.c_str(), &st) != 0) continue;
    b.bytes = st.st_size;
    b.at = FormatTimestamp(TimePoint(std::chrono::seconds(st.st_mtim.tv_sec)));
    auto version = Catalog::FileSchemaVersion(b.path);
    b.schema_version = version.ok() ? *version : 0;
    out.push_back(std::move(b));
  }
  // Newest first: names carry the time.
  std::sort(out.begin(), out.end(),
            [](const CatalogBackup& a, const CatalogBackup& b) { return a.path > b.path; });
  return out;
}

void Engine::BackupCatalogIfDue() {
  auto projects = catalog_->ListProjects();
  if (!projects.ok() || projects->empty()) return;  // nothing worth a copy yet
  auto backups = ListCatalogBackups();
  if (backups.ok() && !backups->empty()) {
    struct stat st {};
    if (::stat(backups->front().path.c_str(), &st) == 0) {
      auto age = std::chrono::system_clock::now() -
                 std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
      if (age < kBackupEvery) return;
    }
  }
  auto made = BackupCatalog("daily");
  if (!made.ok()) spdlog::warn("catalog backup: {}", made.status().message());
}

Status Engine::RestoreCatalog(const std::string& path) {
  CancelScope cancel(env_.cancel);
  PGB_ASSIGN_OR_RETURN(std::string source, AbsolutePath(path));
  // Checked before anything changes: a damaged or foreign file is refused.
  auto version = Catalog::FileSchemaVersion(source);
  if (!version.ok()) return Status::InvalidArgument(version.status().message());
  PGB_ASSIGN_OR_RETURN(
      LockHandle home,
      locks_->Home(LockMode::kExclusive, fmt::format("catalog restore by pid {}", ::getpid())));
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  if (!projects.empty()) {
    // What is replaced stays available.
    PGB_RETURN_IF_ERROR(BackupCatalog("before-restore").status());
  }
  PGB_RETURN_IF_ERROR(catalog_->RestoreFrom(source));
  // Operations the backup caught in flight ended long ago, one way or another: their journals
  // describe a past the pool has moved on from, so they are closed, not replayed. What they
  // left is found by doctor (and brought back by --adopt).
  PGB_ASSIGN_OR_RETURN(auto open, catalog_->ListOpenOperations());
  for (auto row : open) {
    row.state = kOpFailed;
    row.error = fmt::format("closed by catalog restore from {}", source);
    row.journal = "[]";
    row.ended_at = FormatTimestamp(env_.clock->Now());
    PGB_RETURN_IF_ERROR(catalog_->UpdateOperation(row));
  }
  Note(fmt::format(
      "catalog restored from {}; 'pgbranch doctor' compares it with the pool, and 'pgbranch "
      "doctor --adopt' brings back branches made after that backup",
      source));
  return Status::OK();
}

Result<std::vector<OperationInfo>> Engine::Operations(bool all, int limit) {
  if (limit <= 0) return Status::InvalidArgument("--limit must be 1 or more");
  std::vector<OperationRow> rows;
  if (all) {
    PGB_ASSIGN_OR_RETURN(rows, catalog_->ListOperations(limit));
  } else {
    PGB_ASSIGN_OR_RETURN(rows, catalog_->ListOpenOperations());
  }
  std::vector<OperationInfo> out;
  for (const auto& r : rows) {
    OperationInfo info;
    info.id = r.id;
    info.kind = r.kind;
    info.target = r.target;
    info.state = r.state;
    info.pid = r.pid;
    info.owner_alive = r.ended_at.empty() && OwnerAlive(r.owner);
    info.command = r.command;
    info.step = r.step;
    auto steps = StepsFromJson(r.steps);
    if (steps.ok()) info.steps = *steps;
    auto journal = ActionsFromJson(r.journal);
    if (journal.ok()) info.journal_left = journal->size();
    info.error = r.error;
    info.started_at = r.started_at;
    info.updated_at = r.updated_at;
    info.ended_at = r.ended_at;
    out.push_back(std::move(info));
  }
  return out;
}

Status Engine::AdoptVolumes(Pool& pool, bool fix, std::vector<DoctorFinding>* out) {
  auto add = [&](std::string status, std::string detail) {
    out->push_back({"adopt", std::move(status), std::move(detail)});
  };
  // Volumes an earlier doctor quarantined come back first, if they hold a branch.
  PGB_ASSIGN_OR_RETURN(auto quarantined, pool.ListQuarantined());
  for (const auto& q : quarantined) {
    if (q.is_snapshot || q.path.empty() || !ReadInstanceConfig(q.path).ok()) continue;
    if (!fix) {
      add("warn", fmt::format("quarantined volume {} holds a branch; 'pgbranch doctor --adopt' "
                              "brings it back",
                              q.name));
      continue;
    }
    Status released = pool.Release(q.name);
    if (!released.ok()) {
      add("fail", fmt::format("quarantined volume {}: {}", q.name, released.message()));
    }
  }
  PGB_ASSIGN_OR_RETURN(auto volumes, pool.ListVolumes());
  PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches());
  std::set<std::string> known;
  for (const auto& b : branches) known.insert(b.volume);
  PGB_ASSIGN_OR_RETURN(auto open_ops, catalog_->ListOpenOperations());
  std::set<std::string> in_flight;
  for (const auto& op : open_ops) {
    if (!OwnerAlive(op.owner)) continue;
    auto journal = ActionsFromJson(op.journal);
    if (!journal.ok()) continue;
    for (const auto& a : *journal) in_flight.insert(a.volume);
  }

  // Mains first, then branches in the order they were made, so parents exist before children.
  struct Found {
    std::string volume;
    InstanceConfigFile conf;
    nlohmann::json meta;
    std::string project, branch, parent, created_at;
  };
  std::vector<Found> found;
  for (const auto& v : volumes) {
    if (known.count(v) || in_flight.count(v)) continue;
    Found f;
    f.volume = v;
    auto conf = ReadInstanceConfig(pool.VolumePath(v));
    if (!conf.ok()) {
      add("warn", fmt::format("{} holds no pgbranch.conf; not a branch pgbranch made", v));
      continue;
    }
    f.conf = *conf;
    if (!f.conf.metadata.empty()) {
      f.meta = nlohmann::json::parse(f.conf.metadata, nullptr, false);
      if (f.meta.is_discarded() || !f.meta.is_object()) f.meta = nlohmann::json::object();
    } else {
      f.meta = nlohmann::json::object();
    }
    std::string cluster = f.conf.cluster_name;
    size_t slash = cluster.find('/');
    f.project = f.meta.value("project", slash == std::string::npos ? "" : cluster.substr(0, slash));
    f.branch = f.meta.value("branch", slash == std::string::npos ? "" : cluster.substr(slash + 1));
    f.parent = f.meta.value("parent", "");
    f.created_at = f.meta.value("created_at", "");
    if (!ValidateName("project", f.project).ok() || !ValidateName("branch", f.branch).ok()) {
      add("warn", fmt::format("{}: its pgbranch.conf names no project/branch", v));
      continue;
    }
    found.push_back(std::move(f));
  }
  std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    bool a_main = a.branch == kMainBranch, b_main = b.branch == kMainBranch;
    if (a_main != b_main) return a_main;
    return a.created_at < b.created_at;
  });
  if (found.empty()) {
    add("ok", "every volume in the pool belongs to a branch");
    return AdoptSnapshots(pool, fix, out);
  }
  if (!fix) {
    for (const auto& f : found) {
      add("fail", fmt::format("{} holds {}/{} (port {}) but no row refers to it; 'pgbranch doctor "
                              "--adopt --fix' brings it back",
                              f.volume, f.project, f.branch, f.conf.port));
    }
    return AdoptSnapshots(pool, fix, out);
  }
  PGB_ASSIGN_OR_RETURN(PortRange range, LoadPortRange());
  for (const auto& f : found) {
    std::string v = f.volume;
    Status s = RunOperation(
        "branch.adopt", fmt::format("{}/{}", f.project, f.branch), std::nullopt, std::nullopt,
        [&](Operation& op) -> Status {
          std::string data_dir = pool.VolumePath(v);
          // The project: found, or made again from what the volume says of it.
          PGB_ASSIGN_OR_RETURN(auto existing_project, catalog_->FindProject(f.project));
          ProjectRow project;
          if (existing_project) {
            project = *existing_project;
          } else {
            project.name = f.project;
            project.runtime = f.meta.value("runtime", "native");
            project.image = f.meta.value("image", "");
            project.superuser = f.meta.value("superuser", "postgres");
            project.listen_address = "127.0.0.1";
            project.created_at =
                f.created_at.empty() ? FormatTimestamp(env_.clock->Now()) : f.created_at;
            PGB_ASSIGN_OR_RETURN(int major, DataDirMajorVersion(data_dir));
            if (IsContainerRuntime(project.runtime)) {
              PGB_ASSIGN_OR_RETURN(ImageInfo img,
                                   ProbeImage(*env_.runner, project.runtime, project.image));
              project.pg_bin = img.bin_dir;
              project.pg_version = img.version;
              project.pg_major = img.major;
              project.server_uid = img.uid;
              project.server_gid = img.gid;
            } else {
              std::string bin = f.meta.value("pg_bin", "");
              auto bins = FindPgBinaries(*runner_, bin);
              if (!bins.ok() || bins->major != major) bins = FindPgBinaries(*runner_, "");
              PGB_RETURN_IF_ERROR(bins.status());
              project.pg_bin = bins->bin_dir;
              project.pg_version = bins->version;
              project.pg_major = bins->major;
              // Its data stays with the project account it belongs to.
              if (std::optional<OsUser> own = OwnAccountOf(data_dir)) {
                project.server_uid = own->uid;
                project.server_gid = own->gid;
              }
            }
            if (project.pg_major != major) {
              return Status::FailedPrecondition(fmt::format(
                  "{} was made by PostgreSQL {}, but only {} is here", v, major, project.pg_major));
            }
            PGB_ASSIGN_OR_RETURN(project.id, catalog_->InsertProject(project));
            Action remove;
            remove.kind = "remove-project";
            remove.project_id = project.id;
            PGB_RETURN_IF_ERROR(op.PushUndo(remove));
          }
          BranchRow row;
          row.project_id = project.id;
          row.name = f.branch;
          row.volume = v;
          row.state = kStateCreating;
          row.password = RandomPassword(kPasswordLength);
          row.created_at = f.created_at.empty() ? FormatTimestamp(env_.clock->Now()) : f.created_at;
          row.recovery_target = f.meta.value("recovery_target", "");
          PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
          std::optional<BranchRow> main;
          for (const auto& b : branches) {
            if (!b.parent_id) main = b;
          }
          if (f.branch != kMainBranch || main) {
            // Its parent if the catalog knows it, else the project's root (a branch needs one).
            PGB_ASSIGN_OR_RETURN(auto parent, catalog_->FindBranch(project.id, f.parent));
            if (parent) {
              row.parent_id = parent->id;
            } else if (main) {
              row.parent_id = main->id;
            } else {
              return Status::FailedPrecondition(fmt::format(
                  "{}/{} needs its project's main branch, which is neither in the catalog nor in "
                  "the pool",
                  f.project, f.branch));
            }
          }
          PGB_ASSIGN_OR_RETURN(auto clash, catalog_->FindBranch(project.id, row.name));
          if (clash || (row.name == kMainBranch && main)) {
            row.name = fmt::format("{}-adopted-{}", f.branch, v.substr(1, 6));
          }
          PGB_RETURN_IF_ERROR(catalog_->Transaction([&]() -> Status {
            PGB_ASSIGN_OR_RETURN(std::set<int> used, catalog_->UsedPorts());
            std::optional<int> want;
            if (f.conf.port > 0 && !used.count(f.conf.port)) want = f.conf.port;
            auto port = PickPort(range, used, project.listen_address, *env_.ports, want);
            if (!port.ok() && want)
              port = PickPort(range, used, project.listen_address, *env_.ports);
            PGB_RETURN_IF_ERROR(port.status());
            row.port = *port;
            PGB_ASSIGN_OR_RETURN(row.id, catalog_->InsertBranch(row));
            PGB_RETURN_IF_ERROR(op.SetIds(project.id, row.id));
            Action remove;
            remove.kind = "remove-branch-row";
            remove.branch_id = row.id;
            return op.PushUndo(remove);
          }));
          PGB_ASSIGN_OR_RETURN(InstanceSpec spec, Spec(project, row));
          std::optional<FileOwner> owner;
          if (spec.os_user) owner = FileOwner{spec.os_user->uid, spec.os_user->gid};
          // A server still running on it (a catalog lost, the servers not) keeps running; it gets
          // the new password over its socket. A stopped one is started for that.
          PGB_ASSIGN_OR_RETURN(InstanceStatus st, RuntimeFor(project).Inspect(spec));
          PGB_RETURN_IF_ERROR(op.Step("start"));
          if (st.running && row.port != f.conf.port) {
            // Its old port went to another branch: it moves to its new one.
            PGB_RETURN_IF_ERROR(RuntimeFor(project).Stop(spec, StopMode::kFast, kStopTimeout));
            st.running = false;
          }
          if (!st.running) {
            PGB_RETURN_IF_ERROR(WriteInstanceConfig(data_dir, ConfigFor(project, row), owner));
            PGB_RETURN_IF_ERROR(StartInstance(project, row, /*set_password=*/true, &op));
          } else {
            PGB_RETURN_IF_ERROR(op.Step("password"));
            PGB_ASSIGN_OR_RETURN(auto conn, Connection::Open(AdminParams(project, row)));
            PGB_RETURN_IF_ERROR(SetRolePassword(*conn, project.superuser, row.password));
            // Its configuration follows at its next start.
            PGB_RETURN_IF_ERROR(WriteInstanceConfig(data_dir, ConfigFor(project, row), owner));
          }
          PGB_RETURN_IF_ERROR(op.Step("commit"));
          return catalog_->Transaction([&]() -> Status {
            row.state = kStateRunning;
            PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(row));
            PGB_RETURN_IF_ERROR(catalog_->InsertEvent(Event(
                row, "adopted", fmt::format("adopted from volume {} by pgbranch doctor", v))));
            return op.MarkCommitted({});
          });
        });
    add(s.ok() ? "fixed" : "fail",
        s.ok() ? fmt::format("adopted {} as {}/{} with a new password (pgbranch branch url)", v,
                             f.project, f.branch)
               : fmt::format("{} ({}/{}): {}", v, f.project, f.branch, s.message()));
  }
  return AdoptSnapshots(pool, fix, out);
}

Status Engine::AdoptSnapshots(Pool& pool, bool fix, std::vector<DoctorFinding>* out) {
  PGB_ASSIGN_OR_RETURN(auto names, pool.ListSnapshots());
  PGB_ASSIGN_OR_RETURN(auto rows, catalog_->ListSnapshots());
  std::set<std::string> known;
  for (const auto& r : rows) known.insert(r.name);
  std::set<std::string> in_flight;
  PGB_RETURN_IF_ERROR(CollectInFlight(&in_flight));
  for (const auto& name : names) {
    if (known.count(name) || in_flight.count(name)) continue;
    // A snapshot is a copy of a data directory, pgbranch.conf included: it says whose it was.
    auto conf = ReadInstanceConfig(pool.SnapshotPath("", name));
    if (!conf.ok()) {
      out->push_back({"adopt", "warn",
                      fmt::format("snapshot {}: cannot read whose it is ({}); 'pgbranch doctor "
                                  "--fix' quarantines it",
                                  name, conf.status().message())});
      continue;
    }
    nlohmann::json meta = nlohmann::json::parse(conf->metadata, nullptr, false);
    std::string cluster = conf->cluster_name;
    size_t slash = cluster.find('/');
    std::string project_name =
        meta.is_object() ? meta.value("project", "") : cluster.substr(0, slash);
    std::string branch_name = meta.is_object()             ? meta.value("branch", "")
                              : slash == std::string::npos ? ""
                                                           : cluster.substr(slash + 1);
    PGB_ASSIGN_OR_RETURN(auto project, catalog_->FindProject(project_name));
    std::optional<BranchRow> branch;
    if (project) {
      PGB_ASSIGN_OR_RETURN(branch, catalog_->FindBranch(project->id, branch_name));
    }
    if (!branch) {
      out->push_back({"adopt", "warn",
                      fmt::format("snapshot {} is of {}/{}, which is not in the catalog", name,
                                  project_name, branch_name)});
      continue;
    }
    if (!fix) {
      out->push_back({"adopt", "fail",
                      fmt::format("snapshot {} of {}/{} has no row; 'pgbranch doctor --adopt' "
                                  "brings it back",
                                  name, project_name, branch_name)});
      continue;
    }
    SnapshotRow snap;
    snap.branch_id = branch->id;
    snap.volume = branch->volume;  // a hint: names are unique in a pool
    snap.name = name;
    snap.label = "adopted";
    snap.created_at = FormatTimestamp(env_.clock->Now());
    auto id = catalog_->InsertSnapshot(snap);
    out->push_back({"adopt", id.ok() ? "fixed" : "fail",
                    id.ok() ? fmt::format("adopted snapshot {} of {}/{} as snapshot {}", name,
                                          project_name, branch_name, *id)
                            : fmt::format("snapshot {}: {}", name, id.status().message())});
  }
  return Status::OK();
}

}  // namespace pgb
