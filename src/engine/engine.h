// The engine: projects and branches as operations made of steps with undo.
//
// The engine is a library. The CLI calls it directly (no daemon needed); a server and a proxy
// use the same calls. Each mutating operation takes the project's lock ($PGBRANCH_HOME/locks),
// writes the catalog in transactions, and on failure undoes the steps it did, newest first: a
// failed create leaves no volume, no snapshot, no process and no row, and a parent is only ever
// read (CHECKPOINT and an atomic snapshot), never changed.
//
// Branch create, the operation that matters (DESIGN.md):
//   reserve row + port -> CHECKPOINT the running parent (skipped with `fast`) -> atomic
//   snapshot of the parent's volume -> clone it -> write the branch's pgbranch.conf, drop the
//   parent's postmaster.pid -> start postgres and poll until it answers -> set the branch's own
//   random password -> mark running.
//
// Every mutating call is an operation (engine/operation.h): a durable record with its steps and
// a journal of what undoes it, so a failure, an interrupt (the cancel token in EngineEnv) or a
// crash at any point is undone here or by `doctor`. Locks follow engine/locks.h.
//
// Messages in returned Status are causes ("parent demo/x does not exist"); the caller prefixes
// "<operation> <object>: ". Thread-safety: an Engine may be used from many threads at once (the
// daemon), and many processes may open the same home at once (CLIs); the catalog gives each
// thread its own connection and the locks order the work.

#ifndef PGBRANCH_ENGINE_ENGINE_H_
#define PGBRANCH_ENGINE_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancel.h"
#include "common/file_lock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/thread_annotations.h"
#include "common/time.h"
#include "common/undo.h"
#include "engine/audit.h"
#include "engine/locks.h"
#include "engine/names.h"
#include "engine/operation.h"
#include "engine/ports.h"
#include "pg/client.h"
#include "pg/cluster.h"
#include "pg/source.h"
#include "pg/tls.h"
#include "pg/wal.h"
#include "runtime/container.h"
#include "runtime/runtime.h"
#include "state/catalog.h"
#include "storage/pool.h"

namespace pgb {

// Receives progress of long operations, for the CLI's "▸ Checkpoint 0.03s" lines. Called from
// the thread doing the work; an implementation shared by threads synchronizes itself.
class Progress {
 public:
  virtual ~Progress() = default;
  // A step begins.
  virtual void StepStarted(std::string_view name) {}
  // A step finished successfully after `took`.
  virtual void Step(std::string_view name, std::chrono::nanoseconds took) = 0;
  // Something the user should know ("created pool ...", "waiting for demo/dev: ...").
  virtual void Note(std::string_view message) = 0;
};

// Binds `progress` to the calling thread for the scope's lifetime: the engine reports the
// progress of work done on this thread there instead of EngineEnv::progress (the daemon records
// each API operation's steps on it). Scopes nest; not copyable.
class ProgressScope {
 public:
  explicit ProgressScope(Progress* progress);
  ~ProgressScope();
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;

