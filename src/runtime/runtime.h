// The runtime seam: how a branch's PostgreSQL instance runs.
//
// "native" (the default) starts the `postgres` binary of the project's PostgreSQL directly, as
// an unprivileged OS user when pgbranch runs as root (PostgreSQL refuses to run as root). The
// server is detached from pgbranch (its own session, never our child), so it outlives the CLI.
// Container runtimes (docker/podman) implement the same interface.
//
// The runtime only starts and stops processes; whether the server accepts queries is checked
// by pg/ (libpq), which the engine combines with Inspect() to fail fast when the server dies.
// Abstract so tests can substitute a fault-injecting wrapper.

#ifndef PGBRANCH_RUNTIME_RUNTIME_H_
#define PGBRANCH_RUNTIME_RUNTIME_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/os_user.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/time.h"

namespace pgb {

// Everything needed to run one branch's server.
struct InstanceSpec {
  std::string name;      // "demo/dev": for messages
  std::string data_dir;  // the PostgreSQL data directory (a pool volume)
  // Directory holding `postgres`, `initdb` and `pg_controldata` of the right major version; for
  // a container, a path inside the image ("/usr/lib/postgresql/17/bin").
  std::string bin_dir;
  std::string log_path;           // native: server stdout/stderr are appended here (0600)
  std::optional<OsUser> os_user;  // run as this account (uid/gid); unset: as the caller

  // Container runtimes only.
  std::string image;           // image reference, "pgbranch/postgres:17" or "postgres:17"
  std::string container_name;  // see ContainerName()
  // Host directories bind-mounted at the same path inside the container, so the paths in
  // pgbranch.conf (socket directory, WAL archive) mean the same on both sides. data_dir is
  // always mounted.
  std::vector<std::string> mounts;
  // Labels set on the container; kLabelHome and kLabelBranchId identify it for `doctor`.
  std::map<std::string, std::string> labels;
};

// Container labels: the pgbranch home a container belongs to, and its branch's catalog id.
inline constexpr const char* kLabelHome = "io.pgbranch.home";
inline constexpr const char* kLabelBranchId = "io.pgbranch.branch-id";
inline constexpr const char* kLabelBranch = "io.pgbranch.branch";  // "project/branch"

// A container a runtime found carrying a home's label (see Runtime::ListInstances).
struct RuntimeInstance {
  std::string name;       // container name
  std::string id;         // container id
  int64_t branch_id = 0;  // from kLabelBranchId; 0 if missing or garbled
  std::string branch;     // from kLabelBranch
  std::string state;      // "running", "exited", ...
};

struct InstanceStatus {
  bool running = false;
  pid_t pid = 0;                        // postmaster pid when running
  std::optional<TimePoint> started_at;  // when the postmaster started (from postmaster.pid)
  std::string detail;  // "running", "stopped", "stale postmaster.pid (pid 123 gone)"
  // Accepting connections as far as postmaster.pid says (status "ready", or "standby" for a
  // hot standby); false while it starts up or shuts down. A query is the final proof.
  bool ready = false;
  // Containers: the engine's state word ("running", "exited", "restarting", "created", ...);
  // empty natively and when there is no container.
  std::string engine_state;
};

enum class StopMode {
  kFast,       // SIGINT: roll back sessions, shutdown checkpoint (pg_ctl -m fast)
  kImmediate,  // SIGQUIT: no checkpoint; for data about to be discarded (pg_ctl -m immediate)
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  // "native", "docker" or "podman".
  virtual std::string Kind() const = 0;

  // Starts the server. Returns once the process exists (not when it accepts connections).
  // FailedPrecondition if a live postmaster already serves `data_dir`; a stale postmaster.pid
  // (its pid gone) is removed first. IOError/CommandFailed if the process cannot be started.
  virtual Status Start(const InstanceSpec& spec) = 0;

  // Stops the server and waits until it has exited (postmaster.pid removed or its pid dead),
  // escalating to SIGQUIT and then SIGKILL of the postmaster if it outlives `timeout`.
  // OK if it was not running.
  virtual Status Stop(const InstanceSpec& spec, StopMode mode,
                      std::chrono::milliseconds timeout) = 0;

  // What is really running now, from the data directory's postmaster.pid and the process table
  // (a zombie counts as dead: PID 1 may not reap). Never fails for a stopped server.
  virtual Result<InstanceStatus> Inspect(const InstanceSpec& spec) = 0;

  // The last `tail_lines` lines of the server's log (empty string if there is no log yet):
  // native, the log file; containers, the engine's log of the container.
  virtual Result<std::string> Logs(const InstanceSpec& spec, int tail_lines) = 0;

  // Runs `tool` of spec.bin_dir (initdb, pg_controldata) with `args`, as spec.os_user, where
  // it can reach spec.data_dir; for a container, in a throwaway container of spec.image
  // without network. The result as ProcessRunner::Run gives it (a non-zero exit is not an
  // error here).
  virtual Result<CommandResult> RunTool(const InstanceSpec& spec, const std::string& tool,
                                        const std::vector<std::string>& args,
                                        std::chrono::milliseconds timeout) = 0;

  // Forgets a stopped instance for good: removes its container (OK if there is none). Native:
  // nothing to do.
  virtual Status Remove(const InstanceSpec& spec) = 0;

  // After a project or branch rename: the instance of `from` is known as `to` from now on
  // (a container is renamed; OK if there is none). Native: nothing to do.
  virtual Status Rename(const InstanceSpec& from, const InstanceSpec& to) = 0;

  // Containers labelled with kLabelHome = `home`, whatever their state. Native: none.
  virtual Result<std::vector<RuntimeInstance>> ListInstances(const std::string& home) = 0;
};

// The native runtime. `runner` must outlive it. Thread-safe.
std::unique_ptr<Runtime> NewNativeRuntime(ProcessRunner& runner);

// A container runtime driving `engine` ("docker" or "podman") through its command line, argv
// only (container_runtime.cc). `runner` must outlive it. Thread-safe.
std::unique_ptr<Runtime> NewContainerRuntime(ProcessRunner& runner, const std::string& engine);

// Whether `kind` names a container engine pgbranch drives: "docker" or "podman".
bool IsContainerRuntime(std::string_view kind);

// The server-log lines worth showing in a one-line error, without their timestamp prefix,
// joined with " | ": at most the last three of the FATAL/PANIC/ERROR/WARNING lines, lines
// saying "could not" or "invalid value", the line before each FATAL and the DETAIL line after
// it; else the last line.
std::string LogHighlights(const std::string& log);

// A `still_alive` check for WaitUntilReady (pg/client.h), from `runtime`.Inspect(): OK when the
// server runs and is ready; Unavailable while it runs but is not ready yet (no connection
// attempt is made then); once it has exited, FailedPrecondition "PostgreSQL exited while starting"
// with the status detail and the LogHighlights of the server log (where PostgreSQL says why), on
// one line. `runtime` must outlive the result.
std::function<Status()> StillRunningCheck(Runtime& runtime, const InstanceSpec& spec);

}  // namespace pgb

#endif  // PGBRANCH_RUNTIME_RUNTIME_H_
