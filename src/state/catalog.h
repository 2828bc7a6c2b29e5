// The catalog: pgbranch's state in one SQLite database ($PGBRANCH_HOME/state.db, mode 0600).
//
// It records settings (which pool, which port range), projects, branches, snapshots, the
// operations in flight and done, branch history and the audit trail. Storage and runtime hold
// the artifacts; the catalog holds the names that tie them together. Operations follow "make
// the artifact, then commit the row" and reconcile orphans at start.
//
// Concurrency: a Catalog may be used from many threads at once. Each thread gets its own SQLite
// connection (made on its first call), so a transaction, `last_insert_rowid` and any error
// belong to the thread that made them, and SQLite's own locking (WAL mode) is all that orders
// them: reads outside a transaction run in autocommit and never take the write lock; every
// write transaction is `BEGIN IMMEDIATE` (one writer at a time across threads and processes,
// waiting up to the busy timeout). Multi-step operations on a project or branch hold the
// engine's locks (engine/locks.h) on top. Schema changes are numbered migrations recorded in
// PRAGMA user_version, run once per open (the version is read without a lock; only a catalog
// that needs migrating takes the write lock, after a backup copy of the old file). A database
// newer than this binary is refused. A missing or empty file is created only when the caller
// allows it (Options::create_if_missing): pgbranch never silently replaces a lost catalog.

#ifndef PGBRANCH_STATE_CATALOG_H_
#define PGBRANCH_STATE_CATALOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/thread_annotations.h"

struct sqlite3;