 private:
  Progress* previous_;
};

// What the engine runs on. Everything that touches the OS and that a test may want to control
// is here; the pointers must outlive the Engine.
struct EngineEnv {
  std::string home;  // $PGBRANCH_HOME
  ProcessRunner* runner = nullptr;
  const Clock* clock = nullptr;
  PortProbe* ports = nullptr;
  Progress* progress = nullptr;  // may be null
  // Set (e.g. by a SIGINT handler) to interrupt what the engine is doing: the operation in
  // progress undoes its steps and fails with Cancelled. May be null.
  const CancelToken* cancel = nullptr;
  // Open a home whose catalog is missing or empty although its pool holds data, with a new
  // empty catalog: only for `catalog restore` and `doctor --adopt`, which rebuild it.
  bool allow_lost_catalog = false;
};

// The default $PGBRANCH_HOME: $PGBRANCH_HOME if set, /var/lib/pgbranch for root, else
// ~/.pgbranch.
std::string DefaultHome();

struct InitOptions {
  std::optional<std::string> image;        // --image FILE
  std::optional<uint64_t> size_bytes;      // --size, with --image
  std::optional<std::string> fs;           // --fs btrfs|xfs, with --image
  std::optional<std::string> btrfs_dir;    // --btrfs DIR
  std::optional<std::string> zfs_dataset;  // --zfs POOL/DATASET
  std::optional<std::string> reflink_dir;  // --reflink DIR
  std::optional<std::string> copy_dir;     // --copy DIR
  std::optional<std::string> port_range;   // --port-range FIRST-LAST
  std::optional<std::string> os_user;      // --os-user NAME
};

// An SQL script and the name it came by (a --transform file).
struct NamedSql {
  std::string name;
  std::string sql;
};

struct ProjectCreateOptions {
  std::string runtime = "native";            // --runtime native|docker|podman
  std::string image;                         // --image IMG (containers)
  std::optional<int> pg_version;             // --pg-version N (containers: pgbranch/postgres:N)
  std::string pg_bin;                        // --pg-bin DIR; empty: find one (native)
  std::optional<int> port;                   // --port for main
  std::string listen_address = "127.0.0.1";  // --listen
  // Logical load (`--from-dump FILE`): a pg_dump archive in custom or directory format,
  // restored into main's `postgres` database by the project's own pg_restore with
  // `restore_jobs` parallel jobs, then each of `transforms` (SQL files, e.g. masking) run by
  // psql in one transaction, in order — all before main's first snapshot, so no branch ever
  // sees the data unmasked. Any failure undoes the whole project create (nothing half-loaded
  // is left as main); a crash leaves it to `doctor --fix`, like any create.
  std::string from_dump;
  int restore_jobs = 2;
  std::vector<std::string> transforms;
  // Physical copy (`--from-server URI`, a libpq URI or keyword string): pg_basebackup with
  // the WAL streamed into main's volume, from a server of the project's major version (refused
  // before anything is copied otherwise). The password comes from the URI or from a password
  // file (PGPASSFILE, ~/.pgpass, or `passfile=`) and goes to the tools only through a private
  // passfile, never argv. Without `replica` main then starts as an independent primary and
  // `transforms` run in it before its first snapshot. With `replica` main stays a streaming
  // standby of the source (primary_conninfo, and `slot` if given — created on the source when
  // missing, dropped again by `project delete`), and `transforms` run in every branch cloned
  // from main before it is handed out, each of which starts as a primary of its own timeline.
  // Native runtime only.
  std::string from_server;
  std::string source_passfile;  // the caller's PGPASSFILE, if set
  // `--from-server URI --logical`: instead of the physical copy, pg_dump of the URI's database
  // (directory format, `restore_jobs` jobs; the source may be of this major or older) into a
  // scratch directory under $PGBRANCH_HOME/sources, then restored as --from-dump is.
  bool logical = false;
  bool replica = false;
  std::string slot;
  // `--adopt DATADIR`: an existing data directory of the project's major version, cleanly shut
  // down (or, with `adopt_stop`, stopped by pgbranch with pg_ctl stop -m fast), on the pool's
  // filesystem, becomes main's volume in place (Pool::AdoptVolume: a rename, no copy); its
  // settings are kept, pgbranch's added beside them, its bootstrap superuser becomes the
  // project's. `project delete --keep-data` hands it back. Native runtime only; not with the
  // other ways in or transforms.
  std::string adopt;
  bool adopt_stop = false;
};

struct BranchCreateOptions {
  std::optional<std::string> parent;  // "project/branch"; default project/main
  std::optional<int64_t> snapshot;    // clone this snapshot instead of taking a new one
  bool fast = false;                  // skip the CHECKPOINT on a running parent
  std::optional<int> port;
  // Point-in-time recovery target (pg/wal.h ParseRecoveryTarget): an ISO 8601 time, "N units
  // ago", or an LSN. The branch is the parent as it was then.
  std::optional<std::string> pitr;
  // The most new data the branch may write, in bytes, instead of the default (engine_space.cc);
  // refused where the pool cannot limit branches. Not with `pitr`.
  std::optional<uint64_t> max_size_bytes;
  // Lifetime, enforced by `serve` (Engine::ExpireBranches): deleted `ttl_s` seconds after it
  // is created, or after `idle_ttl_s` seconds without a client session. Unset: no limit.
  std::optional<int64_t> ttl_s;
  std::optional<int64_t> idle_ttl_s;
  bool protect = false;                       // --protect: as `branch protect` right away
  std::map<std::string, std::string> labels;  // --label key=value (ValidateLabel)
};

// A filter on labels (`branch list --label`, GET .../branches?label=): each of "key=value",
// or "key" for any value; a branch matches when it carries all of them. ParseLabelFilter is
// InvalidArgument for a malformed label.
struct LabelFilter {
  std::vector<std::pair<std::string, std::optional<std::string>>> wanted;
  bool Matches(const std::map<std::string, std::string>& labels) const;
};
Result<LabelFilter> ParseLabelFilter(const std::vector<std::string>& wanted);

// `branch set`: what changes on a branch; what is unset stays as it is.
struct BranchChanges {
  std::optional<int64_t> ttl_s;       // expire this long from now
  std::optional<int64_t> idle_ttl_s;  // expire after this long without sessions
  bool clear_ttl = false;             // --no-ttl: neither limit any more
  std::map<std::string, std::string> add_labels;
  std::vector<std::string> remove_labels;
};

// What `serve` found when it looked for expired branches (Engine::ExpireBranches).
struct Expiry {
  std::string branch;  // "demo/pr-7"
  std::string
      reason;  // "its TTL ended at 2026-12-03T08:00:00.000Z", "idle for 2h05m (idle TTL 2h)"
  bool deleted = false;
  std::string kept_because;  // why not deleted: "it is protected", "it has child branches (...)"
};

// The span of time a branch can be recovered to (`wal info`, `status`).
struct WalWindow {
  std::string from_time;      // ISO 8601 UTC: the oldest base's time bound
  std::string from_lsn;       // "0/3000060"
  int64_t from_snapshot = 0;  // the base snapshot
  std::string to;             // "now" (a running branch), else the newest archived WAL's time
};

// A branch's WAL archive.
struct WalInfo {
  std::string branch;  // "demo/main"
  std::string archive_dir;
  size_t segments = 0;
  uint64_t bytes = 0;                                                // every file in the archive
  std::string oldest_segment, oldest_at, newest_segment, newest_at;  // names, ISO 8601 mtimes
  bool running = false;
  std::optional<WalWindow> window;  // unset: no snapshot to recover from
};

struct WalCleanupReport {
  std::vector<std::string> removed;  // segment names (or, with dry_run, that would be)
  uint64_t removed_bytes = 0;
  size_t kept_for_window = 0;     // old enough, but needed from the oldest base on
  std::string keep_from_segment;  // the first segment the window needs; empty: no window
  int64_t oldest_base_snapshot = 0;
};

struct ResetOptions {
  std::optional<int64_t> snapshot;  // a snapshot of the branch or of its parent
  bool fast = false;
  bool force = false;  // reset a protected branch too
  // `branch rebase`: the same, recorded as a rebase (event "rebase"), without `snapshot`.
  bool rebase = false;
};

struct SnapshotInfo {
  int64_t id = 0;
  std::string branch;  // "demo/main": whose data it holds
  std::string label;
  bool implicit = false;                  // made by branch create/reset
  std::string created_at;                 // ISO 8601 UTC
  std::optional<uint64_t> size_bytes;     // exclusive bytes: what deleting it would free
  std::optional<uint64_t> logical_bytes;  // size of the data it holds
  std::vector<std::string> dependents;    // branches cloned from it ("demo/dev")
  std::string name;                       // its name in the pool
};

// A snapshot schedule (`pgbranch schedule`), as `schedule list` shows it.
struct ScheduleInfo {
  int64_t id = 0;
  std::string branch;                // "demo/main": whose snapshots it takes
  std::string kind;                  // "snapshot" or "refresh"
  std::string cron;                  // crontab(5), UTC (common/cron.h)
  std::string source;                // refresh: what it loads, for people; else empty
  std::optional<int64_t> keep;       // keeps at most this many of its snapshots
  std::optional<int64_t> max_age_s;  // and none older than this
  std::string created_at;
  std::string last_run;     // the slot it last ran for, ISO 8601 UTC; empty: never
  std::string last_result;  // "snapshot 12", or that run's error
  std::string next_run;     // the next slot, ISO 8601 UTC
};

struct ScheduleOptions {
  std::string snapshot_cron;         // --snapshot "0 */6 * * *"
  std::optional<int64_t> keep;       // --keep N (>= 1)
  std::optional<int64_t> max_age_s;  // --max-age 7d
  // Or `--refresh CRON` (main only, not a replica project): each run is a `project refresh`
  // from `source.from_dump` (the file at that path then, e.g. a nightly dump) or
  // `source.from_server` (with `source.logical`), with `source.transforms` (paths, read at
  // each run). A server's password is read now (the URI, source.source_passfile, ~/.pgpass)
  // and kept in a private file until the schedule is removed. Exactly one of the two crons.
  std::string refresh_cron;
  ProjectCreateOptions source;
};

// One schedule that was due when `serve` looked (Engine::RunDueSchedules).
struct ScheduleRun {
  int64_t schedule_id = 0;
  std::string branch;
  std::string slot;    // the slot it ran for (one run, however many slots were missed)
  std::string result;  // "snapshot 12", "refreshed main", or the error
  bool ok = false;
  std::vector<int64_t> removed;   // snapshots its retention deleted
  std::vector<std::string> kept;  // "snapshot 9: branch demo/dev made from it"
};

struct CleanupReport {
  std::vector<SnapshotInfo> removed;                       // or, with dry_run, that would be
  std::vector<std::pair<SnapshotInfo, std::string>> kept;  // and why
};

// One line of a branch's history (`pgbranch log`).
struct LogEntry {
  std::string at;    // ISO 8601 UTC
  std::string kind;  // created, reset, renamed, snapshot, branch
  std::string text;  // for people
};

// One finding of `pgbranch doctor`.
struct DoctorFinding {
  std::string check;   // "tools", "pool", "orphan volume", ...
  std::string status;  // "ok", "warn", "fail", "fixed"
  std::string detail;
};

struct DoctorOptions {
  // Repair what is safe: finish or undo interrupted operations, quarantine data no row refers
  // to, restart branches recorded running whose server is down, remove stale files.
  bool fix = false;
  // Rebuild catalog rows for volumes (live or quarantined) that hold a pgbranch data directory
  // but no row refers to (after a lost catalog): project, branch, parent where it can be read,
  // port, a new password.
  bool adopt = false;
  // Destroy quarantined volumes and snapshots older than `grace`.
  bool purge = false;
  std::chrono::hours grace{24 * 7};
};

// One operation as recorded (engine/operation.h), for `pgbranch operations` and the API.
struct OperationInfo {
  int64_t id = 0;
  std::string kind;    // "branch.create"
  std::string target;  // "demo/dev"
  std::string state;   // running, committed, done, failed, undone
  bool owner_alive = false;
  int64_t pid = 0;
  std::string command;
  std::string step;  // the current or last step
  std::vector<OperationStep> steps;
  std::string error;
  std::string started_at, updated_at, ended_at;
  size_t journal_left = 0;  // actions still to run (a failed undo, an unfinished commit)
};

// A copy of the catalog under $PGBRANCH_HOME/backups.
struct CatalogBackup {
  std::string path;
  std::string at;  // ISO 8601 UTC, from the file's time
  uint64_t bytes = 0;
  int schema_version = 0;
};

// How a branch's sizes are read: not at all; the last measurement kept in the catalog (measuring
// a volume never measured); or measured now (slow on big volumes: Pool::VolumeSpace walks the
// extents of every file), and kept.
enum class SizeMode { kNone, kCached, kMeasure };

struct BranchInfo {
  std::string project;
  std::string name;
  std::string parent;  // "demo/main", empty for a project's main branch
  // running/stopped as the runtime sees it ("exited" or "restarting": a container that stopped
  // or restarts without pgbranch asking); else the stored state (creating, failed, ...).
  std::string state;
  std::string runtime_detail;  // the runtime's words: "running", "exited (code 137)", ...
  int port = 0;
  std::string host;        // where it listens for clients
  std::string user;        // the superuser role
  std::string uri;         // with the password
  std::string masked_uri;  // password replaced by ****
  std::string created_at;  // ISO 8601 UTC
  std::optional<std::string> started_at;
  std::optional<int64_t> uptime_seconds;
  int pid = 0;
  std::optional<uint64_t> size_bytes;       // logical size of the data directory
  std::optional<uint64_t> exclusive_bytes;  // bytes only this branch holds in the pool
  // When the two sizes above were measured (ISO 8601 UTC): listings show the last measurement,
  // which `serve` renews in the background and SizeMode::kMeasure renews at once.
  std::optional<std::string> sizes_measured_at;
  std::string data_dir;
  std::string pg_version;
  std::string log_path;   // native: the server's log file; containers: empty (branch logs)
  std::string container;  // containers: the container's name
  std::optional<int64_t> snapshot_id;      // the snapshot it was cloned from
  std::string recovery_target;             // for a point-in-time branch, its target
  std::optional<WalWindow> window;         // with sizes: what it can be recovered to
  bool active = false;                     // the project route of `pgbranch serve` leads here
  std::optional<int64_t> suspend_after_s;  // effective (the branch's, else the project's)
  // When `serve` deletes it: at its TTL, or after its idle TTL without sessions (the time it
  // would be, counted from the last session `serve` saw). Unset: no limit.
  std::optional<std::string> expires_at;
  std::optional<int64_t> idle_ttl_s;
  std::optional<std::string> idle_expires_at;
  bool is_protected = false;
  std::map<std::string, std::string> labels;
  // Main of a replica project (`--from-server --replica`), while it runs: how far it trails the
  // source. Read from pg_stat_wal_receiver and the replay functions (docs 28.2.5 "Streaming
  // Replication", 9.27.4 "Recovery Control Functions").
  struct Replica {
    std::string source;       // "replicator@prod:5432": the source, without its password
    std::string slot;         // the replication slot streamed from, "" if none
    bool streaming = false;   // a WAL receiver is connected to the source now
    std::string receive_lsn;  // the last WAL received and flushed ("" before any)
    std::string replay_lsn;   // the last WAL replayed
    // Bytes between the end of WAL the source last reported (latest_end_lsn) and replay; 0
    // when nothing is received yet.
    uint64_t lag_bytes = 0;
    // Seconds since the last transaction replayed, when WAL is still waiting to be replayed or
    // the receiver is not streaming; 0 when replay has caught up with what was received.
    double lag_seconds = 0;
  };
  std::optional<Replica> replica;
};

// How to reach a branch as its superuser without its password in any command line: the libpq
// parameters (docs 34.1.2 "Parameter Key Words") that `pgbranch psql` and `branch env` hand to
// psql and to a shell, and a password file (docs 34.16 "The Password File") holding the one
// line for this branch. Never printed whole: the password stays in `passfile`.
struct BranchConnection {
  std::string ref;                    // "demo/dev"
  std::string state;                  // as BranchInfo::state: "running" when a client can connect
  std::string host;                   // PGHOST: the address the branch listens on for clients
  int port = 0;                       // PGPORT
  std::string user;                   // PGUSER: the project's superuser
  std::string database = "postgres";  // PGDATABASE
  std::string passfile;               // PGPASSFILE: $PGBRANCH_HOME/pgpass/branch-<id>, mode 0600
  // PGSSLROOTCERT, with PGSSLMODE=verify-full (docs 34.19.1): the CA that issued the branch's
  // certificate, so the client checks it talks to the branch, over TLS.
  std::string root_cert;
  std::string psql;  // the project's psql (native: in its pg_bin), else "psql" from PATH
};

// One libpq connection parameter that reaches a branch: its key word (docs 34.1.2 "Parameter
// Key Words"), the environment variable that sets it (34.15 "Environment Variables"), its
// value.
struct ConnectionParam {
  const char* keyword;
  const char* variable;
  std::string value;
};
// What reaches branch `c` as its superuser, the server verified by pgbranch's CA
// (sslmode=verify-full); the password stays in its passfile.
std::vector<ConnectionParam> ConnectionParams(const BranchConnection& c);
// The same as libpq key words (a service file's lines), and as the libpq environment (for
// psql, pg_restore, a shell).
std::vector<std::pair<std::string, std::string>> ConnectionKeywords(const BranchConnection& c);
std::vector<std::pair<std::string, std::string>> ConnectionEnv(const BranchConnection& c);

// Where a route through the proxy (`pgbranch serve`) leads, read from the catalog as it is at
// the call. The proxy logs in as the superuser over `socket_path` (trusted: only pgbranch's
// accounts reach that directory) after it has checked the client's password against
// `proxy_password`; any other role it relays to `host`:`port`, where the branch itself checks
// the role's password.
struct ProxyTarget {
  std::string project;
  std::string branch;
  int64_t project_id = 0;
  int64_t branch_id = 0;
  std::string state;        // the stored state: running, stopped, suspended, creating, ...
  std::string socket_path;  // <socket dir>/.s.PGSQL.<port>
  std::string host;         // where the branch listens for TCP clients
  int port = 0;
  std::string superuser;
  std::string proxy_password;  // the project's (ProjectRow::proxy_password)
  // Idle time after which `serve` suspends it: the branch's, else the project's; unset: never.
  std::optional<int64_t> suspend_after_s;
  std::optional<int64_t> idle_ttl_s;  // `serve` notes sessions on it (Engine::MarkBranchActive)
  bool active = false;                // the project route leads here
  std::string Ref() const { return project + "/" + branch; }
};

// What a branch's server is doing, for `serve`'s idle check (pg_stat_activity, docs 28.2.3).
struct BranchActivity {
  int client_sessions = 0;  // client backends other than the one asking
  int in_transaction = 0;   // of those, inside a transaction (or aborted in one)
  int wal_senders = 0;      // replication connections
};

// `pgbranch serve`'s record of itself: $PGBRANCH_HOME/serve.json, written when it listens and
// removed when it ends, so that `branch url --proxy`, `project url` and `doctor` know where the
// proxy is, whichever port it got.
struct ServeRecord {
  int64_t pid = 0;
  std::string proxy_host;  // where clients connect: "127.0.0.1"
  int proxy_port = 0;
  std::string sni_domain;  // TLS SNI routes are BRANCH.PROJECT.<sni_domain>
  std::string started_at;  // ISO 8601 UTC
  std::string api_url;     // the HTTP API and dashboard ("http://127.0.0.1:8432"); empty: none
  bool alive = false;      // the process `pid` is a pgbranch serve now
};

// A connection string for the proxy: a branch's (`branch url --proxy`) or a project's route
// (`project url`), which reaches its active branch.
struct ProxyUrl {
  std::string uri;         // with the project's proxy password
  std::string masked_uri;  // password replaced by ****
  std::string database;    // the route as the startup message's database ("demo/dev", "demo/@")
  bool serve_running = false;
};

// A bearer token of the API as listed (`pgbranch token list`); never the secret.
struct TokenInfo {
  std::string name;
  std::string scope;       // read, write, admin
  std::string created_at;  // ISO 8601 UTC
  std::optional<std::string> last_used_at;
};

// What `pgbranch token create` returns: the token, shown once ("pgbt_<id>_<43 characters>").
struct NewToken {
  TokenInfo info;
  std::string token;
};

// Whether a token of scope `have` may do what needs scope `need` (read < write < admin).
bool ScopeAllows(std::string_view have, std::string_view need);

struct ProjectInfo {
  std::string name;
  std::string runtime;
  std::string image;  // containers
  std::string pg_version;
  std::string pg_bin;
  std::string created_at;
  int branch_count = 0;
  std::string active_branch;               // where the project route leads ("main")
  std::optional<int64_t> suspend_after_s;  // the project's default; unset: never
};

struct PoolInfo {
  bool configured = false;
  std::string kind;
  std::string description;
  std::string why;  // how it was chosen ("explicit: pgbranch init --zfs ...", "automatic: ...")
  PoolCapabilities capabilities;
  std::optional<PoolUsage> usage;
};

struct StatusInfo {
  PoolInfo pool;
  std::string home;
  std::string os_user;  // who runs the servers
  PortRange ports;
  std::vector<ProjectInfo> projects;
  std::vector<BranchInfo> branches;
};

class Engine {
 public:
  // Opens (creating) $PGBRANCH_HOME and its catalog. Touches no pool and starts nothing.
  static Result<std::unique_ptr<Engine>> Open(const EngineEnv& env);
  ~Engine();

