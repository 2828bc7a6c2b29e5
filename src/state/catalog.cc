#include "state/catalog.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <string_view>
#include <utility>

#include "common/random.h"

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
    // 5: the operations record: each mutating request with its owner, steps and the journal of
    // what undoes (or, once committed, finishes) it.
    R"sql(
CREATE TABLE operations (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  kind       TEXT NOT NULL,
  target     TEXT NOT NULL,
  project_id INTEGER,
  branch_id  INTEGER,
  owner      TEXT NOT NULL,
  pid        INTEGER NOT NULL,
  command    TEXT NOT NULL,
  state      TEXT NOT NULL,
  step       TEXT NOT NULL,
  steps      TEXT NOT NULL,
  journal    TEXT NOT NULL,
  error      TEXT NOT NULL,
  started_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  ended_at   TEXT NOT NULL
);
CREATE INDEX operations_open ON operations(ended_at);
ALTER TABLE audit ADD COLUMN operation_id INTEGER;
ALTER TABLE audit ADD COLUMN step TEXT NOT NULL DEFAULT '';
)sql",
    // 6: the proxy (pgbranch serve): each project's active branch and proxy password, and how
    // long a branch (or, inherited, any branch of a project) may stay idle before it is
    // suspended.
    R"sql(
ALTER TABLE projects ADD COLUMN active_branch_id INTEGER;
ALTER TABLE projects ADD COLUMN proxy_password TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN suspend_after_s INTEGER;
ALTER TABLE branches ADD COLUMN suspend_after_s INTEGER;
)sql",
    // 7: the API's bearer tokens (pgbranch token): a name, a scope and the SHA-256 of the
    // secret, never the secret itself.
    R"sql(
CREATE TABLE tokens (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  name          TEXT NOT NULL UNIQUE,
  scope         TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  last_used_at  TEXT NOT NULL DEFAULT ''
);
)sql",
    // 8: a branch's lifetime and guard: when it expires (ISO 8601, empty: never), how long it
    // may go without sessions before `serve` deletes it, when `serve` last saw a session on
    // it, whether it is protected from delete/reset, and its labels ("key=value" lines).
    R"sql(
ALTER TABLE branches ADD COLUMN expires_at TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN idle_ttl_s INTEGER;
ALTER TABLE branches ADD COLUMN last_active_at TEXT NOT NULL DEFAULT '';
ALTER TABLE branches ADD COLUMN protected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE branches ADD COLUMN labels TEXT NOT NULL DEFAULT '';
)sql",
    // 9: snapshot schedules run by `serve` (pgbranch schedule), and which schedule made a
    // snapshot (its retention touches only those).
    R"sql(
CREATE TABLE schedules (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  branch_id   INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  cron        TEXT NOT NULL,
  keep        INTEGER,
  max_age_s   INTEGER,
  created_at  TEXT NOT NULL,
  last_slot   TEXT NOT NULL DEFAULT '',
  last_result TEXT NOT NULL DEFAULT ''
);
ALTER TABLE snapshots ADD COLUMN schedule_id INTEGER;
)sql",
    // 10: projects copied from a running server (project create --from-server): the source's
    // connection without its password, whether main follows it as a standby, its slot, its
    // WAL segment size, and the masking transforms every clone of a replica main runs.
    R"sql(
ALTER TABLE projects ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN replica INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN replication_slot TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN slot_created INTEGER NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN wal_segment_size INTEGER NOT NULL DEFAULT 16777216;
ALTER TABLE projects ADD COLUMN transforms TEXT NOT NULL DEFAULT '';
)sql",
    // 11: data directories adopted in place (project create --adopt): where it was and whose,
    // so `project delete --keep-data` hands it back; and what a refresh schedule loads from.
    R"sql(
ALTER TABLE projects ADD COLUMN adopted_from TEXT NOT NULL DEFAULT '';
ALTER TABLE projects ADD COLUMN adopted_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE schedules ADD COLUMN source TEXT NOT NULL DEFAULT '';
)sql",
    // 12: the last measured size of each volume, so listings read it instead of walking every
    // file's extents (a volume gone from the branches is pruned by the next measuring pass).
    R"sql(
CREATE TABLE volume_sizes (
  volume          TEXT PRIMARY KEY,
  logical_bytes   INTEGER NOT NULL,
  exclusive_bytes INTEGER NOT NULL,
  measured_at     TEXT NOT NULL
);
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

