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
// Messages in returned Status are causes ("parent demo/x does not exist"); the caller prefixes
// "<operation> <object>: ". An Engine is not thread-safe; use one per thread or process.

#ifndef PGBRANCH_ENGINE_ENGINE_H_
#define PGBRANCH_ENGINE_ENGINE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/file_lock.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "common/undo.h"
#include "engine/names.h"
#include "engine/ports.h"
#include "pg/client.h"
#include "pg/cluster.h"
#include "runtime/runtime.h"
#include "state/catalog.h"
#include "storage/pool.h"

namespace pgb {

// Receives progress of long operations, for the CLI's "▸ Checkpoint 0.03s" lines.
class Progress {
 public:
  virtual ~Progress() = default;
  // A step finished successfully after `took`.
  virtual void Step(std::string_view name, std::chrono::nanoseconds took) = 0;
  // Something the user should know ("created pool ...").
  virtual void Note(std::string_view message) = 0;
};

// What the engine runs on. Everything that touches the OS and that a test may want to control
// is here; the pointers must outlive the Engine.
struct EngineEnv {
  std::string home;  // $PGBRANCH_HOME
  ProcessRunner* runner = nullptr;
  const Clock* clock = nullptr;
  PortProbe* ports = nullptr;
  Progress* progress = nullptr;  // may be null
};

// The default $PGBRANCH_HOME: $PGBRANCH_HOME if set, /var/lib/pgbranch for root, else
// ~/.pgbranch.
std::string DefaultHome();

struct InitOptions {
  std::optional<std::string> image;       // --image FILE
  std::optional<uint64_t> size_bytes;     // --size, with --image
  std::optional<std::string> btrfs_dir;   // --btrfs DIR
  std::optional<std::string> port_range;  // --port-range FIRST-LAST
  std::optional<std::string> os_user;     // --os-user NAME
};

struct ProjectCreateOptions {
  std::string pg_bin;                        // --pg-bin DIR; empty: find one
  std::optional<int> port;                   // --port for main
  std::string listen_address = "127.0.0.1";  // --listen
};

struct BranchCreateOptions {
  std::optional<std::string> parent;  // "project/branch"; default project/main
  bool fast = false;                  // skip the CHECKPOINT on a running parent
  std::optional<int> port;
};

struct BranchInfo {
  std::string project;
  std::string name;
  std::string parent;  // "demo/main", empty for a project's main branch
  std::string state;   // running/stopped as the runtime sees it; else the stored state
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
  std::string data_dir;
  std::string pg_version;
  std::string log_path;
};

struct ProjectInfo {
  std::string name;
  std::string runtime;
  std::string pg_version;
  std::string pg_bin;
  std::string created_at;
  int branch_count = 0;
};

struct PoolInfo {
  bool configured = false;
  std::string kind;
  std::string description;
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
  Result<StatusInfo> Init(const InitOptions& options);

  // Creates project `name` and its main branch (initdb + start). On success returns main.
  Result<BranchInfo> CreateProject(const std::string& name, const ProjectCreateOptions& options);
  Result<std::vector<ProjectInfo>> ListProjects();
  Result<ProjectInfo> GetProject(const std::string& name);
  // Deletes every branch (deepest first) and the project. Refused while branches other than
  // main exist, naming them, unless `force`.
  Status DeleteProject(const std::string& name, bool force);

  Result<BranchInfo> CreateBranch(const BranchRef& ref, const BranchCreateOptions& options);
  // Branches of `project` (all projects if empty). `with_sizes` measures each volume.
  Result<std::vector<BranchInfo>> ListBranches(const std::string& project, bool with_sizes);
  Result<BranchInfo> GetBranch(const BranchRef& ref);
  // Deletes a branch. Refused for a branch with children (naming them) unless `recursive`, and
  // for main (delete the project instead).
  Status DeleteBranch(const BranchRef& ref, bool recursive);
  // Replaces a branch's data with its parent's current data (a new snapshot and clone), keeping
  // its port and password, so its URI stays the same. The branch is running afterwards.
  Result<BranchInfo> ResetBranch(const BranchRef& ref, bool fast);
  Result<BranchInfo> StartBranch(const BranchRef& ref);
  Result<BranchInfo> StopBranch(const BranchRef& ref);
  Result<BranchInfo> RestartBranch(const BranchRef& ref);

  // Pool usage, projects and every branch with its runtime state, size and uptime.
  Result<StatusInfo> GetStatus();

 private:
  explicit Engine(const EngineEnv& env);

  Result<PoolConfig> LoadPoolConfig();
  Result<Pool*> RequirePool(bool create_default);
  Result<std::optional<OsUser>> ServerUser();
  Result<PortRange> LoadPortRange();
  Result<ProjectRow> LoadProject(const std::string& name);
  Result<BranchRow> LoadBranch(const ProjectRow& project, const std::string& name);
  Result<std::unique_ptr<FileLock>> LockProject(const ProjectRow& project);
  // A branch loaded under its project's lock (held as long as the result lives).
  struct LockedBranch {
    ProjectRow project;
    std::unique_ptr<FileLock> lock;
    BranchRow row;
  };
  // NotFound for an unknown project or branch; with `require_settled`, FailedPrecondition
  // unless the branch is running or stopped (not creating, deleting or failed).
  Result<LockedBranch> LockBranch(const BranchRef& ref, bool require_settled);
  Result<InstanceSpec> Spec(const ProjectRow& project, const BranchRow& branch);
  ConnParams AdminParams(const ProjectRow& project, const BranchRow& branch) const;
  InstanceConfig ConfigFor(const ProjectRow& project, const BranchRow& branch) const;
  std::string LogPath(const BranchRow& branch) const;
  Status CheckPoolSpace(Pool& pool);
  Status ReserveBranch(const ProjectRow& project, BranchRow* row, std::optional<int> port,
                       UndoStack& undo);
  // Snapshots `parent` (after a CHECKPOINT unless `fast`), clones it into row->volume, writes
  // the branch's configuration and starts it with row->password set. Every step pushes its
  // undo. Fills `snapshot` (not yet in the catalog: CommitClone records it).
  Status CloneFromParent(const ProjectRow& project, const BranchRow& parent, BranchRow* row,
                         bool fast, UndoStack& undo, SnapshotRow* snapshot);
  // In one transaction: records `snapshot`, points `row` at it and marks it running.
  Status CommitClone(BranchRow* row, SnapshotRow* snapshot);
  // Starts the branch's server and waits until it accepts a connection; with `set_password`
  // (a fresh clone or initdb) sets the branch's password on that connection. With `undo` (a
  // new instance), pushes its stop.
  Status StartInstance(const ProjectRow& project, const BranchRow& branch, bool set_password,
                       UndoStack* undo);
  Status StopInstance(const ProjectRow& project, const BranchRow& branch, StopMode mode);
  Status DestroyBranch(const ProjectRow& project, const BranchRow& branch);
  Status DropSnapshotIfUnused(int64_t snapshot_id);
  Result<std::vector<BranchRow>> Descendants(const BranchRow& branch);
  Result<BranchInfo> Describe(const ProjectRow& project, const BranchRow& branch, bool with_sizes);
  Status Timed(std::string_view step, const std::function<Status()>& body);
  void Note(std::string_view message);

  EngineEnv env_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_ENGINE_H_