  // Chooses the pool and settings explicitly. With no pool option, sets up the embedded default
  // if none exists. Changing the pool is refused while projects exist.
  Result<StatusInfo> Init(const InitOptions& options) EXCLUDES(init_mu_);

  // Creates project `name` and its main branch (initdb + start). On success returns main.
  Result<BranchInfo> CreateProject(const std::string& name, const ProjectCreateOptions& options);
  // `project refresh`: new data for main of a project that does not follow its source — from
  // `options.from_dump`, or `options.from_server` (physical, or with `logical`), then
  // `options.transforms` — into a new volume, started on main's port with main's password, and
  // a "refresh" snapshot, before one transaction points main at it. Main is down from its stop
  // to the new start. Branches keep their data (the snapshots they were made from stay) until
  // `branch reset`/`branch rebase` moves them; the old volume goes once nothing needs it. A
  // failure or crash brings the old main back. FailedPrecondition for a replica project.
  Result<BranchInfo> RefreshProject(const std::string& name, const ProjectCreateOptions& options);
  Result<std::vector<ProjectInfo>> ListProjects();
  Result<ProjectInfo> GetProject(const std::string& name);
  // Deletes every branch (deepest first) and the project. Refused while branches other than
  // main exist, naming them, unless `force`. With `keep_data` (an adopted project only, else
  // InvalidArgument) main's data directory is handed back instead of destroyed: its
  // superuser's own password restored, shut down cleanly, pgbranch's files taken out, its owner
  // restored, and renamed back to where --adopt found it.
  Status DeleteProject(const std::string& name, bool force, bool keep_data = false);