// Runs `body` with synchronous=NORMAL when the connection is not inside a transaction: in WAL
// mode the write then survives a crash of this process but may be lost with the machine (the
// next synchronous commit makes it durable too; sqlite.org/pragma.html#pragma_synchronous).
// For the operations record and the audit trail, written at every step: a synchronous commit
// costs an fsync (~5 ms here) each. Inside a transaction the caller's commit decides.
Status Relaxed(sqlite3* db, const std::function<Status()>& body) {
  if (sqlite3_get_autocommit(db) == 0) return body();
  PGB_RETURN_IF_ERROR(ExecScript(db, "PRAGMA synchronous=NORMAL", "relax"));
  Status s = body();
  Status back = ExecScript(db, "PRAGMA synchronous=FULL", "restore synchronous");
  return s.ok() ? back : s;
}

// Labels are stored as "key=value" lines, sorted by key (keys never hold '=' or a newline:
// engine/names.h ValidateLabel).
std::map<std::string, std::string> ParseLabelLines(const std::string& text) {
  std::map<std::string, std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + at, end - at);
    size_t eq = line.find('=');
    if (eq != std::string_view::npos) out[std::string(line.substr(0, eq))] = line.substr(eq + 1);
    at = end + 1;
  }
  return out;
}

std::string FormatLabelLines(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += '\n';
    out += k + "=" + v;
  }
  return out;
}

constexpr const char* kProjectColumns =
    "id, name, runtime, pg_bin, pg_version, pg_major, superuser, listen_address, created_at, "
    "image, server_uid, server_gid, active_branch_id, proxy_password, suspend_after_s, source, "
    "replica, replication_slot, slot_created, wal_segment_size, transforms, adopted_from, "
    "adopted_owner";
constexpr const char* kBranchColumns =
    "id, project_id, name, parent_id, snapshot_id, state, port, password, volume, created_at, "
    "recovery_target, suspend_after_s, expires_at, idle_ttl_s, last_active_at, protected, labels";
constexpr const char* kSnapshotColumns =
    "id, branch_id, volume, name, label, implicit, created_at, wal_lsn, wal_time_us, schedule_id";
constexpr const char* kScheduleColumns =
    "id, branch_id, kind, cron, keep, max_age_s, created_at, last_slot, last_result, source";

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
  r.active_branch_id = s.OptInt(12);
  r.proxy_password = s.Text(13);
  r.suspend_after_s = s.OptInt(14);
  r.source = s.Text(15);
  r.replica = s.Int(16) != 0;
  r.replication_slot = s.Text(17);
  r.slot_created = s.Int(18) != 0;
  r.wal_segment_size = s.Int(19);
  r.transforms = s.Text(20);
  r.adopted_from = s.Text(21);
  r.adopted_owner = s.Text(22);
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
  r.suspend_after_s = s.OptInt(11);
  r.expires_at = s.Text(12);
  r.idle_ttl_s = s.OptInt(13);
  r.last_active_at = s.Text(14);
  r.is_protected = s.Int(15) != 0;
  r.labels = ParseLabelLines(s.Text(16));
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
  r.schedule_id = s.OptInt(9);
  return r;
}

ScheduleRow ReadSchedule(const Stmt& s) {
  ScheduleRow r;
  r.id = s.Int(0);
  r.branch_id = s.Int(1);
  r.kind = s.Text(2);
  r.cron = s.Text(3);
  r.keep = s.OptInt(4);
  r.max_age_s = s.OptInt(5);
  r.created_at = s.Text(6);
  r.last_slot = s.Text(7);
  r.last_result = s.Text(8);
  r.source = s.Text(9);
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
    return Status::NotFound(
        fmt::format("{} {} does not exist (no longer in the catalog)", what, id));
  return std::move(**r);
}

Status ExpectChanged(sqlite3* db, std::string_view what, int64_t id) {
  if (sqlite3_changes(db) == 0) {
    return Status::NotFound(
        fmt::format("{} {} does not exist (no longer in the catalog)", what, id));
  }
  return Status::OK();
}

}  // namespace

int Catalog::SchemaVersion() { return kSchemaVersion; }

