#include "state/catalog.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace pgb {
namespace {

// Migration N (1-based) brings the schema from version N-1 to N. Append only; never edit one
// that has shipped.
const char* const kMigrations[] = {
    // 1: settings, projects, branches, snapshots.
    R"sql(
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE projects (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  name           TEXT NOT NULL UNIQUE,
  runtime        TEXT NOT NULL,
  pg_bin         TEXT NOT NULL,
  pg_version     TEXT NOT NULL,
  pg_major       INTEGER NOT NULL,
  superuser      TEXT NOT NULL,
  listen_address TEXT NOT NULL,
  created_at     TEXT NOT NULL
);
CREATE TABLE branches (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id  INTEGER NOT NULL REFERENCES projects(id),
  name        TEXT NOT NULL,
  parent_id   INTEGER REFERENCES branches(id),
  snapshot_id INTEGER REFERENCES snapshots(id),
  state       TEXT NOT NULL,
  port        INTEGER NOT NULL UNIQUE,
  password    TEXT NOT NULL,
  volume      TEXT NOT NULL UNIQUE,
  created_at  TEXT NOT NULL,
  UNIQUE (project_id, name)
);
CREATE TABLE snapshots (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  branch_id  INTEGER NOT NULL REFERENCES branches(id),
  volume     TEXT NOT NULL,
  name       TEXT NOT NULL UNIQUE,
  label      TEXT NOT NULL,
  implicit   INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX branches_parent ON branches(parent_id);
CREATE INDEX snapshots_branch ON snapshots(branch_id);
)sql",
    // 2: the audit trail of storage and runtime operations, and branch history events.
    R"sql(
CREATE TABLE audit (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          TEXT NOT NULL,
  command     TEXT NOT NULL,
  operation   TEXT NOT NULL,
  object      TEXT NOT NULL,
  detail      TEXT NOT NULL,
  duration_ms REAL NOT NULL,
  ok          INTEGER NOT NULL,
  error       TEXT NOT NULL
);
CREATE TABLE events (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  branch_id INTEGER NOT NULL,
  at        TEXT NOT NULL,
  kind      TEXT NOT NULL,
  detail    TEXT NOT NULL
);
CREATE INDEX events_branch ON events(branch_id);
)sql",
    // 3: where each snapshot stands in its branch's WAL, for point-in-time recovery, and the
    // recovery target a branch was made at.
    R"sql(
ALTER TABLE snapshots ADD COLUMN wal_lsn TEXT NOT NULL DEFAULT '';
ALTER TABLE snapshots ADD COLUMN wal_time_us INTEGER;
ALTER TABLE branches ADD COLUMN recovery_target TEXT NOT NULL DEFAULT '';
)sql",
    // 4: container runtimes: a project's image and the uid/gid its postgres account has.
    R"sql(
ALTER TABLE projects ADD COLUMN image TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN server_uid INTEGER NOT NULL DEFAULT -1;
ALTER TABLE projects ADD COLUMN server_gid INTEGER NOT NULL DEFAULT -1;
)sql",
};

constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

Status SqliteError(sqlite3* db, std::string_view what) {
  int code = sqlite3_extended_errcode(db);
  std::string message = fmt::format("catalog {}: {}", what, sqlite3_errmsg(db));
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(std::move(message));
    case SQLITE_FULL:
      return Status::ResourceExhausted(std::move(message));
    case SQLITE_CONSTRAINT:
      if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(std::move(message));
      }
      return Status::FailedPrecondition(std::move(message));
    default:
      return Status::IOError(std::move(message));
  }
}