  Result<BranchInfo> CreateBranch(const BranchRef& ref, const BranchCreateOptions& options);
  // Branches of `project` (all projects if empty), with their sizes as `sizes` says.
  Result<std::vector<BranchInfo>> ListBranches(const std::string& project, SizeMode sizes);
  Result<BranchInfo> GetBranch(const BranchRef& ref, SizeMode sizes = SizeMode::kCached);
  // Measures the volume of every settled branch whose last measurement is older than
  // `older_than` (or missing) and keeps the figures for listings; prunes those of volumes gone.
  // Returns how many were measured. A volume that vanishes meanwhile is skipped. Thread-safe;
  // `serve` calls it in the background so that listings stay fast with many branches.
  Result<int> MeasureSizes(std::chrono::seconds older_than);
  // The branch's connection parameters; (re)writes its password file first, atomically. The
  // file is removed with the branch. NotFound for an unknown branch.
  Result<BranchConnection> ConnectionOf(const BranchRef& ref);
  // Deletes a branch. Refused for a branch with children (naming them) unless `recursive`, for
  // main (delete the project instead), and for a protected branch (or, with `recursive`, a
  // protected child) unless `force`.
  Status DeleteBranch(const BranchRef& ref, bool recursive, bool force = false);
  // Replaces a branch's data with its parent's current data (a new snapshot and clone), or with
  // a snapshot of the branch or its parent, keeping its port and password, so its URI stays the
  // same. The branch is running afterwards. On failure the old data runs again.
  Result<BranchInfo> ResetBranch(const BranchRef& ref, const ResetOptions& options);
  // Renames a branch (not main) or a project; ports, passwords and URIs stay. The new
  // cluster_name shows after the next restart.
  Result<BranchInfo> RenameBranch(const BranchRef& ref, const std::string& new_name);
  Result<ProjectInfo> RenameProject(const std::string& name, const std::string& new_name);
  // The branch's history, newest first: creation, resets, renames, its snapshots and the
  // branches made from it.
  Result<std::vector<LogEntry>> BranchLog(const BranchRef& ref);

  // Snapshots. Create takes a consistent snapshot of a branch (CHECKPOINT + atomic snapshot,
  // or the backup API on pools without atomic snapshots).
  Result<SnapshotInfo> CreateSnapshot(const BranchRef& ref, const std::string& label, bool fast);
  // Snapshots of one branch, or of every branch.
  Result<std::vector<SnapshotInfo>> ListSnapshots(const std::optional<BranchRef>& ref);
  Result<SnapshotInfo> GetSnapshot(int64_t id);
  // Refused while branches were made from it (naming them) unless `recursive`, which deletes
  // them (and theirs) first.
  Status DeleteSnapshot(int64_t id, bool recursive);
  // Removes snapshots older than `days` days, of `ref` or of every branch; never one a branch
  // was made from (it says which it kept and why). With `dry_run`, only reports.
  Result<CleanupReport> CleanupSnapshots(const std::optional<BranchRef>& ref, int days,
                                         bool dry_run);

  // The WAL archive of one branch, or of every settled branch.
  Result<std::vector<WalInfo>> WalInfos(const std::optional<BranchRef>& ref);
  // Removes archived segments older than `days` days, except those a recovery from the
  // branch's oldest base snapshot needs to reach any point of its window. With `dry_run`, only
  // reports.
  Result<WalCleanupReport> CleanupWal(const BranchRef& ref, int days, bool dry_run);

  // The newest `limit` audit rows, oldest first.
  Result<std::vector<AuditRow>> Audit(int limit);

  // Checks tools, permissions, the pool, the operations record and orphans in every direction;
  // repairs, adopts and purges as `options` say (DoctorOptions), reporting "fixed". Never
  // touches an operation whose owner is alive, nor what such an operation made; never
  // destroys a data directory no row refers to: it is quarantined.
  Result<std::vector<DoctorFinding>> Doctor(const DoctorOptions& options);
  Result<std::vector<DoctorFinding>> Doctor(bool fix) {
    DoctorOptions options;
    options.fix = fix;
    return Doctor(options);
  }

  // The newest `limit` operations, newest first (`all`), or only those not ended.
  Result<std::vector<OperationInfo>> Operations(bool all, int limit);

  // Writes a copy of the catalog to $PGBRANCH_HOME/backups (SQLite's online backup API) and
  // keeps the newest kCatalogBackups copies. Returns the new copy.
  Result<CatalogBackup> BackupCatalog(const std::string& reason);
  Result<std::vector<CatalogBackup>> ListCatalogBackups();
  // Replaces the catalog with the backup at `path` (the current one, if readable, is backed up
  // first). Takes the home lock exclusively: no other command runs meanwhile. Rows the backup
  // lacks (branches made after it) are found by `doctor` and brought back by `doctor --adopt`.
  Status RestoreCatalog(const std::string& path);

  // Names the command whose operations the audit trail records next.
  void SetCommand(std::string command) EXCLUDES(command_mu_);
  // Writes audit rows kept in memory (rows the catalog refused when they were recorded).
  Status FlushAudit();
  Result<BranchInfo> StartBranch(const BranchRef& ref);
  // The last `tail_lines` lines of the branch's server log (native: its log file; containers:
  // the engine's log of the container).
  Result<std::string> BranchLogs(const BranchRef& ref, int tail_lines);
  // `pgbranch image build`: builds an image for container projects (runtime/container.h
  // BuildImage), in scratch space under $PGBRANCH_HOME/tmp.
  Result<ImageInfo> BuildImage(ImageBuildOptions options);
  Result<BranchInfo> StopBranch(const BranchRef& ref);
  // Stops a branch as StopBranch does (WAL archived, a fast shutdown, data kept) but records it
  // `suspended`: `pgbranch serve` starts it again when a client connects (StartBranch). Called
  // by `branch suspend` and by `serve` for a branch idle past its suspend-after time.
  Result<BranchInfo> SuspendBranch(const BranchRef& ref);
  Result<BranchInfo> RestartBranch(const BranchRef& ref);

  // --- API tokens (engine_tokens.cc) ---

  // Makes token `name` (ValidateName's rules) with `scope` (read, write or admin): 256 random
  // bits, of which only the SHA-256 is stored. InvalidArgument for a bad name or scope,
  // AlreadyExists for a name in use. Thread-safe.
  Result<NewToken> CreateToken(const std::string& name, const std::string& scope);
  Result<std::vector<TokenInfo>> ListTokens();
  // NotFound for an unknown name.
  Status RevokeToken(const std::string& name);
  // The token `presented` is, if its secret matches the stored hash (compared in constant
  // time); records its use (at most once a minute). Unauthenticated for a malformed, unknown
  // or revoked token, saying no more. Thread-safe.
  Result<TokenInfo> AuthenticateToken(std::string_view presented);