namespace {

// Opens a connection to `path` with pgbranch's settings: WAL journal (readers never block the
// writer), foreign keys on, synchronous=FULL (a committed branch or password survives a power
// loss), a 30 s busy timeout and extended result codes.
Result<sqlite3*> Connect(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = Status::IOError(
        fmt::format("open catalog {}: {}", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 30000);
  sqlite3_extended_result_codes(db, 1);
  Status s = ExecScript(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;", "setup");
  if (!s.ok()) {
    sqlite3_close(db);
    return s;
  }
  return db;
}

Result<int> UserVersion(sqlite3* db) {
  Stmt s(db, "PRAGMA user_version");
  PGB_ASSIGN_OR_RETURN(bool has_row, s.Step());
  return has_row ? static_cast<int>(s.Int(0)) : 0;
}

// Copies every page of database `from` into `to` in one step of SQLite's online backup API
// (https://sqlite.org/backup.html); `what` names the operation in the error.
Status BackupPages(sqlite3* from, sqlite3* to, std::string_view what) {
  sqlite3_backup* backup = sqlite3_backup_init(to, "main", from, "main");
  if (backup == nullptr) return Status::IOError(fmt::format("{}: {}", what, sqlite3_errmsg(to)));
  int rc = sqlite3_backup_step(backup, -1);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) return Status::IOError(fmt::format("{}: {}", what, sqlite3_errstr(rc)));
  return Status::OK();
}

// Writes the SQLite database `from` into a new file `dest`: a temp file next to it filled with
// the online backup API, fsynced, then renamed into place (mode 0600). The temp file's name is
// this call's own: two copies to one `dest` at once (two threads backing up in the same
// second) each rename a whole copy, rather than one renaming the other's half-written file.
Status CopyDatabase(sqlite3* from, const std::string& dest) {
  std::string tmp = fmt::format("{}.{}.tmp", dest, RandomHex(8));
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(fmt::format("create {}", tmp), errno);
  ::close(fd);
  sqlite3* to = nullptr;
  if (sqlite3_open_v2(tmp.c_str(), &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK) {
    Status s = Status::IOError(fmt::format("open {}: {}", tmp, sqlite3_errmsg(to)));
    sqlite3_close(to);
    ::unlink(tmp.c_str());
    return s;
  }
  sqlite3_busy_timeout(to, 30000);
  Status result = BackupPages(from, to, "back up the catalog");
  sqlite3_close(to);
  if (result.ok()) {
    fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) result = PosixError(fmt::format("fsync {}", tmp), errno);
    if (fd >= 0) ::close(fd);
  }
  if (result.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
    result = PosixError(fmt::format("rename {} to {}", tmp, dest), errno);
  }
  if (!result.ok()) ::unlink(tmp.c_str());
  return result;
}

// "20261201T014426Z": UTC, for file names that sort by time.
std::string FileTimestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, const Options& options) {
  struct stat st {};
  bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return PosixError(fmt::format("stat catalog {}", path), errno);
  if ((!exists || st.st_size == 0) && !options.create_if_missing) {
    return Status::NotFound(
        fmt::format("the catalog {} is {}", path, exists ? "empty (0 bytes)" : "missing"));
  }
  if (!exists) {
    // Create the file ourselves so its mode is 0600 whatever the umask (SQLite would use 0644).
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) return PosixError(fmt::format("create catalog {}", path), errno);
    if (fd >= 0) ::close(fd);
  }
  ::chmod(path.c_str(), 0600);
  std::unique_ptr<Catalog> catalog(new Catalog(path, options));
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, catalog->Db());
  // journal_mode is persistent in the file: set once, by whoever opens it first. On a file that
  // is not a database this is where SQLite says so.
  Status wal = ExecScript(db, "PRAGMA journal_mode=WAL", "setup");
  if (!wal.ok()) {
    return Status::IOError(fmt::format(
        "the catalog {} is not a readable SQLite database ({}); it was left as it is: restore a "
        "backup with 'pgbranch catalog restore' or rebuild it with 'pgbranch doctor --adopt'",
        path, wal.message()));
  }
  PGB_RETURN_IF_ERROR(catalog->Migrate());
  // The WAL and shared-memory files SQLite creates next to the database hold the same data.
  for (const char* suffix : {"-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  return catalog;
}

Catalog::~Catalog() {
  MutexLock lock(mu_);
  for (auto& [thread, db] : connections_) sqlite3_close(db);
}

Result<sqlite3*> Catalog::OpenConnection() { return Connect(path_, SQLITE_OPEN_READWRITE); }

Result<sqlite3*> Catalog::Db() {
  std::thread::id me = std::this_thread::get_id();
  {
    MutexLock lock(mu_);
    auto it = connections_.find(me);
    if (it != connections_.end()) return it->second;
  }
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, OpenConnection());
  MutexLock lock(mu_);
  connections_[me] = db;
  return db;
}

Status Catalog::Migrate() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  // Read without a lock: the common case (nothing to do) never blocks a writer.
  PGB_ASSIGN_OR_RETURN(int version, UserVersion(db));
  if (version == kSchemaVersion) return Status::OK();
  if (version > kSchemaVersion) {
    return Status::FailedPrecondition(
        fmt::format("the catalog has schema version {} but this pgbranch knows up to {}; "
                    "upgrade pgbranch",
                    version, kSchemaVersion));
  }
  if (version > 0 && !options_.backup_dir.empty()) {
    if (::mkdir(options_.backup_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return PosixError(fmt::format("create {}", options_.backup_dir), errno);
    }
    PGB_RETURN_IF_ERROR(BackupTo(fmt::format("{}/state-{}-before-v{}.db", options_.backup_dir,
                                             FileTimestamp(), kSchemaVersion)));
  }
  return Transaction([&]() -> Status {
    // Another process may have migrated while we waited for the write lock.
    PGB_ASSIGN_OR_RETURN(int current, UserVersion(db));
    for (int v = current; v < kSchemaVersion; ++v) {
      PGB_RETURN_IF_ERROR(ExecScript(db, kMigrations[v], fmt::format("migration {}", v + 1)));
    }
    if (current != kSchemaVersion) {
      PGB_RETURN_IF_ERROR(ExecScript(
          db, fmt::format("PRAGMA user_version = {}", kSchemaVersion).c_str(), "set version"));
    }
    return Status::OK();
  });
}

