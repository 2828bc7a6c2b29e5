// The native runtime: postgres started directly, detached, as the server's OS user.
//
// What runs is decided from two sources. The data directory's postmaster.pid names the
// postmaster once it has read its configuration and changed into the data directory; before
// that (the first few milliseconds, or for good when the configuration is broken) only the pid
// SpawnDaemon returned knows the process, so the runtime remembers it per data directory.
//
// Why the process table is read rather than kill(pid, 0): on this kind of host PID 1 may not
// reap orphans, so a postmaster that exited stays a zombie, and kill() still succeeds on a
// zombie. PostgreSQL itself falls for this (it refuses to start: "lock file postmaster.pid
// already exists"), which is why Start removes a stale postmaster.pid itself. And a pid in a
// stale file may have been reused, quite possibly by another postgres: the postmaster is
// recognised by its working directory, which PostgreSQL sets to the data directory before it
// writes postmaster.pid.

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/mutex.h"
#include "common/proc.h"
#include "common/thread_annotations.h"
#include "pg/cluster.h"
#include "runtime/runtime.h"

namespace pgb {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr auto kPollInterval = std::chrono::milliseconds(2);
// After `timeout` with SIGINT, SIGQUIT (immediate shutdown) gets `timeout` again but at most
// kQuitWait; then SIGKILL gets kKillWait before Stop gives up.
constexpr auto kQuitWait = std::chrono::seconds(5);
constexpr auto kKillWait = std::chrono::seconds(2);

// Whether `a` and `b` name the same file (device and inode; "/proc/N/cwd" follows the link).
bool SameFile(const std::string& a, const std::string& b) {
  struct stat sa = {};
  struct stat sb = {};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Empty when `pid` is a live postgres process working in `data_dir`; else why it is not.
std::string WhyNotPostmaster(pid_t pid, const std::string& data_dir) {
  std::optional<ProcInfo> info = ReadProc(pid);
  if (!info) return fmt::format("pid {} gone", pid);
  if (info->Dead()) return fmt::format("pid {} exited", pid);
  if (info->comm != "postgres") return fmt::format("pid {} is now {}", pid, info->comm);
  if (!SameFile(fmt::format("/proc/{}/cwd", pid), data_dir)) {
    return fmt::format("pid {} is a postgres of another data directory", pid);
  }
  return "";
}

// If `pid` is a zombie child of ours (we are a child subreaper, as a long-running server or a
// test may be), reaps it so it leaves the process table. Anyone else's: no effect.
void ReapIfOurZombie(pid_t pid) {
  std::optional<ProcInfo> info = ReadProc(pid);
  if (info && info->state == 'Z') ::waitpid(pid, nullptr, WNOHANG);
}

// Live postgres processes whose working directory is `data_dir`: a postmaster and its children
// (which are their own process groups, so a group signal would not reach them).
std::vector<pid_t> InstanceProcesses(const std::string& data_dir) {
  std::vector<pid_t> pids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (err != std::errc() || end != name.data() + name.size()) continue;
    std::optional<ProcInfo> info = ReadProc(pid);
    if (!info || info->Dead() || info->comm != "postgres") continue;
    if (SameFile(fmt::format("/proc/{}/cwd", pid), data_dir)) pids.push_back(pid);
  }
  return pids;
}

// Polls until `done()` or `wait` has passed; returns done().
template <typename Pred>
bool PollUntil(Pred done, std::chrono::milliseconds wait) {
  const auto deadline = SteadyClock::now() + wait;
  while (!done()) {
    if (SteadyClock::now() >= deadline) return done();
    std::this_thread::sleep_for(kPollInterval);
  }
  return true;
}

bool ProcessDead(pid_t pid) {
  std::optional<ProcInfo> info = ReadProc(pid);
  return !info || info->Dead();
}

// SIGKILLs every process still working in `data_dir` and waits for them to die.
Status KillInstanceProcesses(const std::string& data_dir) {
  std::vector<pid_t> pids = InstanceProcesses(data_dir);
  for (pid_t pid : pids) ::kill(pid, SIGKILL);
  bool all_dead = PollUntil(
      [&] {
        for (pid_t pid : pids) {
          if (!ProcessDead(pid)) return false;
        }
        return true;
      },
      kKillWait);
  for (pid_t pid : pids) ReapIfOurZombie(pid);
  if (!all_dead) {
    return Status::Unavailable(
        fmt::format("postgres processes in {} survive SIGKILL (stuck in the kernel?)", data_dir));
  }
  return Status::OK();
}

// A postmaster that died without cleaning up also leaves "<socket dir>/.s.PGSQL.<port>.lock"
// naming its pid; the next postmaster refuses that port while that pid looks alive to kill():
// a zombie does, and so does any process that got the pid after a reboot. Removes the lock file
// if it names `stale` (a postmaster.pid already found not to be this data directory's live
// postmaster, whatever its pid is now) or a process that is gone.
Status RemoveStaleSocketLock(const PostmasterPid& stale) {
  if (stale.socket_dir.empty() || stale.port <= 0) return Status::OK();
  std::string lock = JoinPath(stale.socket_dir, fmt::format(".s.PGSQL.{}.lock", stale.port));
  Result<std::string> text = ReadFile(lock);
  if (!text.ok()) return Status::OK();  // none: nothing to do
  int pid = 0;
  std::from_chars(text->data(), text->data() + text->size(), pid);
  if (pid != stale.pid && !ProcessDead(pid)) return Status::OK();
  spdlog::info("removing stale socket lock {} (pid {} is not its postmaster)", lock, pid);
  return RemoveFile(lock);
}

std::string PidFilePath(const InstanceSpec& spec) {
  return JoinPath(spec.data_dir, "postmaster.pid");
}

// What the process table and postmaster.pid say about one data directory.
struct Probe {
  InstanceStatus status;
  bool stale_pid_file = false;  // postmaster.pid names a process that is not its postmaster
};

class NativeRuntime : public Runtime {
 public:
  explicit NativeRuntime(ProcessRunner& runner) : runner_(runner) {}