  // --- The proxy (engine_proxy.cc) ---

  // Where a route leads: branch `branch` of `project`, or with nullopt the project's active
  // branch. NotFound naming what exists ("project demo has no branch x; its branches: main,
  // dev"). Makes the project's proxy password if it has none yet. Thread-safe; reads only.
  Result<ProxyTarget> ResolveRoute(const std::string& project,
                                   const std::optional<std::string>& branch);
  // Every branch that exists (settled or not), each as ResolveRoute would return it.
  Result<std::vector<ProxyTarget>> ProxyTargets();
  // `pgbranch use P/B`: the project route of P leads to B from the next connection on (kept in
  // the catalog, so it survives restarts of `serve`). With `terminate`, the client sessions of
  // the branch it led to before are ended (pg_terminate_backend). Returns that previous branch.
  Result<std::string> UseBranch(const BranchRef& ref, bool terminate);
  // The idle time after which `serve` suspends `ref` (or, with ref.branch empty, any branch of
  // the project that sets none): seconds, 0 never, nullopt to inherit / unset.
  Status SetSuspendAfter(const BranchRef& ref, std::optional<int64_t> seconds);
  // `branch set`: TTL, idle TTL and labels. InvalidArgument for a bad label or a negative or
  // too long (over kMaxDays) duration; nothing changes then. Returns the branch as it is now.
  Result<BranchInfo> SetBranch(const BranchRef& ref, const BranchChanges& changes);
  // `branch protect|unprotect`: a protected branch refuses delete, reset and expiry without
  // force. Main may be protected too (then `project delete` needs --force).
  Result<BranchInfo> ProtectBranch(const BranchRef& ref, bool protect);
  // Notes that `serve` saw a client session on the branch now: its idle TTL counts from here.
  Status MarkBranchActive(int64_t branch_id);
  // Deletes every branch past its TTL or idle TTL, as `serve` does each minute, and reports
  // each one found: deleted, or kept and why (protected, has child branches, main, busy in
  // another operation). Each deletion is an operation of its own ("branch.delete", audit
  // command "serve: expire P/B") and a kept one is logged by the caller; one failing does not
  // stop the others. Thread-safe.
  Result<std::vector<Expiry>> ExpireBranches() EXCLUDES(expiry_mu_);

  // Snapshot schedules (engine_schedules.cc). AddSchedule: InvalidArgument for a bad cron
  // expression (ParseCron's message), one that never runs, or keep/max-age out of range;
  // NotFound for an unknown branch. The first slot counted is the first after now.
  Result<ScheduleInfo> AddSchedule(const BranchRef& ref, const ScheduleOptions& options);
  // All schedules, or those of one project.
  Result<std::vector<ScheduleInfo>> ListSchedules(const std::string& project);
  // NotFound for an unknown id. The snapshots it made stay.
  Status RemoveSchedule(int64_t id);
  // Runs every due schedule once (common/cron.h DueRun: after downtime a schedule runs once,
  // not once per missed slot): a snapshot, then its retention, which deletes its own
  // snapshots beyond `keep` or older than `max_age` but never one a branch was made from
  // (kept, and said so). Each snapshot and deletion is an operation with command
  // "serve: schedule N". One failing does not stop the others; its error is recorded as the
  // schedule's last result, and the slot counts as run. Thread-safe.
  Result<std::vector<ScheduleRun>> RunDueSchedules();
  // The sessions on `ref`'s server now. Unavailable if it is not running.
  Result<BranchActivity> Activity(const BranchRef& ref);
  // The proxy's connection string for `ref` (branch.empty(): the project route).
  // FailedPrecondition if `serve` has never run in this home (no record to take its address
  // from). With `verify`, sslmode=verify-full and the CA (as `branch url --verify`).
  Result<ProxyUrl> ProxyUrlOf(const BranchRef& ref, bool verify);
  // The proxy's TLS key and certificate, issued by the home's CA for localhost, 127.0.0.1, ::1
  // and, per project P, "P.<sni_domain>" and "*.P.<sni_domain>" (the SNI routes), kept while
  // current (EnsureServerCertificate). Returns the directory holding server.crt and server.key.
  Result<std::string> ProxyCertificate(const std::string& sni_domain);
  // Before a suspended branch is started (by anyone: `resume`, `start`, serve's wake): writes
  // StartMarkerPath, which keeps `serve` from listening on the branch's port until the caller
  // removes it after the start; and if serve holds the port already (to wake the branch on a
  // client's connection), makes it let go (one connection that sends nothing) and waits, up
  // to 2 s, until the port is free. Returns the marker's path ("" for a branch not suspended).
  std::string PrepareSuspendedStart(const BranchRef& ref);
  // $PGBRANCH_HOME/locks/starting-<branch id>: present while a suspended branch starts.
  std::string StartMarkerPath(int64_t branch_id) const;
  // serve.json: written by `serve` (atomically), read by the others; nullopt if absent.
  Status WriteServeRecord(const ServeRecord& record);
  Result<std::optional<ServeRecord>> ReadServeRecord();
  Status RemoveServeRecord();
  std::string home() const { return env_.home; }

  // Pool usage, projects and every branch with its runtime state, size and uptime.
  Result<StatusInfo> GetStatus(SizeMode sizes = SizeMode::kCached);

  // The local certificate authority every branch's TLS certificate comes from (pg/tls.h
  // EnsureLocalCa), made under $PGBRANCH_HOME/tls at first use: clients verify branches with
  // sslmode=verify-full and sslrootcert=<its cert_path>. Errors as EnsureLocalCa, prefixed
  // "local certificate authority: ". Thread-safe.
  Result<LocalCa> CertificateAuthority();
  // `pgbranch ca import`: the CA in the PEM files `cert_path` (its certificate, then optionally
  // its chain) and `key_path` (its unencrypted key) becomes the home's (InstallCa), with no
  // other command running (the home lock, exclusive). `replaced`: where the CA before it went.
  // FailedPrecondition for a pair InstallCa refuses; NotFound for a missing file.
  Result<LocalCa> ImportCertificateAuthority(const std::string& cert_path,
                                             const std::string& key_path, std::string* replaced);

 private:
  explicit Engine(const EngineEnv& env);

