// Running external programs without a shell.
//
// Every external program (mkfs.btrfs, initdb, postgres, ...) is started from an argv vector with
// fork + execve: never through /bin/sh, so a user-supplied name is always one argv element and
// never part of a command string. The child gets stdin from a pipe (or /dev/null), stdout and
// stderr on pipes, every other descriptor closed (all ours are close-on-exec), its own process
// group, and optionally another OS user. fork rather than posix_spawn because posix_spawn
// cannot switch user, which the native runtime needs to run postgres when we are root.
//
// The ProcessRunner interface exists so tests can substitute a fake that records the argv of
// every call and compares it exactly (ninja's FakeCommandRunner::commands_ran_).

#ifndef PGBRANCH_COMMON_SUBPROCESS_H_
#define PGBRANCH_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/os_user.h"
#include "common/status.h"

namespace pgb {

struct Command {
  // argv[0] is an absolute path or a program name looked up on PATH before forking.
  std::vector<std::string> argv;
  // Variables added to (or overriding) the environment. With clean_env the child gets only
  // PATH, LANG=C.UTF-8 and these; use that for servers, so no caller secret leaks into them.
  std::vector<std::pair<std::string, std::string>> env;
  // Variables removed from the inherited environment (before `env` is applied).
  std::vector<std::string> env_unset;
  bool clean_env = false;
  // Run as this account (requires root). Unset: as the caller.
  std::optional<OsUser> user;
  // Working directory of the child; empty keeps the caller's.
  std::string cwd;
  // Written to the child's stdin, which is then closed. Empty: stdin is /dev/null.
  std::string stdin_data;
  // Kill the child's process group after this long; zero waits forever.
  std::chrono::milliseconds timeout{0};
};

struct CommandResult {
  int exit_code = -1;  // valid when term_signal == 0
  int term_signal = 0;
  std::string out;
  std::string err;
  bool Succeeded() const { return term_signal == 0 && exit_code == 0; }
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;

  // Runs `command` to completion and returns what it printed and how it ended. Returns a
  // non-OK Status only when the program could not be run at all (NotFound if argv[0] is not
  // found, Unavailable on timeout); a non-zero exit is a successful Run with Succeeded()==false.
  virtual Result<CommandResult> Run(const Command& command) = 0;

  // Starts a long-lived server detached from us: double fork, its own session, stdin from
  // /dev/null, stdout and stderr appended to `log_path` (created 0600). The server is never
  // our child, so it outlives this process and never needs reaping by us. On success returns
  // the server's pid once execve has succeeded; on failure to exec returns the errno as Status.
  virtual Result<pid_t> SpawnDaemon(const Command& command, const std::string& log_path) = 0;
};

// The real thing, for production. Thread-compatible: one Run per thread at a time.
std::unique_ptr<ProcessRunner> NewRealProcessRunner();

// Replaces the calling process with `command` (its argv, env, env_unset, clean_env and cwd;
// user, stdin_data and timeout need a child and must be unset): the process id, the terminal and
// descriptors 0-2 stay, every other descriptor closes at exec, the signal mask is emptied and
// SIGINT, SIGTERM, SIGQUIT, SIGPIPE, SIGCHLD, SIGHUP get their default actions. Returns only if
// it fails: NotFound when argv[0] is not found, InvalidArgument for an unsupported field, else
// the errno of execve. For `pgbranch psql`, which hands the terminal to psql.
Status ExecInPlace(const Command& command);

// OK when `result` succeeded; otherwise CommandFailed naming the argv, the exit status or
// signal and the last lines of stderr (or stdout when stderr is empty).
Status CommandStatus(const Command& command, const CommandResult& result);

// Runs and folds a non-zero exit into the Status (CommandStatus); returns the result otherwise.
Result<CommandResult> RunChecked(ProcessRunner& runner, const Command& command);

// `word` as one POSIX shell word: as it is when it holds nothing a shell would interpret,
// else single-quoted with each ' written as '\''. For lines a shell evaluates (`branch env`).
std::string ShellQuote(std::string_view word);

// argv joined for display, elements with spaces or quotes single-quoted. For messages only:
// nothing ever executes this string.
std::string FormatArgv(const std::vector<std::string>& argv);

// The last `max_lines` lines of `text` (no trailing newline), for error messages.
std::string TailLines(const std::string& text, int max_lines);

// The non-empty lines of `text` (a program's output), without their '\n'.
std::vector<std::string> SplitLines(std::string_view text);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_SUBPROCESS_H_