// A prepared statement with positional binding (1-based, in call order) and typed columns.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int64_t v) { return Check(sqlite3_bind_int64(stmt_, ++arg_, v)); }
  Stmt& Bind(int v) { return Bind(static_cast<int64_t>(v)); }
  Stmt& Bind(bool v) { return Bind(static_cast<int64_t>(v ? 1 : 0)); }
  Stmt& Bind(double v) { return Check(sqlite3_bind_double(stmt_, ++arg_, v)); }
  Stmt& Bind(const std::string& v) {
    return Check(
        sqlite3_bind_text(stmt_, ++arg_, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Stmt& Bind(const std::optional<int64_t>& v) {
    if (v) return Bind(*v);
    return Check(sqlite3_bind_null(stmt_, ++arg_));
  }

  // Steps once. Returns true when a row is available, false when done.
  Result<bool> Step() {
    if (rc_ != SQLITE_OK) return SqliteError(db_, "prepare");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, "step");
  }
  // Runs to completion, for statements without rows.
  Status Run() {
    auto r = Step();
    return r.ok() ? Status::OK() : r.status();
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::optional<int64_t> OptInt(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return Int(col);
  }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }

 private:
  Stmt& Check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
  int arg_ = 0;
};

Status ExecScript(sqlite3* db, const char* sql, std::string_view what) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = fmt::format("catalog {}: {}", what, err ? err : "unknown error");
    sqlite3_free(err);
    return Status::IOError(std::move(message));
  }
  return Status::OK();
}

constexpr const char* kProjectColumns =
    "id, name, runtime, pg_bin, pg_version, pg_major, superuser, listen_address, created_at, "
    "image, server_uid, server_gid";
constexpr const char* kBranchColumns =
    "id, project_id, name, parent_id, snapshot_id, state, port, password, volume, created_at, "
    "recovery_target";
constexpr const char* kSnapshotColumns =
    "id, branch_id, volume, name, label, implicit, created_at, wal_lsn, wal_time_us";

ProjectRow ReadProject(const Stmt& s) {
  ProjectRow r;
  r.id = s.Int(0);
  r.name = s.Text(1);
  r.runtime = s.Text(2);
  r.pg_bin = s.Text(3);
  r.pg_version = s.Text(4);
  r.pg_major = static_cast<int>(s.Int(5));
  r.superuser = s.Text(6);
  r.listen_address = s.Text(7);
  r.created_at = s.Text(8);
  r.image = s.Text(9);
  r.server_uid = s.Int(10);
  r.server_gid = s.Int(11);
  return r;
}

BranchRow ReadBranch(const Stmt& s) {
  BranchRow r;
  r.id = s.Int(0);
  r.project_id = s.Int(1);
  r.name = s.Text(2);
  r.parent_id = s.OptInt(3);
  r.snapshot_id = s.OptInt(4);
  r.state = s.Text(5);
  r.port = static_cast<int>(s.Int(6));
  r.password = s.Text(7);
  r.volume = s.Text(8);
  r.created_at = s.Text(9);
  r.recovery_target = s.Text(10);
  return r;
}

SnapshotRow ReadSnapshot(const Stmt& s) {
  SnapshotRow r;
  r.id = s.Int(0);
  r.branch_id = s.Int(1);
  r.volume = s.Text(2);
  r.name = s.Text(3);
  r.label = s.Text(4);
  r.implicit = s.Int(5) != 0;
  r.created_at = s.Text(6);
  r.wal_lsn = s.Text(7);
  r.wal_time_us = s.OptInt(8);
  return r;
}

// Collects every row of `s` through `read`.
template <typename Row, typename Read>
Result<std::vector<Row>> Collect(Stmt& s, Read read) {
  std::vector<Row> rows;
  for (;;) {
    PGB_ASSIGN_OR_RETURN(bool has_row, s.Step());
    if (!has_row) return rows;
    rows.push_back(read(s));
  }
}

// The single row of `s`, nullopt if none.
template <typename Row, typename Read>
Result<std::optional<Row>> MaybeOne(Stmt& s, Read read) {
  PGB_ASSIGN_OR_RETURN(bool has_row, s.Step());
  if (!has_row) return std::optional<Row>();
  return std::optional<Row>(read(s));
}

template <typename Row>
Result<Row> Required(Result<std::optional<Row>> r, std::string_view what, int64_t id) {
  if (!r.ok()) return r.status();
  if (!r->has_value())
    return Status::NotFound(fmt::format("{} {} is not in the catalog", what, id));
  return std::move(**r);
}