Status Catalog::Transaction(const std::function<Status()>& body) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  PGB_RETURN_IF_ERROR(ExecScript(db, "BEGIN IMMEDIATE", "begin"));
  Status s = body();
  if (s.ok()) s = ExecScript(db, "COMMIT", "commit");
  if (!s.ok()) {
    Status ignored = ExecScript(db, "ROLLBACK", "rollback");
    (void)ignored;
  }
  return s;
}

Status Catalog::ReadTransaction(const std::function<Status()>& body) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  PGB_RETURN_IF_ERROR(ExecScript(db, "BEGIN DEFERRED", "begin"));
  Status s = body();
  Status end = ExecScript(db, s.ok() ? "COMMIT" : "ROLLBACK", "end read");
  return s.ok() ? end : s;
}

bool Catalog::InTransaction() {
  auto db = Db();
  return db.ok() && sqlite3_get_autocommit(*db) == 0;
}

Status Catalog::BackupTo(const std::string& dest) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  return CopyDatabase(db, dest);
}

Result<int> Catalog::FileSchemaVersion(const std::string& path) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Connect(path, SQLITE_OPEN_READONLY));
  Stmt check(db, "PRAGMA quick_check");
  auto row = check.Step();
  Result<int> version = UserVersion(db);
  std::string verdict = row.ok() && *row ? check.Text(0) : "";
  sqlite3_close(db);
  if (!row.ok() || !version.ok()) {
    return Status::IOError(fmt::format("{} is not a readable SQLite database", path));
  }
  if (verdict != "ok") {
    return Status::IOError(fmt::format("{} is damaged: {}", path, verdict));
  }
  return version;
}

Status Catalog::RestoreFrom(const std::string& src) {
  auto version = FileSchemaVersion(src);
  if (!version.ok()) return Status::InvalidArgument(version.status().message());
  if (*version < 1 || *version > kSchemaVersion) {
    return Status::InvalidArgument(fmt::format(
        "{} has schema version {}; this pgbranch reads 1 to {}", src, *version, kSchemaVersion));
  }
  PGB_ASSIGN_OR_RETURN(sqlite3 * from, Connect(src, SQLITE_OPEN_READONLY));
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Status result = BackupPages(from, db, "restore the catalog");
  sqlite3_close(from);
  PGB_RETURN_IF_ERROR(result);
  return Migrate();
}

Result<std::optional<std::string>> Catalog::GetSetting(const std::string& key) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "SELECT value FROM settings WHERE key = ?");
  s.Bind(key);
  return MaybeOne<std::string>(s, [](const Stmt& st) { return st.Text(0); });
}

Status Catalog::SetSetting(const std::string& key, const std::string& value) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO settings (key, value) VALUES (?, ?) "
         "ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  s.Bind(key).Bind(value);
  return s.Run();
}

Status Catalog::DeleteSetting(const std::string& key) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "DELETE FROM settings WHERE key = ?");
  s.Bind(key);
  return s.Run();
}

Result<std::map<std::string, std::string>> Catalog::ListSettings() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "SELECT key, value FROM settings ORDER BY key");
  using Setting = std::pair<std::string, std::string>;
  auto read = [](const Stmt& st) { return Setting(st.Text(0), st.Text(1)); };
  PGB_ASSIGN_OR_RETURN(std::vector<Setting> rows, Collect<Setting>(s, read));
  return std::map<std::string, std::string>(rows.begin(), rows.end());
}

Status Catalog::PutVolumeSize(const VolumeSizeRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO volume_sizes (volume, logical_bytes, exclusive_bytes, measured_at) "
         "VALUES (?, ?, ?, ?) ON CONFLICT (volume) DO UPDATE SET "
         "logical_bytes = excluded.logical_bytes, exclusive_bytes = excluded.exclusive_bytes, "
         "measured_at = excluded.measured_at");
  s.Bind(r.volume).Bind(static_cast<int64_t>(r.logical_bytes));
  s.Bind(static_cast<int64_t>(r.exclusive_bytes)).Bind(r.measured_at);
  return s.Run();
}