namespace pgb {

struct ProjectRow {
  int64_t id = 0;
  std::string name;
  std::string runtime = "native";  // "native", "docker" or "podman"
  std::string pg_bin;      // directory of the PostgreSQL server binaries (in the image, if any)
  std::string pg_version;  // "15.20"
  int pg_major = 0;
  std::string superuser = "postgres";
  std::string listen_address = "127.0.0.1";
  std::string created_at;  // ISO 8601 UTC (common/time.h)
  // Container runtimes: the image every branch runs, and the uid/gid of its postgres account
  // (which owns the volumes). Native: empty and -1 (the server's OS user is a setting).
  std::string image;
  int64_t server_uid = -1;
  int64_t server_gid = -1;
  // The proxy (pgbranch serve): the branch the project-level route leads to (`pgbranch use`;
  // unset: main), the password a client gives the proxy for the superuser of any branch of the
  // project (empty until first needed), and how long a branch of the project may stay idle
  // before it is suspended (unset: never), unless the branch sets its own.
  std::optional<int64_t> active_branch_id;
  std::string proxy_password;
  std::optional<int64_t> suspend_after_s;
  // Copied from a running server (project create --from-server): its connection string
  // without the password (pg/source.h FormatConninfo; empty for other projects), whether main
  // runs as its streaming standby, the replication slot main streams from (empty: none) and
  // whether pgbranch created it (then `project delete` drops it), the WAL segment size in bytes
  // (initdb --wal-segsize; the source's), and for a replica the masking transforms every clone
  // of main runs before it is handed out: a JSON array of {"name": file name, "sql": text}.
  std::string source;
  bool replica = false;
  std::string replication_slot;
  bool slot_created = false;
  int64_t wal_segment_size = int64_t{16} << 20;
  std::string transforms;
  // Adopted in place (project create --adopt): the data directory's own path before it became
  // main's volume, and its owner then as "uid:gid" (what `project delete --keep-data` restores).
  // Both empty for other projects.
  std::string adopted_from;
  std::string adopted_owner;
};

// Stored branch states. What a user sees for running/stopped comes from the runtime.
inline constexpr const char* kStateCreating = "creating";
inline constexpr const char* kStateRunning = "running";
inline constexpr const char* kStateStopped = "stopped";
inline constexpr const char* kStateFailed = "failed";
inline constexpr const char* kStateDeleting = "deleting";
// Stopped by `branch suspend` or by `serve` after an idle spell: a fast shutdown, data kept;
// a connection through the proxy (or, while `serve` runs, to its own port) starts it again.
inline constexpr const char* kStateSuspended = "suspended";

// True for the states in which a branch exists and no operation is making or removing it.
inline bool IsSettledState(std::string_view state) {
  return state == kStateRunning || state == kStateStopped || state == kStateSuspended;
}

struct BranchRow {
  int64_t id = 0;
  int64_t project_id = 0;
  std::string name;
  std::optional<int64_t> parent_id;    // unset for a project's main branch
  std::optional<int64_t> snapshot_id;  // the snapshot it was cloned from
  std::string state = kStateCreating;
  int port = 0;
  std::string password;  // the superuser's password on this branch; the file is 0600
  std::string volume;    // pool volume name (storage/volume_name.h)
  std::string created_at;
  // For a branch made by point-in-time recovery, the target as the user gave it; else empty.
  std::string recovery_target;
  // Idle time after which `serve` suspends it; unset: the project's; 0: never.
  std::optional<int64_t> suspend_after_s;
  // When `serve` deletes it (ISO 8601 UTC; empty: never), and how long it may go without a
  // client session before `serve` deletes it (unset: no limit), counted from the later of
  // created_at and last_active_at (the last time `serve` saw a session on it; empty: never).
  std::string expires_at;
  std::optional<int64_t> idle_ttl_s;
  std::string last_active_at;
  // Protected: delete, reset and expiry refuse it unless forced.
  bool is_protected = false;
  std::map<std::string, std::string> labels;  // --label key=value
};

struct SnapshotRow {
  int64_t id = 0;
  int64_t branch_id = 0;  // the branch whose data it holds
  std::string volume;     // the pool volume it was taken of
  std::string name;       // pool snapshot name
  std::string label;
  bool implicit = false;  // made by branch create/reset rather than by a user
  std::string created_at;
  // Where the snapshot stands in its volume's WAL, measured just after it was taken: every
  // record it holds is before `wal_lsn` ("0/3000060") and was written before `wal_time_us`
  // (microseconds since the Unix epoch). Empty/unset when unknown (taken before pgbranch
  // recorded them): such a snapshot cannot start a point-in-time recovery.
  std::string wal_lsn;
  std::optional<int64_t> wal_time_us;
  std::optional<int64_t> schedule_id;  // the schedule that made it (its retention may drop it)
};

// A snapshot schedule (`pgbranch schedule add`), run by `serve`.
struct ScheduleRow {
  int64_t id = 0;
  int64_t branch_id = 0;             // the branch it snapshots
  std::string kind;                  // "snapshot" or "refresh"
  std::string cron;                  // crontab(5) expression (common/cron.h), UTC
  std::optional<int64_t> keep;       // keep at most this many of its snapshots
  std::optional<int64_t> max_age_s;  // and none older than this
  std::string created_at;            // ISO 8601 UTC
  std::string last_slot;             // the slot it last ran for (DueRun's rule); empty: never ran
  std::string last_result;           // "snapshot 12", or the error of that run
  // kind "refresh": what each run loads, JSON: {"dump": absolute path} or {"server": conninfo
  // without its password, "logical": bool} (the password in a private file, see
  // Engine::AddSchedule). Empty for snapshot schedules.
  std::string source;
};

// One storage or runtime operation, or one external command, done on behalf of a command.
struct AuditRow {
  int64_t id = 0;
  std::string at;         // when it started, ISO 8601 UTC
  std::string command;    // the pgbranch command it served: "branch create demo/dev"
  std::string operation;  // "pool.CreateSnapshot", "runtime.Start", "exec"
  std::string object;     // what it acted on: a volume, snapshot or branch
  std::string detail;     // the call's arguments, or the argv of a command
  double duration_ms = 0;
  bool ok = true;
  std::string error;                    // the failure's message, empty when ok
  std::optional<int64_t> operation_id;  // the operation it served (engine/operation.h), if any
  std::string step;                     // and that operation's step
};

// A bearer token of the API (`pgbranch token`). The secret is never stored: only its SHA-256,
// which a presented token's secret is compared with in constant time.
struct TokenRow {
  int64_t id = 0;
  std::string name;           // unique: "ci"
  std::string scope;          // read, write, admin
  std::string secret_sha256;  // lowercase hex
  std::string created_at;     // ISO 8601 UTC
  std::string last_used_at;   // empty: never used
};

// A step in a branch's history, for `pgbranch log`: created, reset, renamed.
struct EventRow {
  int64_t id = 0;
  int64_t branch_id = 0;  // kept after the branch is deleted (no foreign key)
  std::string at;
  std::string kind;
  std::string detail;  // for people: "from demo/main (snapshot 12)"
};

// One mutating request as it runs (engine/operation.h): the CLI, doctor and (later) the API
// all read the same rows. `steps` and `journal` are JSON text the engine writes and reads.
struct OperationRow {
  int64_t id = 0;
  std::string kind;    // "branch.create", "branch.reset", "project.delete", ...
  std::string target;  // what it acts on, for people: "demo/dev", "snapshot 12"
  std::optional<int64_t> project_id;
  std::optional<int64_t> branch_id;
  // Who runs it: "<boot id>/<pid>/<process start ticks>" (engine/operation.h OwnerAlive), so a
  // pid reused after a reboot or a wrap-around is not mistaken for the owner.
  std::string owner;
  int64_t pid = 0;
  std::string command;     // the pgbranch command line it serves ("branch create demo/dev")
  std::string state;       // running, committed, done, failed, undone
  std::string step;        // the step in progress, or the last one
  std::string steps;       // JSON: [{"name", "started_at", "ended_at"}]
  std::string journal;     // JSON: the actions still to run to undo it (or, committed, to finish)
  std::string error;       // why it failed, or what doctor did
  std::string started_at;  // ISO 8601 UTC
  std::string updated_at;
  std::string ended_at;  // empty while running or committed
};

inline constexpr const char* kOpRunning = "running";      // steps in progress; undo on failure
inline constexpr const char* kOpCommitted = "committed";  // point of no return passed; finishing
inline constexpr const char* kOpDone = "done";
inline constexpr const char* kOpFailed = "failed";  // undone, or (error says) left for doctor
inline constexpr const char* kOpUndone = "undone";  // interrupted and undone by doctor

// The last measured size of one volume (Pool::VolumeSpace), kept so that listings need not
// walk every file's extents. `measured_at` is ISO 8601 UTC.
struct VolumeSizeRow {
  std::string volume;
  uint64_t logical_bytes = 0;
  uint64_t exclusive_bytes = 0;
  std::string measured_at;
};

class Catalog {
 public:
  struct Options {
    // A missing or empty file becomes a new, empty catalog; otherwise NotFound.
    bool create_if_missing = true;
    // Before a migration changes an existing catalog, a copy of it is written here as
    // "state-<UTC time>-before-v<N>.db" (created 0700 if missing). Empty: no copy.
    std::string backup_dir;
  };

