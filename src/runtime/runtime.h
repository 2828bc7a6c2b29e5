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
#include <memory>
#include <optional>
#include <string>

#include "common/os_user.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/time.h"

namespace pgb {

// Everything needed to run one branch's server.
struct InstanceSpec {
  std::string name;               // "demo/dev": for messages (and container names later)
  std::string data_dir;           // the PostgreSQL data directory (a pool volume)
  std::string bin_dir;            // directory holding `postgres` of the right major version
  std::string log_path;           // server stdout/stderr are appended here (created 0600)
  std::optional<OsUser> os_user;  // run as this account; unset: as the caller
};

struct InstanceStatus {
  bool running = false;
  pid_t pid = 0;                        // postmaster pid when running
  std::optional<TimePoint> started_at;  // when the postmaster started (from postmaster.pid)
  std::string detail;  // "running", "stopped", "stale postmaster.pid (pid 123 gone)"
  // Accepting connections as far as postmaster.pid says (status "ready", or "standby" for a
  // hot standby); false while it starts up or shuts down. A query is the final proof.
  bool ready = false;
};

enum class StopMode {
  kFast,       // SIGINT: roll back sessions, shutdown checkpoint (pg_ctl -m fast)
  kImmediate,  // SIGQUIT: no checkpoint; for data about to be discarded (pg_ctl -m immediate)
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  // "native".
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

  // The last `tail_lines` lines of the server's log (empty string if there is no log yet).
  virtual Result<std::string> Logs(const InstanceSpec& spec, int tail_lines) = 0;
};

// The native runtime. `runner` must outlive it. Thread-safe.
std::unique_ptr<Runtime> NewNativeRuntime(ProcessRunner& runner);

// The server-log lines worth showing in a one-line error, without their timestamp prefix,
// joined with " | ": at most the last three of the FATAL/PANIC/ERROR/WARNING lines, lines
// saying "could not" or "invalid value", and the line before each FATAL; else the last line.
std::string LogHighlights(const std::string& log);

// A `still_alive` check for WaitUntilReady (pg/client.h), from `runtime`.Inspect(): OK when the
// server runs and is ready; Unavailable while it runs but is not ready yet (no connection
// attempt is made then); once it has exited, FailedPrecondition "PostgreSQL exited while starting"
// with the status detail and the LogHighlights of the server log (where PostgreSQL says why), on
// one line. `runtime` must outlive the result.
std::function<Status()> StillRunningCheck(Runtime& runtime, const InstanceSpec& spec);

}  // namespace pgb

#endif  // PGBRANCH_RUNTIME_RUNTIME_H_