Status ExpectChanged(sqlite3* db, std::string_view what, int64_t id) {
  if (sqlite3_changes(db) == 0) {
    return Status::NotFound(fmt::format("{} {} is not in the catalog", what, id));
  }
  return Status::OK();
}

}  // namespace

int Catalog::SchemaVersion() { return kSchemaVersion; }

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path) {
  // Create the file ourselves so its mode is 0600 whatever the umask (SQLite would use 0644).
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(fmt::format("open catalog {}", path), errno);
  ::fchmod(fd, 0600);
  ::close(fd);

  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = Status::IOError(
        fmt::format("open catalog {}: {}", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Catalog> catalog(new Catalog(db));
  sqlite3_busy_timeout(db, 30000);
  sqlite3_extended_result_codes(db, 1);
  PGB_RETURN_IF_ERROR(ExecScript(
      db, "PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;", "setup"));
  PGB_RETURN_IF_ERROR(catalog->Migrate());
  // The WAL and shared-memory files SQLite creates next to the database hold the same data.
  for (const char* suffix : {"-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  return catalog;
}

Catalog::~Catalog() { sqlite3_close(db_); }

Status Catalog::Migrate() {
  return Transaction([&]() -> Status {
    Stmt s(db_, "PRAGMA user_version");
    PGB_ASSIGN_OR_RETURN(bool has_row, s.Step());
    int version = has_row ? static_cast<int>(s.Int(0)) : 0;
    if (version > kSchemaVersion) {
      return Status::FailedPrecondition(
          fmt::format("the catalog has schema version {} but this pgbranch knows up to {}; "
                      "upgrade pgbranch",
                      version, kSchemaVersion));
    }
    for (int v = version; v < kSchemaVersion; ++v) {
      PGB_RETURN_IF_ERROR(ExecScript(db_, kMigrations[v], fmt::format("migration {}", v + 1)));
    }
    if (version != kSchemaVersion) {
      PGB_RETURN_IF_ERROR(ExecScript(
          db_, fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str(), "set version"));
    }
    return Status::OK();
  });
}

Status Catalog::Transaction(const std::function<Status()>& body) {
  PGB_RETURN_IF_ERROR(ExecScript(db_, "BEGIN IMMEDIATE", "begin"));
  Status s = body();
  if (s.ok()) s = ExecScript(db_, "COMMIT", "commit");
  if (!s.ok()) {
    Status ignored = ExecScript(db_, "ROLLBACK", "rollback");
    (void)ignored;
  }
  return s;
}

Result<std::optional<std::string>> Catalog::GetSetting(const std::string& key) {
  Stmt s(db_, "SELECT value FROM settings WHERE key = ?");
  s.Bind(key);
  return MaybeOne<std::string>(s, [](const Stmt& st) { return st.Text(0); });
}

Status Catalog::SetSetting(const std::string& key, const std::string& value) {
  Stmt s(db_,
         "INSERT INTO settings (key, value) VALUES (?, ?) "
         "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  s.Bind(key).Bind(value);
  return s.Run();
}

Result<int64_t> Catalog::InsertProject(const ProjectRow& r) {
  Stmt s(db_,
         "INSERT INTO projects (name, runtime, pg_bin, pg_version, pg_major, superuser, "
         "listen_address, created_at, image, server_uid, server_gid) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.name).Bind(r.runtime).Bind(r.pg_bin).Bind(r.pg_version).Bind(r.pg_major);
  s.Bind(r.superuser).Bind(r.listen_address).Bind(r.created_at);
  s.Bind(r.image).Bind(r.server_uid).Bind(r.server_gid);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db_);
}

Result<std::optional<ProjectRow>> Catalog::FindProject(const std::string& name) {
  Stmt s(db_, fmt::format("SELECT {} FROM projects WHERE name = ?", kProjectColumns).c_str());
  s.Bind(name);
  return MaybeOne<ProjectRow>(s, ReadProject);
}

Result<ProjectRow> Catalog::GetProject(int64_t id) {
  Stmt s(db_, fmt::format("SELECT {} FROM projects WHERE id = ?", kProjectColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<ProjectRow>(s, ReadProject), "project", id);
}

Result<std::vector<ProjectRow>> Catalog::ListProjects() {
  Stmt s(db_, fmt::format("SELECT {} FROM projects ORDER BY name", kProjectColumns).c_str());
  return Collect<ProjectRow>(s, ReadProject);
}

Status Catalog::DeleteProject(int64_t id) {
  Stmt s(db_, "DELETE FROM projects WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "project", id);
}

Result<int64_t> Catalog::InsertBranch(const BranchRow& r) {
  Stmt s(db_,
         "INSERT INTO branches (project_id, name, parent_id, snapshot_id, state, port, "
         "password, volume, created_at, recovery_target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.project_id).Bind(r.name).Bind(r.parent_id).Bind(r.snapshot_id).Bind(r.state);
  s.Bind(r.port).Bind(r.password).Bind(r.volume).Bind(r.created_at).Bind(r.recovery_target);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db_);
}

Result<std::optional<BranchRow>> Catalog::FindBranch(int64_t project_id, const std::string& name) {
  Stmt s(db_,
         fmt::format("SELECT {} FROM branches WHERE project_id = ? AND name = ?", kBranchColumns)
             .c_str());
  s.Bind(project_id).Bind(name);
  return MaybeOne<BranchRow>(s, ReadBranch);
}

Result<BranchRow> Catalog::GetBranch(int64_t id) {
  Stmt s(db_, fmt::format("SELECT {} FROM branches WHERE id = ?", kBranchColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<BranchRow>(s, ReadBranch), "branch", id);
}

Result<std::vector<BranchRow>> Catalog::ListBranches(std::optional<int64_t> project_id) {
  Stmt s(db_, fmt::format("SELECT {} FROM branches WHERE ? IS NULL OR project_id = ? "
                          "ORDER BY (SELECT name FROM projects WHERE id = project_id), id",
                          kBranchColumns)
                  .c_str());
  s.Bind(project_id).Bind(project_id);
  return Collect<BranchRow>(s, ReadBranch);
}

Result<std::vector<BranchRow>> Catalog::ChildBranches(int64_t parent_id) {
  Stmt s(db_, fmt::format("SELECT {} FROM branches WHERE parent_id = ? ORDER BY id", kBranchColumns)
                  .c_str());
  s.Bind(parent_id);
  return Collect<BranchRow>(s, ReadBranch);
}

Status Catalog::UpdateBranch(const BranchRow& r) {
  Stmt s(db_,
         "UPDATE branches SET project_id = ?, name = ?, parent_id = ?, snapshot_id = ?, "
         "state = ?, port = ?, password = ?, volume = ?, created_at = ?, recovery_target = ? "
         "WHERE id = ?");
  s.Bind(r.project_id).Bind(r.name).Bind(r.parent_id).Bind(r.snapshot_id).Bind(r.state);
  s.Bind(r.port).Bind(r.password).Bind(r.volume).Bind(r.created_at).Bind(r.recovery_target);
  s.Bind(r.id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "branch", r.id);
}

Status Catalog::SetBranchState(int64_t id, const std::string& state) {
  Stmt s(db_, "UPDATE branches SET state = ? WHERE id = ?");
  s.Bind(state).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "branch", id);
}

Status Catalog::DeleteBranch(int64_t id) {
  Stmt s(db_, "DELETE FROM branches WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "branch", id);
}

Result<std::set<int>> Catalog::UsedPorts() {
  Stmt s(db_, "SELECT port FROM branches");
  PGB_ASSIGN_OR_RETURN(auto ports,
                       Collect<int>(s, [](const Stmt& st) { return static_cast<int>(st.Int(0)); }));
  return std::set<int>(ports.begin(), ports.end());
}

Result<int64_t> Catalog::InsertSnapshot(const SnapshotRow& r) {
  Stmt s(db_,
         "INSERT INTO snapshots (branch_id, volume, name, label, implicit, created_at, wal_lsn, "
         "wal_time_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.branch_id).Bind(r.volume).Bind(r.name).Bind(r.label).Bind(r.implicit);
  s.Bind(r.created_at).Bind(r.wal_lsn).Bind(r.wal_time_us);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db_);
}

Result<SnapshotRow> Catalog::GetSnapshot(int64_t id) {
  Stmt s(db_, fmt::format("SELECT {} FROM snapshots WHERE id = ?", kSnapshotColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<SnapshotRow>(s, ReadSnapshot), "snapshot", id);
}

Result<std::vector<SnapshotRow>> Catalog::ListSnapshots(std::optional<int64_t> branch_id) {
  Stmt s(db_, fmt::format("SELECT {} FROM snapshots WHERE ? IS NULL OR branch_id = ? ORDER BY id",
                          kSnapshotColumns)
                  .c_str());
  s.Bind(branch_id).Bind(branch_id);
  return Collect<SnapshotRow>(s, ReadSnapshot);
}

Result<std::vector<BranchRow>> Catalog::BranchesFromSnapshot(int64_t id) {
  Stmt s(db_,
         fmt::format("SELECT {} FROM branches WHERE snapshot_id = ? ORDER BY id", kBranchColumns)
             .c_str());
  s.Bind(id);
  return Collect<BranchRow>(s, ReadBranch);
}

Status Catalog::InsertAudit(const std::vector<AuditRow>& rows) {
  for (const auto& r : rows) {
    Stmt s(db_,
           "INSERT INTO audit (at, command, operation, object, detail, duration_ms, ok, error) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    s.Bind(r.at).Bind(r.command).Bind(r.operation).Bind(r.object).Bind(r.detail);
    s.Bind(r.duration_ms).Bind(r.ok).Bind(r.error);
    PGB_RETURN_IF_ERROR(s.Run());
  }
  return Status::OK();
}

Result<std::vector<AuditRow>> Catalog::ListAudit(int limit) {
  Stmt s(db_,
         "SELECT id, at, command, operation, object, detail, duration_ms, ok, error FROM "
         "(SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id");
  s.Bind(static_cast<int64_t>(limit));
  return Collect<AuditRow>(s, [](const Stmt& st) {
    AuditRow r;
    r.id = st.Int(0);
    r.at = st.Text(1);
    r.command = st.Text(2);
    r.operation = st.Text(3);
    r.object = st.Text(4);
    r.detail = st.Text(5);
    r.duration_ms = st.Real(6);
    r.ok = st.Int(7) != 0;
    r.error = st.Text(8);
    return r;
  });
}

Status Catalog::InsertEvent(const EventRow& r) {
  Stmt s(db_, "INSERT INTO events (branch_id, at, kind, detail) VALUES (?, ?, ?, ?)");
  s.Bind(r.branch_id).Bind(r.at).Bind(r.kind).Bind(r.detail);
  return s.Run();
}

Result<std::vector<EventRow>> Catalog::ListEvents(int64_t branch_id) {
  Stmt s(db_, "SELECT id, branch_id, at, kind, detail FROM events WHERE branch_id = ? ORDER BY id");
  s.Bind(branch_id);
  return Collect<EventRow>(s, [](const Stmt& st) {
    EventRow r;
    r.id = st.Int(0);
    r.branch_id = st.Int(1);
    r.at = st.Text(2);
    r.kind = st.Text(3);
    r.detail = st.Text(4);
    return r;
  });
}

Status Catalog::UpdateProjectName(int64_t id, const std::string& name) {
  Stmt s(db_, "UPDATE projects SET name = ? WHERE id = ?");
  s.Bind(name).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "project", id);
}

Status Catalog::UpdateSnapshot(const SnapshotRow& r) {
  Stmt s(db_,
         "UPDATE snapshots SET branch_id = ?, volume = ?, name = ?, label = ?, implicit = ?, "
         "created_at = ?, wal_lsn = ?, wal_time_us = ? WHERE id = ?");
  s.Bind(r.branch_id).Bind(r.volume).Bind(r.name).Bind(r.label).Bind(r.implicit);
  s.Bind(r.created_at).Bind(r.wal_lsn).Bind(r.wal_time_us).Bind(r.id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "snapshot", r.id);
}

Status Catalog::DeleteSnapshot(int64_t id) {
  Stmt s(db_, "DELETE FROM snapshots WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db_, "snapshot", id);
}

}  // namespace pgb