  // Opens and migrates the database at `path` (created mode 0600 when allowed).
  // NotFound if it is missing or empty and `create_if_missing` is off; FailedPrecondition if
  // it was written by a newer pgbranch; IOError naming the file if it is not a readable SQLite
  // database (never replaced).
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path, const Options& options);
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path) {
    return Open(path, Options{});
  }
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // The schema version this binary writes.
  static int SchemaVersion();

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT on the calling thread's connection; rolls
  // back if `body` returns non-OK or the commit fails, and returns that status. Not reentrant.
  Status Transaction(const std::function<Status()>& body);
  // Runs `body` inside BEGIN DEFERRED ... COMMIT: every read in it sees one snapshot of the
  // database, and no write lock is taken.
  Status ReadTransaction(const std::function<Status()>& body);
  // Whether the calling thread is inside Transaction or ReadTransaction.
  bool InTransaction();

  // Copies the whole database into a new file `dest` (mode 0600; temp file, fsync, rename)
  // with SQLite's online backup API (sqlite.org/backup.html): a consistent copy even while
  // other connections write.
  Status BackupTo(const std::string& dest);
  // Replaces the database's contents with those of the backup `src`, which must be a SQLite
  // database that passes `PRAGMA integrity_check` and whose schema this binary knows
  // (InvalidArgument otherwise; nothing is changed then), and migrates the result.
  // REQUIRES: no other connection uses the database (the engine holds the home lock
  // exclusively).
  Status RestoreFrom(const std::string& src);
  // The schema version of the database file at `path`, read-only; IOError if it is not one.
  static Result<int> FileSchemaVersion(const std::string& path);

  // Settings: small key/value strings ("pool.kind", "ports.range").
  Result<std::optional<std::string>> GetSetting(const std::string& key);
  Status SetSetting(const std::string& key, const std::string& value);
  Status DeleteSetting(const std::string& key);
  Result<std::map<std::string, std::string>> ListSettings();

  // Measured volume sizes. Put replaces the volume's row; Prune deletes the rows of volumes no
  // branch holds any more.
  Status PutVolumeSize(const VolumeSizeRow& row);
  Result<std::optional<VolumeSizeRow>> GetVolumeSize(const std::string& volume);
  Result<std::map<std::string, VolumeSizeRow>> ListVolumeSizes();  // by volume
  Status PruneVolumeSizes();

  // Projects. Insert returns the new id; AlreadyExists if the name is taken.
  Result<int64_t> InsertProject(const ProjectRow& row);
  Result<std::optional<ProjectRow>> FindProject(const std::string& name);
  Result<ProjectRow> GetProject(int64_t id);       // NotFound if missing
  Result<std::vector<ProjectRow>> ListProjects();  // by name
  Status DeleteProject(int64_t id);
  // Records the uid and gid the project's servers run as (its own OS account, made after its
  // row). NotFound if there is no project `id`.
  Status UpdateProjectServerUser(int64_t id, int64_t uid, int64_t gid);

  // Branches. Insert returns the new id; AlreadyExists if (project, name) or the port is taken.
  Result<int64_t> InsertBranch(const BranchRow& row);
  Result<std::optional<BranchRow>> FindBranch(int64_t project_id, const std::string& name);
  Result<BranchRow> GetBranch(int64_t id);  // NotFound if missing
  // All branches of a project (or of all projects), ordered by project name, then creation.
  Result<std::vector<BranchRow>> ListBranches(std::optional<int64_t> project_id = std::nullopt);
  Result<std::vector<BranchRow>> ChildBranches(int64_t parent_id);
  // Writes every column of `row` (matched by id). NotFound if the row is gone.
  Status UpdateBranch(const BranchRow& row);
  Status SetBranchState(int64_t id, const std::string& state);
  // Writes the branch's last_active_at alone (no error when the row is gone).
  Status SetBranchLastActive(int64_t id, const std::string& at);
  Status DeleteBranch(int64_t id);  // and its schedules
  // Ports held by any branch, whatever its state.
  Result<std::set<int>> UsedPorts();

  // Snapshots. Insert uses row.id when it is not 0 (a row put back), else a new id.
  Result<int64_t> InsertSnapshot(const SnapshotRow& row);
  Result<std::optional<SnapshotRow>> FindSnapshotByName(const std::string& name);
  Result<SnapshotRow> GetSnapshot(int64_t id);  // NotFound if missing
  Result<std::vector<SnapshotRow>> ListSnapshots(std::optional<int64_t> branch_id = std::nullopt);
  // Branches cloned from snapshot `id`.
  Result<std::vector<BranchRow>> BranchesFromSnapshot(int64_t id);
  Status UpdateSnapshot(const SnapshotRow& row);
  Status DeleteSnapshot(int64_t id);

  Status UpdateProjectName(int64_t id, const std::string& name);
  // Sets the source connection and WAL segment size of project `id` (project refresh).
  Status UpdateProjectSource(int64_t id, const std::string& source, int64_t wal_segment_size);
  // Sets the superuser role of project `id` (a copied cluster's bootstrap superuser).
  Status UpdateProjectSuperuser(int64_t id, const std::string& superuser);
  // Writes `row`'s active_branch_id, proxy_password and suspend_after_s.
  Status UpdateProjectProxy(const ProjectRow& row);

  // The audit trail: appends rows; lists the newest `limit`, oldest first.
  Status InsertAudit(const std::vector<AuditRow>& rows);
  Result<std::vector<AuditRow>> ListAudit(int limit);

  // API tokens. Insert returns the new id (AlreadyExists-like SQLite constraint error for a
  // name in use: the engine checks first); Delete returns whether a row went.
  // Snapshot schedules. DeleteSchedule returns whether a row went; GetSchedule is NotFound for
  // an unknown id.
  Result<int64_t> InsertSchedule(const ScheduleRow& row);
  Result<std::vector<ScheduleRow>> ListSchedules();  // by id
  Result<ScheduleRow> GetSchedule(int64_t id);
  Status UpdateScheduleRun(int64_t id, const std::string& last_slot,
                           const std::string& last_result);
  Result<bool> DeleteSchedule(int64_t id);

  Result<int64_t> InsertToken(const TokenRow& row);
  Result<std::vector<TokenRow>> ListTokens();  // by name
  Result<TokenRow> GetToken(int64_t id);       // NotFound if missing
  Result<bool> DeleteToken(const std::string& name);
  Status TouchToken(int64_t id, const std::string& at);

  // Branch history.
  Status InsertEvent(const EventRow& row);
  Result<std::vector<EventRow>> ListEvents(int64_t branch_id);

  // Operations. Insert returns the new id; Update writes every column but id.
  Result<int64_t> InsertOperation(const OperationRow& row);
  Status UpdateOperation(const OperationRow& row);
  Result<OperationRow> GetOperation(int64_t id);  // NotFound if missing
  // Operations still running or committed (not yet ended), oldest first.
  Result<std::vector<OperationRow>> ListOpenOperations();
  // The newest `limit` operations, newest first.
  Result<std::vector<OperationRow>> ListOperations(int limit);

  // Deletes the snapshot row `id` only if no branch row refers to it (in one statement, so a
  // concurrent clone that records a reference first wins). Returns whether it was deleted.
  Result<bool> DeleteSnapshotIfUnused(int64_t id);

 private:
  Catalog(std::string path, Options options)
      : path_(std::move(path)), options_(std::move(options)) {}
  // The calling thread's connection, opened on first use.
  Result<sqlite3*> Db() EXCLUDES(mu_);
  Result<sqlite3*> OpenConnection();
  Status Migrate();

  const std::string path_;
  const Options options_;
  Mutex mu_;
  // Each connection is used only by its thread (SQLITE_OPEN_NOMUTEX); the map is shared.
  std::map<std::thread::id, sqlite3*> connections_ GUARDED_BY(mu_);
};

}  // namespace pgb

#endif  // PGBRANCH_STATE_CATALOG_H_
