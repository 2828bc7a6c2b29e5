#include "common/subprocess.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "common/cancel.h"

namespace pgb {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Owns a file descriptor; closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    Reset();
    fd_ = std::exchange(o.fd_, -1);
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Status MakePipe(Fd* read_end, Fd* write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return PosixError("pipe", errno);
  *read_end = Fd(fds[0]);
  *write_end = Fd(fds[1]);
  return Status::OK();
}

// Everything the child needs, computed before fork: after fork only async-signal-safe calls.
struct Prepared {
  std::string path;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  int max_fd = 1024;  // the descriptor limit, for the fallback of MarkCloseOnExecAbove2
};

std::string LookupEnv(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& kv : env) {
    if (kv.size() > key.size() && kv.compare(0, key.size(), key) == 0 && kv[key.size()] == '=') {
      return kv.substr(key.size() + 1);
    }
  }
  return "";
}

Result<std::string> ResolveProgram(const std::string& name, const std::string& path_var) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = path_var.empty() ? kDefaultPath : path_var;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return Status::NotFound(fmt::format("program {} not found on PATH", name));
}

Result<Prepared> Prepare(const Command& command) {
  if (command.argv.empty()) return Status::InvalidArgument("empty argv");
  Prepared p;
  std::map<std::string, std::string> env;
  if (command.clean_env) {
    env["PATH"] = kDefaultPath;
    env["LANG"] = "C.UTF-8";
  } else {
    for (char** e = environ; e && *e; ++e) {
      std::string kv(*e);
      size_t eq = kv.find('=');
      if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  for (const auto& k : command.env_unset) env.erase(k);
  for (const auto& [k, v] : command.env) env[k] = v;
  for (const auto& [k, v] : env) p.env_storage.push_back(k + "=" + v);
  PGB_ASSIGN_OR_RETURN(p.path, ResolveProgram(command.argv[0], LookupEnv(p.env_storage, "PATH")));
  p.argv_storage = command.argv;
  for (auto& a : p.argv_storage) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : p.env_storage) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
    p.max_fd = static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20));
  }
  return p;
}

// Marks every descriptor from 3 up close-on-exec: close_range(2) with CLOSE_RANGE_CLOEXEC
// (Linux 5.11), or one fcntl per descriptor below `max_fd` where the kernel lacks it.
// Async-signal-safe; returns 0 or an errno.
int MarkCloseOnExecAbove2(int max_fd) {
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
  if (errno != ENOSYS && errno != EINVAL) return errno;
  for (int fd = 3; fd < max_fd; ++fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  return 0;
}

// The signal state a program expects to start with: nothing blocked, default actions.
// Async-signal-safe.
void ResetSignalsForExec() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP}) signal(sig, SIG_DFL);
}