namespace {
VolumeSizeRow ReadVolumeSize(const Stmt& st) {
  return VolumeSizeRow{st.Text(0), static_cast<uint64_t>(st.Int(1)),
                       static_cast<uint64_t>(st.Int(2)), st.Text(3)};
}
}  // namespace

Result<std::optional<VolumeSizeRow>> Catalog::GetVolumeSize(const std::string& volume) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "SELECT volume, logical_bytes, exclusive_bytes, measured_at FROM volume_sizes "
         "WHERE volume = ?");
  s.Bind(volume);
  return MaybeOne<VolumeSizeRow>(s, ReadVolumeSize);
}

Result<std::map<std::string, VolumeSizeRow>> Catalog::ListVolumeSizes() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "SELECT volume, logical_bytes, exclusive_bytes, measured_at FROM volume_sizes");
  PGB_ASSIGN_OR_RETURN(std::vector<VolumeSizeRow> rows, Collect<VolumeSizeRow>(s, ReadVolumeSize));
  std::map<std::string, VolumeSizeRow> out;
  for (auto& r : rows) out.emplace(r.volume, std::move(r));
  return out;
}

Status Catalog::PruneVolumeSizes() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "DELETE FROM volume_sizes WHERE volume NOT IN (SELECT volume FROM branches)");
  return s.Run();
}

Result<int64_t> Catalog::InsertProject(const ProjectRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO projects (name, runtime, pg_bin, pg_version, pg_major, superuser, "
         "listen_address, created_at, image, server_uid, server_gid, active_branch_id, "
         "proxy_password, suspend_after_s, source, replica, replication_slot, slot_created, "
         "wal_segment_size, transforms, adopted_from, adopted_owner) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.name).Bind(r.runtime).Bind(r.pg_bin).Bind(r.pg_version).Bind(r.pg_major);
  s.Bind(r.superuser).Bind(r.listen_address).Bind(r.created_at);
  s.Bind(r.image).Bind(r.server_uid).Bind(r.server_gid);
  s.Bind(r.active_branch_id).Bind(r.proxy_password).Bind(r.suspend_after_s);
  s.Bind(r.source).Bind(static_cast<int64_t>(r.replica)).Bind(r.replication_slot);
  s.Bind(static_cast<int64_t>(r.slot_created)).Bind(r.wal_segment_size).Bind(r.transforms);
  s.Bind(r.adopted_from).Bind(r.adopted_owner);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db);
}

Result<std::optional<ProjectRow>> Catalog::FindProject(const std::string& name) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM projects WHERE name = ?", kProjectColumns).c_str());
  s.Bind(name);
  return MaybeOne<ProjectRow>(s, ReadProject);
}

Result<ProjectRow> Catalog::GetProject(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM projects WHERE id = ?", kProjectColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<ProjectRow>(s, ReadProject), "project", id);
}

Result<std::vector<ProjectRow>> Catalog::ListProjects() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM projects ORDER BY name", kProjectColumns).c_str());
  return Collect<ProjectRow>(s, ReadProject);
}

Status Catalog::DeleteProject(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "DELETE FROM projects WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "project", id);
}

Status Catalog::UpdateProjectServerUser(int64_t id, int64_t uid, int64_t gid) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE projects SET server_uid = ?, server_gid = ? WHERE id = ?");
  s.Bind(uid).Bind(gid).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "project", id);
}

Result<int64_t> Catalog::InsertBranch(const BranchRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO branches (project_id, name, parent_id, snapshot_id, state, port, "
         "password, volume, created_at, recovery_target, suspend_after_s, expires_at, "
         "idle_ttl_s, last_active_at, protected, labels) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.project_id).Bind(r.name).Bind(r.parent_id).Bind(r.snapshot_id).Bind(r.state);
  s.Bind(r.port).Bind(r.password).Bind(r.volume).Bind(r.created_at).Bind(r.recovery_target);
  s.Bind(r.suspend_after_s).Bind(r.expires_at).Bind(r.idle_ttl_s).Bind(r.last_active_at);
  s.Bind(r.is_protected).Bind(FormatLabelLines(r.labels));
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db);
}

Result<std::optional<BranchRow>> Catalog::FindBranch(int64_t project_id, const std::string& name) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         fmt::format("SELECT {} FROM branches WHERE project_id = ? AND name = ?", kBranchColumns)
             .c_str());
  s.Bind(project_id).Bind(name);
  return MaybeOne<BranchRow>(s, ReadBranch);
}

Result<BranchRow> Catalog::GetBranch(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM branches WHERE id = ?", kBranchColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<BranchRow>(s, ReadBranch), "branch", id);
}