  Result<PoolConfig> LoadPoolConfig();
  // Writes $PGBRANCH_HOME/pool.json: the pool and settings outside the catalog, so a lost
  // catalog is noticed and the pool found again (`catalog restore`, `doctor --adopt`).
  Status WriteHomeMarker();
  // Puts the settings pool.json holds into a new catalog that lacks them.
  Status RestoreSettingsFromMarker();
  // Reads kNaming into by_ids_, deciding it first where the home has none: "ids" while the home
  // has no project, "names" for one an older pgbranch filled. Called once, by Open.
  Status DecideNaming();
  Result<Pool*> RequirePool(bool create_default) EXCLUDES(init_mu_, open_mu_);
  Result<std::optional<OsUser>> ServerUser();
  // The account `project`'s servers run as: its own account (HasOwnOsUser), else ServerUser()
  // for native; the image's postgres uid/gid for containers. FailedPrecondition if its own
  // account is gone.
  Result<std::optional<OsUser>> ServerUserFor(const ProjectRow& project);
  // `lookup()` (an OS account by name or id), or its success of the last kUserCacheAge under
  // `key`: a lookup reads /etc/passwd, /etc/group and asks systemd's userdb (some 70 system
  // calls), and a listing asks the same few accounts once per branch. Thread-safe.
  Result<OsUser> CachedOsUser(const std::string& key, const std::function<Result<OsUser>()>& lookup)
      EXCLUDES(users_mu_);
  // True when each new native project gets its own OS account (engine_users.cc): pgbranch runs
  // as root and no `init --os-user` was chosen.
  Result<bool> WantsOwnOsUser();
  // "pgb-<HomeTag(home)>-<project_id>": the name of a project's own account (at most 32
  // characters, useradd's limit, for any id below 10^19).
  std::string ProjectOsUserName(int64_t project_id) const;
  // Makes `project`'s own account (useradd --system --user-group, no home, no login shell), or
  // takes over the one a create cut short made, and records its uid/gid in the project's row
  // and in `project`. AlreadyExists if another project runs as that account.
  Result<OsUser> CreateProjectOsUser(ProjectRow& project);
  // Removes `project`'s own account (by the uid recorded and by the name of its id; only
  // accounts named as this home's). OK if there is none. Its processes must be gone.
  Status RemoveProjectOsUser(const ProjectRow& project);
  // userdel --force `name`; OK if it does not exist.
  Status RemoveOsUser(const std::string& name);
  // The owner of `data_dir` when it is one of this home's project accounts (doctor --adopt
  // keeps an adopted project on it), else nullopt.
  std::optional<OsUser> OwnAccountOf(const std::string& data_dir);
  // doctor: projects whose account is gone (fail) and accounts of this home that belong to no
  // project (fail; removed with `fix`, unless a volume, snapshot or quarantined volume in
  // `pool` belongs to it: that data's account stays for 'doctor --adopt').
  void CheckProjectOsUsers(Pool& pool, bool fix, std::vector<DoctorFinding>& out);
  // The runtime `project` runs on (made on first use).
  Runtime& RuntimeFor(const ProjectRow& project);
  Runtime& RuntimeOfKind(const std::string& kind) EXCLUDES(init_mu_);
  // pgbranch's private socket directory for `project`'s servers: $HOME/run for native projects
  // sharing one account, $HOME/sockets/<project id> for the others (owned by the project's
  // account or the image's postgres uid, 0700).
  std::string SocketDir(const ProjectRow& project) const;
  // The container of `branch`: ContainerName() of the home and the ids (or the names, kNaming).
  std::string ContainerOf(const ProjectRow& project, const BranchRow& branch) const;
  // Runs initdb for `project` into `data_dir` through its runtime, then FinishInitDataDir.
  Status InitProjectDataDir(const ProjectRow& project, const std::string& data_dir,
                            const std::optional<OsUser>& os_user);
  // FailedPrecondition if spec.data_dir was made by another major version (its PG_VERSION)
  // than `major`, which `binaries` run ("image X now holds", "the binaries in DIR are").
  Status CheckDataDirVersion(const InstanceSpec& spec, int major, const std::string& binaries);
  // `failure` of a container start, or a clearer cause: the project's image now holds another
  // major version than the data directory's.
  Status ExplainStartFailure(const ProjectRow& project, const InstanceSpec& spec, Status failure);
  Result<PortRange> LoadPortRange();
  Result<ProjectRow> LoadProject(const std::string& name);
  Result<BranchRow> LoadBranch(const ProjectRow& project, const std::string& name);

  // Operations (engine_ops.cc). Runs `body` as operation `kind` on `target`: records it, binds
  // the cancel token and the audit scope, and afterwards runs its journal: the undo (newest
  // first, uncancellable) if `body` failed before the commit, the finish actions after it.
  // Ends the record. Returns `body`'s status, with what cleanup could not do appended.
  Status RunOperation(const std::string& kind, const std::string& target,
                      std::optional<int64_t> project_id, std::optional<int64_t> branch_id,
                      const std::function<Status(Operation&)>& body) EXCLUDES(command_mu_);
  // Runs one journal action (operation.h Action). REQUIRES: whatever branch the action names
  // is not being worked on by anyone else (its lock held, or its operation dead).
  Status RunAction(const Action& action);
  // The home lock, shared, for an operation or a read that needs the pool and catalog stable.
  Result<LockHandle> HomeShared(const std::string& holder);
  // What lock waiters read about the calling thread's work.
  std::string Holder(const Operation* op, const std::string& what) const;

  // A branch loaded under its own lock (held as long as the result lives); the project lock is
  // taken only while loading and released before returning.
  struct LockedBranch {
    ProjectRow project;
    LockHandle lock;
    BranchRow row;
  };
  // NotFound for an unknown project or branch; with `require_settled`, FailedPrecondition
  // unless the branch is running or stopped (not creating, deleting or failed).
  Result<LockedBranch> LockBranch(const BranchRef& ref, bool require_settled, const Operation* op);
  // Branch locks of `ids`, in ascending id order (locks.h). REQUIRES: no branch lock held.
  Result<std::vector<LockHandle>> LockBranches(const ProjectRow& project, std::vector<int64_t> ids,
                                               const Operation* op);
  Result<LockHandle> LockProjectOf(const ProjectRow& project, const Operation* op);