// Child side after fork: only async-signal-safe calls from here to execve.
[[noreturn]] void ExecChild(const Prepared& p, const Command& command, int stdin_fd, int out_fd,
                            int err_fd, int report_fd) {
  ResetSignalsForExec();
  int err = 0;
  if (dup2(stdin_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0) err = errno;
  // The child keeps 0-2 only: every other descriptor of ours (a daemon's listening sockets, a
  // lock file, a catalog connection opened without O_CLOEXEC by a library) closes at exec.
  // Close-on-exec rather than closed now, so report_fd still tells the parent if exec fails.
  if (!err) err = MarkCloseOnExecAbove2(p.max_fd);
  if (!err && !command.cwd.empty() && chdir(command.cwd.c_str()) != 0) err = errno;
  if (!err && command.user) {
    const OsUser& u = *command.user;
    if (setgroups(u.groups.size(), u.groups.data()) != 0 || setgid(u.gid) != 0 ||
        setuid(u.uid) != 0) {
      err = errno;
    }
  }
  if (!err) {
    execve(p.path.c_str(), p.argv.data(), p.envp.data());
    err = errno;
  }
  ssize_t ignored = write(report_fd, &err, sizeof(err));
  (void)ignored;
  _exit(127);
}

// Reads the errno the child reports before exec; EOF (exec succeeded, pipe closed) gives 0.
int ReadExecError(int fd) {
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(fd, &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  return n == sizeof(child_errno) ? child_errno : 0;
}

class RealProcessRunner : public ProcessRunner {
 public:
  Result<CommandResult> Run(const Command& command) override {
    PGB_ASSIGN_OR_RETURN(Prepared p, Prepare(command));
    Fd in_r, in_w, out_r, out_w, err_r, err_w, rep_r, rep_w;
    PGB_RETURN_IF_ERROR(MakePipe(&out_r, &out_w));
    PGB_RETURN_IF_ERROR(MakePipe(&err_r, &err_w));
    PGB_RETURN_IF_ERROR(MakePipe(&rep_r, &rep_w));
    if (command.stdin_data.empty()) {
      in_r = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
      if (in_r.get() < 0) return PosixError("open /dev/null", errno);
    } else {
      PGB_RETURN_IF_ERROR(MakePipe(&in_r, &in_w));
    }

    pid_t pid = fork();
    if (pid < 0) return PosixError("fork", errno);
    if (pid == 0) {
      setpgid(0, 0);
      ExecChild(p, command, in_r.get(), out_w.get(), err_w.get(), rep_w.get());
    }
    setpgid(pid, pid);  // also in the parent, to win the race with our own kill()
    in_r.Reset();
    out_w.Reset();
    err_w.Reset();
    rep_w.Reset();
    int exec_errno = ReadExecError(rep_r.get());

    CommandResult result;
    PumpEnd end = PumpEnd::kDone;
    if (exec_errno == 0) end = Pump(command, pid, &in_w, &out_r, &err_r, &result);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (exec_errno != 0) {
      return PosixError(fmt::format("execute {}", p.path), exec_errno);
    }
    if (end == PumpEnd::kTimedOut) {
      return Status::Unavailable(fmt::format("{} did not finish within {} ms",
                                             FormatArgv(command.argv), command.timeout.count()));
    }
    if (end == PumpEnd::kCancelled) {
      Status cancelled = CheckCancelled();
      return Status::Cancelled(
          fmt::format("{} (stopped {})", cancelled.message(), FormatArgv(command.argv)));
    }
    if (WIFEXITED(wstatus)) {
      result.exit_code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
      result.term_signal = WTERMSIG(wstatus);
    }
    return result;
  }

  Result<pid_t> SpawnDaemon(const Command& command, const std::string& log_path) override {
    PGB_ASSIGN_OR_RETURN(Prepared p, Prepare(command));
    Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (null_in.get() < 0) return PosixError("open /dev/null", errno);
    Fd log(::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
    if (log.get() < 0) return PosixError(fmt::format("open {}", log_path), errno);
    // Two pipes: the intermediate child reports the server's pid on one; the server reports an
    // exec failure on the other (closed by a successful exec). One pipe would race.
    Fd pid_r, pid_w, exec_r, exec_w;
    PGB_RETURN_IF_ERROR(MakePipe(&pid_r, &pid_w));
    PGB_RETURN_IF_ERROR(MakePipe(&exec_r, &exec_w));

    // Double fork: the intermediate child starts a new session, forks the server and exits at
    // once, so the server is re-parented away from us and we only reap the intermediate.
    pid_t middle = fork();
    if (middle < 0) return PosixError("fork", errno);
    if (middle == 0) {
      setsid();
      pid_t server = fork();
      if (server == 0) {
        umask(077);
        ExecChild(p, command, null_in.get(), log.get(), log.get(), exec_w.get());
      }
      int message = server < 0 ? -errno : static_cast<int>(server);
      ssize_t ignored = write(pid_w.get(), &message, sizeof(message));
      (void)ignored;
      _exit(0);
    }
    pid_w.Reset();
    exec_w.Reset();
    int wstatus = 0;
    while (waitpid(middle, &wstatus, 0) < 0 && errno == EINTR) {
    }
    int message = 0;
    ssize_t n;
    do {
      n = read(pid_r.get(), &message, sizeof(message));
    } while (n < 0 && errno == EINTR);
    if (n != sizeof(message)) return Status::Internal("daemon spawn: no pid reported");
    if (message < 0) return PosixError("fork", -message);
    int exec_errno = ReadExecError(exec_r.get());
    if (exec_errno != 0) return PosixError(fmt::format("execute {}", p.path), exec_errno);
    return static_cast<pid_t>(message);
  }

 private:
  enum class PumpEnd { kDone, kTimedOut, kCancelled };
  // Feeds stdin and drains stdout/stderr until both close. On a timeout or when the calling
  // thread's operation is cancelled (common/cancel.h, checked every kCancelPoll), kills the
  // child's process group and says which.
  PumpEnd Pump(const Command& command, pid_t pid, Fd* in_w, Fd* out_r, Fd* err_r,
               CommandResult* result) {
    constexpr int kCancelPollMs = 100;
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + command.timeout;
    size_t written = 0;
    if (in_w->get() >= 0) fcntl(in_w->get(), F_SETFL, O_NONBLOCK);
    char buf[65536];
    while (out_r->get() >= 0 || err_r->get() >= 0) {
      pollfd fds[3];
      int nfds = 0;
      int out_idx = -1, err_idx = -1, in_idx = -1;
      if (out_r->get() >= 0) {
        out_idx = nfds;
        fds[nfds++] = {out_r->get(), POLLIN, 0};
      }
      if (err_r->get() >= 0) {
        err_idx = nfds;
        fds[nfds++] = {err_r->get(), POLLIN, 0};
      }
      if (in_w->get() >= 0) {
        in_idx = nfds;
        fds[nfds++] = {in_w->get(), POLLOUT, 0};
      }
      if (!CheckCancelled().ok()) {
        kill(-pid, SIGKILL);
        return PumpEnd::kCancelled;
      }
      int wait_ms = CurrentCancelToken() ? kCancelPollMs : -1;
      if (command.timeout.count() > 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
          kill(-pid, SIGKILL);
          return PumpEnd::kTimedOut;
        }
        wait_ms = wait_ms < 0 ? static_cast<int>(left.count())
                              : std::min(wait_ms, static_cast<int>(left.count()));
      }
      int rc = poll(fds, nfds, wait_ms);
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0) break;
      auto drain = [&](int idx, Fd* fd, std::string* sink) {
        if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
        ssize_t n = read(fd->get(), buf, sizeof(buf));
        if (n > 0)
          sink->append(buf, n);
        else if (n == 0 || errno != EINTR)
          fd->Reset();
      };
      drain(out_idx, out_r, &result->out);
      drain(err_idx, err_r, &result->err);
      if (in_idx >= 0 && (fds[in_idx].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = write(in_w->get(), command.stdin_data.data() + written,
                          command.stdin_data.size() - written);
        if (n > 0) written += n;
        if (n < 0 && errno != EAGAIN && errno != EINTR) in_w->Reset();
        if (written == command.stdin_data.size()) in_w->Reset();
      }
    }
    return PumpEnd::kDone;
  }
};

}  // namespace

Status ExecInPlace(const Command& command) {
  if (command.user || !command.stdin_data.empty() || command.timeout.count() != 0) {
    return Status::InvalidArgument("exec in place: user, stdin_data and timeout need a child");
  }
  PGB_ASSIGN_OR_RETURN(Prepared p, Prepare(command));
  if (!command.cwd.empty() && ::chdir(command.cwd.c_str()) != 0) {
    return PosixError(fmt::format("chdir {}", command.cwd), errno);
  }
  int err = MarkCloseOnExecAbove2(p.max_fd);
  if (err != 0) return PosixError("mark descriptors close-on-exec", err);
  ResetSignalsForExec();
  ::execve(p.path.c_str(), p.argv.data(), p.envp.data());
  return PosixError(fmt::format("exec {}", p.path), errno);
}

std::unique_ptr<ProcessRunner> NewRealProcessRunner() {
  return std::make_unique<RealProcessRunner>();
}

std::string ShellQuote(std::string_view word) {
  bool plain =
      !word.empty() && word.find_first_of(" \t\n'\"\\$`;&|<>*?()[]{}~#!") == std::string_view::npos;
  if (plain) return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string FormatArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += ShellQuote(a);
  }
  return out;
}

std::string TailLines(const std::string& text, int max_lines) {
  size_t end = text.size();
  while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == ' ')) --end;
  size_t pos = end;
  for (int lines = 0; pos > 0; --pos) {
    if (text[pos - 1] == '\n' && ++lines == max_lines) break;
  }
  return text.substr(pos, end - pos);
}

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    if (end > pos) lines.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

Status CommandStatus(const Command& command, const CommandResult& result) {
  if (result.Succeeded()) return Status::OK();
  std::string how = result.term_signal != 0
                        ? fmt::format("was killed by signal {}", result.term_signal)
                        : fmt::format("exited with status {}", result.exit_code);
  std::string tail = TailLines(result.err.empty() ? result.out : result.err, 5);
  return Status::CommandFailed(
      fmt::format("`{}` {}{}{}", FormatArgv(command.argv), how, tail.empty() ? "" : ": ", tail));
}

Result<CommandResult> RunChecked(ProcessRunner& runner, const Command& command) {
  PGB_ASSIGN_OR_RETURN(CommandResult result, runner.Run(command));
  PGB_RETURN_IF_ERROR(CommandStatus(command, result));
  return result;
}

}  // namespace pgb
