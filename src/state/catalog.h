// The catalog: pgbranch's state in one SQLite database ($PGBRANCH_HOME/state.db, mode 0600).
//
// It records settings (which pool, which port range), projects, branches and snapshots.
// Storage and runtime hold the artifacts; the catalog holds the names that tie them together.
// Operations follow "make the artifact, then commit the row" and reconcile orphans at start.
//
// Concurrency: every write runs in a `BEGIN IMMEDIATE` transaction (one writer at a time across
// processes, waiting up to the busy timeout), and multi-step operations on a project hold its
// FileLock on top. Schema changes are numbered migrations recorded in PRAGMA user_version; a
// database newer than this binary is refused. A Catalog object is not thread-safe.

#ifndef PGBRANCH_STATE_CATALOG_H_
#define PGBRANCH_STATE_CATALOG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

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
};

// Stored branch states. What a user sees for running/stopped comes from the runtime.
inline constexpr const char* kStateCreating = "creating";
inline constexpr const char* kStateRunning = "running";
inline constexpr const char* kStateStopped = "stopped";
inline constexpr const char* kStateFailed = "failed";
inline constexpr const char* kStateDeleting = "deleting";

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
  std::string error;      // the failure's message, empty when ok
};

// A step in a branch's history, for `pgbranch log`: created, reset, renamed.
struct EventRow {
  int64_t id = 0;
  int64_t branch_id = 0;  // kept after the branch is deleted (no foreign key)
  std::string at;
  std::string kind;
  std::string detail;  // for people: "from demo/main (snapshot 12)"
};

class Catalog {
 public:
  // Opens (creating if missing, mode 0600) and migrates the database at `path`.
  // FailedPrecondition if it was written by a newer pgbranch.
  static Result<std::unique_ptr<Catalog>> Open(const std::string& path);
  ~Catalog();
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // The schema version this binary writes.
  static int SchemaVersion();

  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back if `body` returns non-OK or the
  // commit fails, and returns that status. Not reentrant.
  Status Transaction(const std::function<Status()>& body);

  // Settings: small key/value strings ("pool.kind", "ports.range").
  Result<std::optional<std::string>> GetSetting(const std::string& key);
  Status SetSetting(const std::string& key, const std::string& value);

  // Projects. Insert returns the new id; AlreadyExists if the name is taken.
  Result<int64_t> InsertProject(const ProjectRow& row);
  Result<std::optional<ProjectRow>> FindProject(const std::string& name);
  Result<ProjectRow> GetProject(int64_t id);       // NotFound if missing
  Result<std::vector<ProjectRow>> ListProjects();  // by name
  Status DeleteProject(int64_t id);

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
  Status DeleteBranch(int64_t id);
  // Ports held by any branch, whatever its state.
  Result<std::set<int>> UsedPorts();

  // Snapshots.
  Result<int64_t> InsertSnapshot(const SnapshotRow& row);
  Result<SnapshotRow> GetSnapshot(int64_t id);  // NotFound if missing
  Result<std::vector<SnapshotRow>> ListSnapshots(std::optional<int64_t> branch_id = std::nullopt);
  // Branches cloned from snapshot `id`.
  Result<std::vector<BranchRow>> BranchesFromSnapshot(int64_t id);
  Status UpdateSnapshot(const SnapshotRow& row);
  Status DeleteSnapshot(int64_t id);

  Status UpdateProjectName(int64_t id, const std::string& name);

  // The audit trail: appends rows; lists the newest `limit`, oldest first.
  Status InsertAudit(const std::vector<AuditRow>& rows);
  Result<std::vector<AuditRow>> ListAudit(int limit);

  // Branch history.
  Status InsertEvent(const EventRow& row);
  Result<std::vector<EventRow>> ListEvents(int64_t branch_id);

 private:
  explicit Catalog(sqlite3* db) : db_(db) {}
  Status Migrate();
  sqlite3* db_;
};

}  // namespace pgb

#endif  // PGBRANCH_STATE_CATALOG_H_