  Result<InstanceSpec> Spec(const ProjectRow& project, const BranchRow& branch);
  ConnParams AdminParams(const ProjectRow& project, const BranchRow& branch) const;
  // The runtime's view of the branch's server.
  Result<InstanceStatus> InspectBranch(const ProjectRow& project, const BranchRow& branch);
  // Makes the directories a server needs before it starts (the socket directory, its WAL
  // archive), owned by its OS user, and the TLS key and certificate in its data directory
  // unless it has a current one (pg/tls.h EnsureServerCertificate: for localhost, 127.0.0.1
  // and the host of its URI); returns that owner.
  Result<std::optional<FileOwner>> PrepareStart(const ProjectRow& project, const BranchRow& branch,
                                                const InstanceSpec& spec);
  InstanceConfig ConfigFor(const ProjectRow& project, const BranchRow& branch) const;
  // ResolveRoute's and ProxyTargets' answer for `row`; `active` is where the project route leads.
  ProxyTarget TargetOf(const ProjectRow& project, const BranchRow& row,
                       const BranchRow* active) const;
  // StopBranch and SuspendBranch: the stored state afterwards is `state`.
  Result<BranchInfo> StopBranchAs(const BranchRef& ref, const std::string& state);
  std::string LogPath(const BranchRow& branch) const;
  std::string PassfilePath(const BranchRow& branch) const;
  Status CheckPoolSpace(Pool& pool);
  // engine_lifetime.cc: a new branch's TTL, idle TTL, protection and labels, checked and
  // written into `row`; the same fields into a BranchInfo; and the
  // refusal of `doing` on protected rows unless `force`.
  Status ApplyLifetime(const BranchCreateOptions& options, BranchRow* row);
  void DescribeLifetime(const BranchRow& branch, BranchInfo* info);
  // engine_restore.cc: checks a --from-dump load before anything is made (the dump is
  // readable, pg_restore of the project's major reads the archive) and returns the pg_restore
  // to use; then, into a running main, restores it.
  Result<std::string> CheckDumpLoad(const ProjectRow& project, const ProjectCreateOptions& options);
  Status LoadDump(const ProjectRow& project, const BranchRow& main, const std::string& pg_restore,
                  const std::string& dump, int jobs);
  // engine_source.cc. The client tools' directory for `project` (the server's for native
  // projects, the host's of the same major for containers); NotFound naming `what` needs which
  // of `tools` when one is missing.
  Result<std::string> ClientBinDir(const ProjectRow& project, const std::string& what,
                                   const std::vector<std::string>& tools);
  // --transform files read now (InvalidArgument for a missing file or a directory), so what
  // runs later is what was given.
  Result<std::vector<NamedSql>> ReadTransforms(const std::vector<std::string>& files);
  // Runs each transform in `branch` (running) through psql in one transaction, stopping at the
  // first error: Internal with psql's message naming the transform.
  Status RunTransforms(const ProjectRow& project, const BranchRow& branch,
                       const std::vector<NamedSql>& transforms);
  // The transforms a clone of `snapshot` must run before it is handed out: a replica project's,
  // for a clone straight from its main; none otherwise.
  Result<std::vector<NamedSql>> CloneTransforms(const ProjectRow& project,
                                                const SnapshotRow& snapshot);
  // --from-server, before anything is made: the options, the tools, the source (reachable, the
  // project's major version); fills the project's source fields. Then, in the create
  // operation, the copy into main's empty volume (pg_basebackup) made into a pgbranch data
  // directory, and once main runs, the copy's bootstrap superuser as the project's.
  Result<SourceServer> CheckServerCopy(ProjectRow* project, const ProjectCreateOptions& options);
  Status CopyFromServer(const ProjectRow& project, const BranchRow& main,
                        const SourceServer& source, const std::optional<OsUser>& os_user,
                        Operation& op);
  Status AdoptCopiedSuperuser(ProjectRow* project, const BranchRow& main);
  // --adopt (engine_adopt.cc). CheckAdopt, before anything is made: the directory's version,
  // layout and clean shutdown; fills adopted_from/adopted_owner and the WAL segment size.
  // AdoptDataDir, in the create operation: the rename into the pool (its undo hands it back),
  // the owner, pgbranch's files. TakeOverAdoptedSuperuser, once main runs: the bootstrap
  // superuser as the project's, its password verifier saved (AdoptedPasswordPath), pgbranch's
  // set. RestoreAdoptedPassword puts the saved one back (starting main if it is not running);
  // PrepareHandBack does that and stops main cleanly; HandBackVolume undoes pgbranch's files
  // and owner and renames the volume back. Both run in the journal's hand-back-branch
  // (DestroyBranch), after project delete --keep-data committed; each is idempotent.
  std::string AdoptedPasswordPath(const ProjectRow& project) const;
  Status CheckAdopt(ProjectRow* project, const ProjectCreateOptions& options);
  Status AdoptDataDir(const ProjectRow& project, const BranchRow& main,
                      std::optional<FileOwner> owner, Operation& op);
  Status TakeOverAdoptedSuperuser(ProjectRow* project, const BranchRow& main, Operation& op);
  Status RestoreAdoptedPassword(const ProjectRow& project, const BranchRow& main);
  Status PrepareHandBack(const ProjectRow& project, const BranchRow& main);
  Status HandBackVolume(const ProjectRow& project, const std::string& volume);
  // Stops `row` (step "stop") before its data is replaced (reset, rebase, refresh), with the
  // undo that starts the old data again if it was running.
  Status StopForReplacement(const ProjectRow& project, const BranchRow& row, StopMode mode,
                            Operation& op);
  // The data of a new main volume (`main.volume`, created and empty), shared by project create
  // and refresh: the copy, dump or initdb, pgbranch.conf, the start, the restore and the
  // transforms.
  Status FillMainVolume(ProjectRow* project, const BranchRow& main,
                        const std::optional<SourceServer>& source, const std::string& pg_restore,
                        const std::vector<NamedSql>& transforms,
                        const std::optional<OsUser>& os_user, const ProjectCreateOptions& options,
                        Operation& op);
  // --from-server --logical, in the create operation: pg_dump of the source into `dir`.
  Status DumpFromServer(const ProjectRow& project, const SourceServer& source,
                        const std::string& dir, int jobs);
  // $PGBRANCH_HOME/sources/<project id>: the private passfile a replica main's WAL receiver
  // reads (mode 0700/0600, the server's account).
  std::string SourceDir(const ProjectRow& project) const;
  // A replica project's main follows the source; every other branch is a primary.
  std::optional<StandbySettings> StandbyFor(const ProjectRow& project,
                                            const BranchRow& branch) const;
  // `project delete` of a project whose slot pgbranch created on the source: drops it there
  // (pg_receivewal --drop-slot), so the source does not keep WAL for it forever. Best effort:
  // a failure is noted with the SQL to run by hand, and the delete goes on.
  void DropCreatedSlot(const ProjectRow& project);
  // Fills info->replica for a replica main (its lag when it runs).
  void DescribeReplica(const ProjectRow& project, const BranchRow& branch, BranchInfo* info);
  // engine_schedules.cc: a schedule as listed; a snapshot made by a schedule (`schedule_id`
  // recorded with it, in one transaction); the retention of a schedule after its run.
  Result<ScheduleInfo> DescribeSchedule(const ScheduleRow& row);
  Result<SnapshotInfo> CreateSnapshotOf(const BranchRef& ref, const std::string& label, bool fast,
                                        std::optional<int64_t> schedule_id);
  void ApplyRetention(const ScheduleRow& row, TimePoint now, ScheduleRun* run);
  // A refresh schedule's source (ScheduleRow::source JSON), checked now: the dump exists, the
  // transforms read, the server answers (its password then saved in a private file under
  // ScheduleSecretsDir, named in the JSON as "passfile"). That directory,
  // $PGBRANCH_HOME/sources/schedules/<project id>, goes with the project.
  std::string ScheduleSecretsDir(const ProjectRow& project) const;
  Result<std::string> RefreshScheduleSource(const ProjectRow& project,
                                            const ScheduleOptions& options);
  // One run of a refresh schedule: RefreshProject from its stored source. The run's result.
  Result<std::string> RunRefreshSchedule(const ScheduleRow& row, const std::string& project);
  Status CheckNotProtected(const ProjectRow& project, const std::vector<BranchRow>& rows,
                           const std::string& doing, bool force);
  // Reserves `row` (state creating, a free port; its parent and, if set, its origin snapshot)
  // in the catalog, in the same transaction as the undo that removes it (op).
  Status ReserveBranch(const ProjectRow& project, BranchRow* row, std::optional<int> port,
                       Operation& op);
  // "branch demo/x already exists" with what to do when an interrupted create left it.
  Status BranchExists(const ProjectRow& project, const BranchRow& existing);
  // Takes a snapshot of `branch` consistent for PostgreSQL: on atomic pools after a CHECKPOINT
  // if it runs (not with `fast`); on other pools bracketed by pg_backup_start/pg_backup_stop if
  // it runs. Fills `snapshot` (not yet in the catalog); its undo is in `op`'s journal first.
  Status TakeSnapshot(const ProjectRow& project, const BranchRow& branch, bool fast,
                      const std::string& label, bool implicit, Operation& op,
                      SnapshotRow* snapshot);
  // Clones `snapshot` into row->volume, writes the branch's configuration, starts it with
  // row->password set. Each step's undo goes into `op`'s journal before the step.
  // With `recovery`, the clone starts in archive recovery and is promoted at the target
  // before its password is set.
  Status CloneFromSnapshot(const ProjectRow& project, const SnapshotRow& snapshot, BranchRow* row,
                           Operation& op, const RecoverySettings* recovery = nullptr);
  // In one transaction: records `snapshot` if new (id 0), points `row` at it, marks it running,
  // notes `event` in its history, runs `also` and commits `op` with `finish` to run afterwards.
  Status CommitClone(BranchRow* row, SnapshotRow* snapshot, const EventRow& event, Operation& op,
                     std::vector<Action> finish = {},
                     const std::function<Status()>& also = nullptr);
  Result<SnapshotInfo> DescribeSnapshot(const SnapshotRow& snapshot, bool with_sizes);
  Result<PoolConfig> ChooseDefaultPool(std::string* why);
  EventRow Event(const BranchRow& branch, std::string kind, std::string detail) const;
  // Starts the branch's server and waits until it accepts a connection; with `set_password`
  // (a fresh clone or initdb) sets the branch's password on that connection. With `op` (a new
  // instance), its stop is in the journal before it starts.
  Status StartInstance(const ProjectRow& project, const BranchRow& branch, bool set_password,
                       Operation* op);
  Status StopInstance(const ProjectRow& project, const BranchRow& branch, StopMode mode);
  // Stops anything running on `volume` (natively: a postgres whose working directory it is)
  // and destroys it.
  Status DestroyVolumeSafely(const std::string& volume);
  // The spec of a volume no branch row describes (an orphan, a journal's): its name and data
  // directory, no log file; a native server by default.
  static InstanceSpec BareVolumeSpec(Pool& pool, const std::string& volume);
  // Destroys branch `id` for good: server, container, volume, its snapshots, row, WAL archive,
  // log, lock file. Idempotent (a missing row is done). REQUIRES: the branch is marked
  // deleting and nobody else works on it. With `hand_back` (main of an adopted project, project
  // delete --keep-data) the volume is not destroyed but handed back (HandBackVolume), after its
  // snapshots are gone.
  Status DestroyBranch(int64_t branch_id, bool hand_back = false);
  // Destroys the implicit snapshots of `project` that no branch uses any more (explicit ones
  // stay until a user deletes them). Each row goes first, only if still unused (a concurrent
  // clone that recorded a use wins); one storage still holds on to (ZFS: a retired volume
  // cloned from it) is left for a later sweep.
  Status SweepImplicitSnapshots(int64_t project_id);
  // Destroys the pool snapshot `name` and its row, unless a branch row uses it.
  Status DestroySnapshotIfUnused(const std::string& volume, const std::string& name);
  // Deletes `snap`'s row only if no branch uses it (atomically), then the pool snapshot; if
  // storage still holds on to it, the row comes back with its id. `dropped` says if it went.
  Status DropSnapshot(const SnapshotRow& snap, bool* dropped);
  Result<std::vector<BranchRow>> Descendants(const BranchRow& branch);
  // `cached`: the catalog's measured sizes, when the caller read them all at once (a listing).
  Result<BranchInfo> Describe(const ProjectRow& project, const BranchRow& branch, SizeMode sizes,
                              const std::map<std::string, VolumeSizeRow>* cached = nullptr);
  // Measures `volume` now and keeps the figures; nullopt (logged) if the pool cannot say.
  std::optional<VolumeSizeRow> MeasureVolume(Pool& pool, const std::string& volume);
  Status Timed(std::string_view step, const std::function<Status()>& body);
  void Note(std::string_view message);
  // The calling thread's ProgressScope, else EngineEnv::progress (may be null).
  Progress* CurrentProgress() const;
  // The commit of a delete: locks `rows` (branches in destroy order, deepest first) and
  // `also_lock`, marks the rows deleting and commits `op` with the destroy of each, `also`,
  // then a sweep of implicit snapshots. The destroying happens after, as the finish. The row
  // `hand_back` (an adopted main) is handed back instead of destroyed (DestroyBranch).
  // REQUIRES: the project lock.
  Status MarkForDeletion(const ProjectRow& project, const std::vector<BranchRow>& rows,
                         std::vector<int64_t> also_lock, Operation& op, std::vector<Action> also,
                         std::optional<int64_t> hand_back = std::nullopt);
  // FailedPrecondition if a point-in-time branch of `parent` is being made (it reads the
  // parent's current WAL archive and snapshots until it commits).
  Status CheckNoPitrInFlight(const ProjectRow& project, const BranchRow& parent,
                             const std::string& what);