Result<std::vector<BranchRow>> Catalog::ListBranches(std::optional<int64_t> project_id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM branches WHERE ? IS NULL OR project_id = ? "
                         "ORDER BY (SELECT name FROM projects WHERE id = project_id), id",
                         kBranchColumns)
                 .c_str());
  s.Bind(project_id).Bind(project_id);
  return Collect<BranchRow>(s, ReadBranch);
}

Result<std::vector<BranchRow>> Catalog::ChildBranches(int64_t parent_id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM branches WHERE parent_id = ? ORDER BY id", kBranchColumns)
                 .c_str());
  s.Bind(parent_id);
  return Collect<BranchRow>(s, ReadBranch);
}

Status Catalog::UpdateBranch(const BranchRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "UPDATE branches SET project_id = ?, name = ?, parent_id = ?, snapshot_id = ?, "
         "state = ?, port = ?, password = ?, volume = ?, created_at = ?, recovery_target = ?, "
         "suspend_after_s = ?, expires_at = ?, idle_ttl_s = ?, last_active_at = ?, "
         "protected = ?, labels = ? WHERE id = ?");
  s.Bind(r.project_id).Bind(r.name).Bind(r.parent_id).Bind(r.snapshot_id).Bind(r.state);
  s.Bind(r.port).Bind(r.password).Bind(r.volume).Bind(r.created_at).Bind(r.recovery_target);
  s.Bind(r.suspend_after_s).Bind(r.expires_at).Bind(r.idle_ttl_s).Bind(r.last_active_at);
  s.Bind(r.is_protected).Bind(FormatLabelLines(r.labels)).Bind(r.id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "branch", r.id);
}

Status Catalog::SetBranchState(int64_t id, const std::string& state) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE branches SET state = ? WHERE id = ?");
  s.Bind(state).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "branch", id);
}

Status Catalog::SetBranchLastActive(int64_t id, const std::string& at) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE branches SET last_active_at = ? WHERE id = ?");
  s.Bind(at).Bind(id);
  return s.Run();
}

Status Catalog::DeleteBranch(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt schedules(db, "DELETE FROM schedules WHERE branch_id = ?");  // they go with it
  schedules.Bind(id);
  PGB_RETURN_IF_ERROR(schedules.Run());
  Stmt s(db, "DELETE FROM branches WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "branch", id);
}

Result<std::set<int>> Catalog::UsedPorts() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "SELECT port FROM branches");
  PGB_ASSIGN_OR_RETURN(auto ports,
                       Collect<int>(s, [](const Stmt& st) { return static_cast<int>(st.Int(0)); }));
  return std::set<int>(ports.begin(), ports.end());
}

Result<int64_t> Catalog::InsertSnapshot(const SnapshotRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO snapshots (id, branch_id, volume, name, label, implicit, created_at, "
         "wal_lsn, wal_time_us, schedule_id) VALUES (NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.id).Bind(r.branch_id).Bind(r.volume).Bind(r.name).Bind(r.label).Bind(r.implicit);
  s.Bind(r.created_at).Bind(r.wal_lsn).Bind(r.wal_time_us).Bind(r.schedule_id);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db);
}

Result<SnapshotRow> Catalog::GetSnapshot(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM snapshots WHERE id = ?", kSnapshotColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<SnapshotRow>(s, ReadSnapshot), "snapshot", id);
}

Result<std::optional<SnapshotRow>> Catalog::FindSnapshotByName(const std::string& name) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM snapshots WHERE name = ?", kSnapshotColumns).c_str());
  s.Bind(name);
  return MaybeOne<SnapshotRow>(s, ReadSnapshot);
}

Result<std::vector<SnapshotRow>> Catalog::ListSnapshots(std::optional<int64_t> branch_id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM snapshots WHERE ? IS NULL OR branch_id = ? ORDER BY id",
                         kSnapshotColumns)
                 .c_str());
  s.Bind(branch_id).Bind(branch_id);
  return Collect<SnapshotRow>(s, ReadSnapshot);
}

Result<std::vector<BranchRow>> Catalog::BranchesFromSnapshot(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         fmt::format("SELECT {} FROM branches WHERE snapshot_id = ? ORDER BY id", kBranchColumns)
             .c_str());
  s.Bind(id);
  return Collect<BranchRow>(s, ReadBranch);
}

Status Catalog::InsertAudit(const std::vector<AuditRow>& rows) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  return Relaxed(db, [&]() -> Status {
    for (const auto& r : rows) {
      Stmt s(db,
             "INSERT INTO audit (at, command, operation, object, detail, duration_ms, ok, error, "
             "operation_id, step) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      s.Bind(r.at).Bind(r.command).Bind(r.operation).Bind(r.object).Bind(r.detail);
      s.Bind(r.duration_ms).Bind(r.ok).Bind(r.error).Bind(r.operation_id).Bind(r.step);
      PGB_RETURN_IF_ERROR(s.Run());
    }
    return Status::OK();
  });
}