  std::string Kind() const override { return "native"; }

  Status Start(const InstanceSpec& spec) override {
    PGB_ASSIGN_OR_RETURN(Probe probe, ProbeInstance(spec));
    if (probe.status.running) {
      return Status::FailedPrecondition(
          fmt::format("a postmaster (pid {}) already runs in {}", probe.status.pid, spec.data_dir));
    }
    if (probe.stale_pid_file) {
      // The postmaster died without cleaning up (SIGKILL, OOM killer, host crash). Its
      // children notice and exit by themselves, but one still running would share the data
      // directory with the new postmaster, so they go first.
      spdlog::info("{}: removing {} ({})", spec.name, PidFilePath(spec), probe.status.detail);
      PGB_RETURN_IF_ERROR(KillInstanceProcesses(spec.data_dir));
      Result<std::optional<PostmasterPid>> stale = ReadPostmasterPid(spec.data_dir);
      if (stale.ok() && stale->has_value()) PGB_RETURN_IF_ERROR(RemoveStaleSocketLock(**stale));
      PGB_RETURN_IF_ERROR(RemoveFile(PidFilePath(spec)));
    }
    Command cmd;
    cmd.argv = {JoinPath(spec.bin_dir, "postgres"), "-D", spec.data_dir};
    cmd.clean_env = true;
    cmd.user = spec.os_user;
    cmd.cwd = "/";  // postgres changes into the data directory itself
    PGB_ASSIGN_OR_RETURN(pid_t pid, runner_.SpawnDaemon(cmd, spec.log_path));
    std::optional<ProcInfo> info = ReadProc(pid);
    MutexLock lock(mu_);
    spawned_[spec.data_dir] = Spawned{pid, info ? info->start_ticks : 0};
    return Status::OK();
  }

  Status Stop(const InstanceSpec& spec, StopMode mode, std::chrono::milliseconds timeout) override {
    PGB_ASSIGN_OR_RETURN(Probe probe, ProbeInstance(spec));
    if (!probe.status.running) {
      Forget(spec);
      return Status::OK();
    }
    const pid_t pid = probe.status.pid;
    auto exited = [pid] { return ProcessDead(pid); };
    int first = mode == StopMode::kFast ? SIGINT : SIGQUIT;
    if (::kill(pid, first) != 0 && errno != ESRCH) {
      return PosixError(fmt::format("signal postmaster pid {}", pid), errno);
    }
    bool done = PollUntil(exited, timeout);
    if (!done && first != SIGQUIT) {
      spdlog::warn("{}: postmaster pid {} still runs {} ms after SIGINT; sending SIGQUIT",
                   spec.name, pid, timeout.count());
      ::kill(pid, SIGQUIT);
      done = PollUntil(exited, std::min<std::chrono::milliseconds>(timeout, kQuitWait));
    }
    if (!done) {
      spdlog::warn("{}: postmaster pid {} ignores shutdown; sending SIGKILL", spec.name, pid);
      // The children are their own process groups and are re-parented the moment the
      // postmaster dies, so they are found by working directory, not by parent or group.
      ::kill(pid, SIGKILL);
      PGB_RETURN_IF_ERROR(KillInstanceProcesses(spec.data_dir));
      if (!PollUntil(exited, kKillWait)) {
        return Status::Unavailable(
            fmt::format("postmaster pid {} survives SIGKILL (stuck in the kernel?)", pid));
      }
      // Nothing is left that could own it; the next Start would remove it anyway.
      PGB_RETURN_IF_ERROR(RemoveFile(PidFilePath(spec)));
    }
    ReapIfOurZombie(pid);
    Forget(spec);
    return Status::OK();
  }

  Result<InstanceStatus> Inspect(const InstanceSpec& spec) override {
    PGB_ASSIGN_OR_RETURN(Probe probe, ProbeInstance(spec));
    return probe.status;
  }