  // WAL archive and point-in-time recovery (engine_wal.cc).
  struct PitrBase {
    SnapshotRow snapshot;
    uint64_t lsn = 0;
    TimePoint time;
  };
  // $HOME/wal/<project id> (or wal/<project name> in a home named by names, kNaming): every
  // WAL archive of `project`'s branches, and all of it a container of the project sees.
  std::string ArchiveRoot(const ProjectRow& project) const;
  // ArchiveRoot/<branch id>/<volume>: the archive of the branch's current volume.
  std::string ArchiveDir(const ProjectRow& project, const BranchRow& branch) const;
  Status EnsureArchiveDir(const ProjectRow& project, const BranchRow& branch,
                          const std::optional<FileOwner>& owner);
  // Fills snapshot->wal_lsn/wal_time_us: from `conn` on a running branch, else from
  // pg_controldata after a clean shutdown (left empty otherwise).
  Status RecordWalPosition(const ProjectRow& project, const BranchRow& branch, Connection* conn,
                           SnapshotRow* snapshot);
  // Writes a commit record, switches WAL and waits until the finished segment is archived.
  // Returns its name.
  Result<std::string> ArchiveCurrentWal(const ProjectRow& project, const BranchRow& branch);
  // Snapshots a point-in-time recovery of `branch` can start from, oldest first.
  Result<std::vector<PitrBase>> PitrBases(const BranchRow& branch);
  // `running`: as the runtime sees the branch now (the window of a running one reaches now).
  Result<WalInfo> DescribeWal(const ProjectRow& project, const BranchRow& branch, bool running);
  Status WaitForPromotion(const ProjectRow& project, const BranchRow& branch,
                          const InstanceSpec& spec);
  // The checks of a point-in-time branch of `parent` at `target`: picks the base snapshot and
  // fills `recovery`. Changes nothing. REQUIRES: the parent's branch lock.
  Result<SnapshotRow> PlanPitr(const ProjectRow& project, const BranchRow& parent,
                               const RecoveryTarget& target, RecoverySettings* recovery);

  // Catalog loss, backups and adoption (engine_catalog.cc).
  // Whether $PGBRANCH_HOME shows signs of a pool with data (pool.json, an image, volumes).
  static bool HomeHasPool(const std::string& home, std::string* evidence);
  // Takes a backup when the newest is older than a day (called at open).
  void BackupCatalogIfDue();
  // doctor --adopt: rows for data directories no row refers to (volumes, then snapshots,
  // named after the branch their pgbranch.conf says they are of).
  Status AdoptVolumes(Pool& pool, bool fix, std::vector<DoctorFinding>* out);
  Status AdoptSnapshots(Pool& pool, bool fix, std::vector<DoctorFinding>* out);
  // doctor (engine_doctor.cc): interrupted operations (owner dead) finished or undone.
  Status RepairOperations(bool fix, std::vector<DoctorFinding>* out,
                          std::set<std::string>* in_flight_names);
  // Names (volumes, snapshots, archive paths) in the journals of operations not yet ended.
  Status CollectInFlight(std::set<std::string>* names);
  // Branches that operations not yet ended work on.
  Status CollectBusyBranches(std::set<int64_t>* ids);
  Status CheckArchives(const std::vector<BranchRow>& branches,
                       const std::vector<ProjectRow>& projects,
                       const std::set<std::string>& in_flight, bool fix,
                       std::vector<DoctorFinding>* out);
  Status CheckSocketLocks(const std::vector<BranchRow>& branches,
                          const std::map<int64_t, ProjectRow>& project_of, bool fix,
                          std::vector<DoctorFinding>* out);

  // Space limits (engine_space.cc): each branch's volume gets a limit on the new data it may
  // write and each main keeps headroom the branches cannot take, where the pool can (Pool::
  // SetSpaceLimit, ReserveSpace); elsewhere they do nothing. REQUIRES: the project lock.
  // Right after main's volume is made: reserves main's headroom.
  Status ReserveMainSpace(const BranchRow& main);
  // Right after a branch's volume is cloned, before its server starts: the limit of the volume
  // it replaces (a reset), else the default; renews main's headroom. ResourceExhausted when
  // the pool has no room for a branch beyond main's headroom.
  Status LimitBranchSpace(const ProjectRow& project, const BranchRow& row);
  // `branch create --max-size`: replaces the default limit of a new branch.
  Status SetBranchSpaceLimit(const BranchRow& row, uint64_t bytes);

 public:
  // The branch's space limit and usage as the pool holds them. NotSupported (saying why) where
  // the pool cannot limit branches.
  Result<SpaceLimit> BranchSpaceLimit(const BranchRef& ref);

 private:
  EngineEnv env_;
  AuditLog audit_;
  std::unique_ptr<ProcessRunner> runner_;  // audited, forwarding to env_.runner
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Locks> locks_;
  // kNaming is "ids". Set by Open before the engine is shared; read-only after.
  bool by_ids_ = true;
  Mutex command_mu_;
  std::string command_ GUARDED_BY(command_mu_);  // what the CLI runs, for records
  // ExpireBranches: why each due branch was last kept, so the audit trail says it once.
  Mutex expiry_mu_;
  std::map<std::string, std::string> expiry_kept_ GUARDED_BY(expiry_mu_);
  // CachedOsUser: each account found, by key, with when it was looked up.
  Mutex users_mu_;
  std::map<std::string, std::pair<std::chrono::steady_clock::time_point, OsUser>> users_
      GUARDED_BY(users_mu_);
  // Made on first use, from any thread.
  Mutex open_mu_;  // held while a pool is opened (mounted); taken before init_mu_
  Mutex init_mu_;
  std::map<std::string, std::unique_ptr<Runtime>> runtimes_ GUARDED_BY(init_mu_);  // by kind
  std::unique_ptr<Pool> pool_ GUARDED_BY(init_mu_);
  // Pools `Init` replaced (another pool chosen while no project exists). Other threads may still
  // use the Pool* RequirePool gave them, so a replaced pool lives as long as the engine.
  std::vector<std::unique_ptr<Pool>> retired_pools_ GUARDED_BY(init_mu_);
};

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_ENGINE_H_