Result<std::vector<AuditRow>> Catalog::ListAudit(int limit) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "SELECT id, at, command, operation, object, detail, duration_ms, ok, error, "
         "operation_id, step FROM "
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
    r.operation_id = st.OptInt(9);
    r.step = st.Text(10);
    return r;
  });
}

Result<int64_t> Catalog::InsertToken(const TokenRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO tokens (name, scope, secret_sha256, created_at, last_used_at) "
         "VALUES (?, ?, ?, ?, ?)");
  s.Bind(r.name).Bind(r.scope).Bind(r.secret_sha256).Bind(r.created_at).Bind(r.last_used_at);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db);
}

namespace {
TokenRow TokenFrom(const Stmt& st) {
  TokenRow r;
  r.id = st.Int(0);
  r.name = st.Text(1);
  r.scope = st.Text(2);
  r.secret_sha256 = st.Text(3);
  r.created_at = st.Text(4);
  r.last_used_at = st.Text(5);
  return r;
}
}  // namespace

Result<std::vector<TokenRow>> Catalog::ListTokens() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "SELECT id, name, scope, secret_sha256, created_at, last_used_at FROM tokens "
         "ORDER BY name");
  return Collect<TokenRow>(s, TokenFrom);
}

Result<TokenRow> Catalog::GetToken(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "SELECT id, name, scope, secret_sha256, created_at, last_used_at FROM tokens "
         "WHERE id = ?");
  s.Bind(id);
  PGB_ASSIGN_OR_RETURN(auto rows, Collect<TokenRow>(s, TokenFrom));
  if (rows.empty()) return Status::NotFound(fmt::format("token {} does not exist", id));
  return rows[0];
}

Result<bool> Catalog::DeleteToken(const std::string& name) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "DELETE FROM tokens WHERE name = ?");
  s.Bind(name);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_changes(db) > 0;
}

Status Catalog::TouchToken(int64_t id, const std::string& at) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE tokens SET last_used_at = ? WHERE id = ?");
  s.Bind(at).Bind(id);
  return s.Run();
}

Status Catalog::InsertEvent(const EventRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "INSERT INTO events (branch_id, at, kind, detail) VALUES (?, ?, ?, ?)");
  s.Bind(r.branch_id).Bind(r.at).Bind(r.kind).Bind(r.detail);
  return s.Run();
}

Result<std::vector<EventRow>> Catalog::ListEvents(int64_t branch_id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "SELECT id, branch_id, at, kind, detail FROM events WHERE branch_id = ? ORDER BY id");
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

Status Catalog::UpdateProjectProxy(const ProjectRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "UPDATE projects SET active_branch_id = ?, proxy_password = ?, suspend_after_s = ? "
         "WHERE id = ?");
  s.Bind(r.active_branch_id).Bind(r.proxy_password).Bind(r.suspend_after_s).Bind(r.id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "project", r.id);
}

Status Catalog::UpdateProjectSource(int64_t id, const std::string& source,
                                    int64_t wal_segment_size) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE projects SET source = ?, wal_segment_size = ? WHERE id = ?");
  s.Bind(source).Bind(wal_segment_size).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "project", id);
}

Status Catalog::UpdateProjectSuperuser(int64_t id, const std::string& superuser) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE projects SET superuser = ? WHERE id = ?");
  s.Bind(superuser).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "project", id);
}

Status Catalog::UpdateProjectName(int64_t id, const std::string& name) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE projects SET name = ? WHERE id = ?");
  s.Bind(name).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "project", id);
}

Status Catalog::UpdateSnapshot(const SnapshotRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "UPDATE snapshots SET branch_id = ?, volume = ?, name = ?, label = ?, implicit = ?, "
         "created_at = ?, wal_lsn = ?, wal_time_us = ?, schedule_id = ? WHERE id = ?");
  s.Bind(r.branch_id).Bind(r.volume).Bind(r.name).Bind(r.label).Bind(r.implicit);
  s.Bind(r.created_at).Bind(r.wal_lsn).Bind(r.wal_time_us).Bind(r.schedule_id).Bind(r.id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "snapshot", r.id);
}

Result<int64_t> Catalog::InsertSchedule(const ScheduleRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO schedules (branch_id, kind, cron, keep, max_age_s, created_at, last_slot, "
         "last_result, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.branch_id).Bind(r.kind).Bind(r.cron).Bind(r.keep).Bind(r.max_age_s);
  s.Bind(r.created_at).Bind(r.last_slot).Bind(r.last_result).Bind(r.source);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_last_insert_rowid(db);
}

Result<std::vector<ScheduleRow>> Catalog::ListSchedules() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM schedules ORDER BY id", kScheduleColumns).c_str());
  return Collect<ScheduleRow>(s, ReadSchedule);
}