  Result<std::string> Logs(const InstanceSpec& spec, int tail_lines) override {
    if (tail_lines <= 0) return std::string();
    // PostgreSQL's log lines are short; a generous byte budget per line keeps the read small.
    size_t max_bytes = std::min<size_t>(static_cast<size_t>(tail_lines) * 1024, 8 << 20);
    Result<std::string> text = ReadFileTail(spec.log_path, max_bytes);
    if (!text.ok()) {
      if (text.status().Is(StatusCode::kNotFound)) return std::string();
      return text.status();
    }
    return TailLines(*text, tail_lines);
  }

  Result<CommandResult> RunTool(const InstanceSpec& spec, const std::string& tool,
                                const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) override {
    Command cmd;
    cmd.argv = {JoinPath(spec.bin_dir, tool)};
    cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
    cmd.clean_env = true;
    cmd.user = spec.os_user;
    // Tools resolve their own path from the working directory, which the server's account may
    // not be allowed to enter ("could not identify current directory").
    cmd.cwd = std::string("/");
    cmd.timeout = timeout;
    return runner_.Run(cmd);
  }

  Status Remove(const InstanceSpec&) override { return Status::OK(); }
  Status Rename(const InstanceSpec&, const InstanceSpec&) override { return Status::OK(); }
  Result<std::vector<RuntimeInstance>> ListInstances(const std::string&) override {
    return std::vector<RuntimeInstance>();
  }

 private:
  struct Spawned {
    pid_t pid = 0;
    unsigned long long start_ticks = 0;  // tells our process from a later one with its pid
  };

  void Forget(const InstanceSpec& spec) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    spawned_.erase(spec.data_dir);
  }

  Result<Probe> ProbeInstance(const InstanceSpec& spec) EXCLUDES(mu_) {
    Result<std::optional<PostmasterPid>> file = ReadPostmasterPid(spec.data_dir);
    // PostgreSQL creates postmaster.pid and then writes it; an empty file is usually that
    // instant, so look again before calling it stale.
    for (int i = 0; i < 20 && !file.ok() && file.status().Is(StatusCode::kUnavailable); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      file = ReadPostmasterPid(spec.data_dir);
    }
    Probe probe;
    std::string stale_reason;
    if (file.ok() && file->has_value()) {
      const PostmasterPid& pp = **file;
      stale_reason = WhyNotPostmaster(pp.pid, spec.data_dir);
      if (stale_reason.empty()) {
        probe.status.running = true;
        probe.status.pid = pp.pid;
        if (pp.start_epoch_seconds > 0) {
          probe.status.started_at = TimePoint(std::chrono::seconds(pp.start_epoch_seconds));
        }
        // The postmaster writes lines 1-5 at once, the status line only later ("starting"
        // after it opened its sockets, "ready" once it accepts connections).
        probe.status.ready = pp.status == "ready" || pp.status == "standby";
        probe.status.detail = pp.status == "ready" ? "running"
                              : pp.status.empty()  ? "running (starting)"
                                                   : "running (" + pp.status + ")";
        return probe;
      }
      ReapIfOurZombie(pp.pid);
    } else if (!file.ok()) {
      if (!file.status().Is(StatusCode::kUnavailable) &&
          !file.status().Is(StatusCode::kFailedPrecondition)) {
        return file.status();
      }
      stale_reason = file.status().message();  // empty or garbled
    }

    // No (live) postmaster in postmaster.pid. A server we started may not have written it
    // yet: it reads its configuration first, and dies there if the configuration is broken.
    std::optional<Spawned> spawned;
    {
      MutexLock lock(mu_);
      auto it = spawned_.find(spec.data_dir);
      if (it != spawned_.end()) spawned = it->second;
    }
    if (spawned) {
      std::optional<ProcInfo> info = ReadProc(spawned->pid);
      bool ours = info && info->start_ticks == spawned->start_ticks;
      if (ours && !info->Dead()) {
        probe.status.running = true;
        probe.status.pid = spawned->pid;
        probe.status.started_at = StartTime(info->start_ticks);
        probe.status.detail = "running (starting)";
        return probe;
      }
      if (ours && info->Dead()) ReapIfOurZombie(spawned->pid);
    }
    if (!stale_reason.empty()) {
      probe.stale_pid_file = true;
      probe.status.detail = fmt::format("stale postmaster.pid ({})", stale_reason);
    } else if (spawned) {
      probe.status.detail =
          fmt::format("stopped (postgres pid {} exited; see its log)", spawned->pid);
    } else {
      probe.status.detail = "stopped";
    }
    return probe;
  }

  ProcessRunner& runner_;
  Mutex mu_;
  std::map<std::string, Spawned> spawned_ GUARDED_BY(mu_);  // by data directory
};

}  // namespace

std::unique_ptr<Runtime> NewNativeRuntime(ProcessRunner& runner) {
  return std::make_unique<NativeRuntime>(runner);
}

}  // namespace pgb