Result<ScheduleRow> Catalog::GetSchedule(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM schedules WHERE id = ?", kScheduleColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<ScheduleRow>(s, ReadSchedule), "schedule", id);
}

Status Catalog::UpdateScheduleRun(int64_t id, const std::string& last_slot,
                                  const std::string& last_result) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "UPDATE schedules SET last_slot = ?, last_result = ? WHERE id = ?");
  s.Bind(last_slot).Bind(last_result).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "schedule", id);
}

Result<bool> Catalog::DeleteSchedule(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "DELETE FROM schedules WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_changes(db) > 0;
}

Status Catalog::DeleteSnapshot(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, "DELETE FROM snapshots WHERE id = ?");
  s.Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return ExpectChanged(db, "snapshot", id);
}

namespace {

constexpr const char* kOperationColumns =
    "id, kind, target, project_id, branch_id, owner, pid, command, state, step, steps, journal, "
    "error, started_at, updated_at, ended_at";

OperationRow ReadOperation(const Stmt& s) {
  OperationRow r;
  r.id = s.Int(0);
  r.kind = s.Text(1);
  r.target = s.Text(2);
  r.project_id = s.OptInt(3);
  r.branch_id = s.OptInt(4);
  r.owner = s.Text(5);
  r.pid = s.Int(6);
  r.command = s.Text(7);
  r.state = s.Text(8);
  r.step = s.Text(9);
  r.steps = s.Text(10);
  r.journal = s.Text(11);
  r.error = s.Text(12);
  r.started_at = s.Text(13);
  r.updated_at = s.Text(14);
  r.ended_at = s.Text(15);
  return r;
}

}  // namespace

Result<int64_t> Catalog::InsertOperation(const OperationRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "INSERT INTO operations (kind, target, project_id, branch_id, owner, pid, command, state, "
         "step, steps, journal, error, started_at, updated_at, ended_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  s.Bind(r.kind).Bind(r.target).Bind(r.project_id).Bind(r.branch_id).Bind(r.owner).Bind(r.pid);
  s.Bind(r.command).Bind(r.state).Bind(r.step).Bind(r.steps).Bind(r.journal).Bind(r.error);
  s.Bind(r.started_at).Bind(r.updated_at).Bind(r.ended_at);
  PGB_RETURN_IF_ERROR(Relaxed(db, [&] { return s.Run(); }));
  return sqlite3_last_insert_rowid(db);
}

Status Catalog::UpdateOperation(const OperationRow& r) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "UPDATE operations SET kind = ?, target = ?, project_id = ?, branch_id = ?, owner = ?, "
         "pid = ?, command = ?, state = ?, step = ?, steps = ?, journal = ?, error = ?, "
         "started_at = ?, updated_at = ?, ended_at = ? WHERE id = ?");
  s.Bind(r.kind).Bind(r.target).Bind(r.project_id).Bind(r.branch_id).Bind(r.owner).Bind(r.pid);
  s.Bind(r.command).Bind(r.state).Bind(r.step).Bind(r.steps).Bind(r.journal).Bind(r.error);
  s.Bind(r.started_at).Bind(r.updated_at).Bind(r.ended_at).Bind(r.id);
  return Relaxed(db, [&]() -> Status {
    PGB_RETURN_IF_ERROR(s.Run());
    return ExpectChanged(db, "operation", r.id);
  });
}

Result<OperationRow> Catalog::GetOperation(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db, fmt::format("SELECT {} FROM operations WHERE id = ?", kOperationColumns).c_str());
  s.Bind(id);
  return Required(MaybeOne<OperationRow>(s, ReadOperation), "operation", id);
}

Result<std::vector<OperationRow>> Catalog::ListOpenOperations() {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         fmt::format("SELECT {} FROM operations WHERE ended_at = '' ORDER BY id", kOperationColumns)
             .c_str());
  return Collect<OperationRow>(s, ReadOperation);
}

Result<std::vector<OperationRow>> Catalog::ListOperations(int limit) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(
      db,
      fmt::format("SELECT {} FROM operations ORDER BY id DESC LIMIT ?", kOperationColumns).c_str());
  s.Bind(static_cast<int64_t>(limit));
  return Collect<OperationRow>(s, ReadOperation);
}

Result<bool> Catalog::DeleteSnapshotIfUnused(int64_t id) {
  PGB_ASSIGN_OR_RETURN(sqlite3 * db, Db());
  Stmt s(db,
         "DELETE FROM snapshots WHERE id = ? AND NOT EXISTS "
         "(SELECT 1 FROM branches WHERE snapshot_id = ?)");
  s.Bind(id).Bind(id);
  PGB_RETURN_IF_ERROR(s.Run());
  return sqlite3_changes(db) > 0;
}

}  // namespace pgb
