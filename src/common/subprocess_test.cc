#include "common/subprocess.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/fs.h"

namespace pgb {
namespace {

// Given a program that prints to both streams and exits 3, Run returns both outputs and the
// code; a shell metacharacter in an argument stays one literal argument.
TEST(SubprocessTest, RunCapturesOutputAndExitCode) {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {"printf", "%s|", "a b", "$(id); rm -rf /"};
  auto r = runner->Run(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->Succeeded());
  EXPECT_EQ(r->out, "a b|$(id); rm -rf /|");

  Command fail;
  fail.argv = {"sh", "-c", "echo out; echo err >&2; exit 3"};  // sh here is the program tested
  auto f = runner->Run(fail);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->exit_code, 3);
  EXPECT_EQ(f->out, "out\n");
  EXPECT_EQ(f->err, "err\n");
  Status s = CommandStatus(fail, *f);
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed);
  EXPECT_NE(s.message().find("exited with status 3: err"), std::string::npos) << s.message();
}

// stdin_data reaches the child; a clean environment drops the caller's variables.
TEST(SubprocessTest, StdinAndCleanEnvironment) {
  auto runner = NewRealProcessRunner();
  setenv("PGB_TEST_SECRET", "hunter2", 1);
  Command c;
  c.argv = {"env"};
  c.clean_env = true;
  c.env = {{"ONLY", "this"}};
  auto r = runner->Run(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out.find("hunter2"), std::string::npos);
  EXPECT_NE(r->out.find("ONLY=this"), std::string::npos);

  Command cat;
  cat.argv = {"cat"};
  cat.stdin_data = std::string(200000, 'x');  // larger than a pipe buffer
  auto out = runner->Run(cat);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->out.size(), 200000u);
  unsetenv("PGB_TEST_SECRET");
}

TEST(SubprocessTest, MissingProgramIsNotFound) {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {"pgbranch-no-such-program"};
  EXPECT_EQ(runner->Run(c).status().code(), StatusCode::kNotFound);
  c.argv = {"/nonexistent/bin/x"};
  EXPECT_FALSE(runner->Run(c).ok());
}

// A command that outlives its timeout is killed with its process group and reported.
TEST(SubprocessTest, TimeoutKillsTheProcessGroup) {
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {"sleep", "30"};
  c.timeout = std::chrono::milliseconds(100);
  auto start = std::chrono::steady_clock::now();
  auto r = runner->Run(c);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// A daemon keeps running after SpawnDaemon returns, in its own session, logging to the file;
// a daemon that cannot be executed is an error, not a pid.
TEST(SubprocessTest, SpawnDaemonDetaches) {
  auto runner = NewRealProcessRunner();
  char tmpl[] = "/tmp/pgb-spawn-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string log = std::string(tmpl) + "/log";
  Command c;
  c.argv = {"sh", "-c", "echo started; exec sleep 30"};
  auto pid = runner->SpawnDaemon(c, log);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_EQ(kill(*pid, 0), 0);
  EXPECT_NE(getsid(*pid), getsid(0));
  for (int i = 0; i < 200; ++i) {
    auto content = ReadFile(log);
    if (content.ok() && *content == "started\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ReadFile(log).value(), "started\n");
  kill(*pid, SIGKILL);

  Command bad;
  bad.argv = {"/nonexistent/daemon"};
  EXPECT_FALSE(runner->SpawnDaemon(bad, log).ok());
  std::filesystem::remove_all(tmpl);
}

// A child holds descriptors 0-2 and nothing else of its parent's, even one the parent opened
// without O_CLOEXEC (as a library or a daemon's listening socket might): both for a command
// and for a server started with SpawnDaemon.
TEST(SubprocessTest, ChildrenInheritOnlyStandardDescriptors) {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  auto runner = NewRealProcessRunner();
  // `test` is a shell builtin: /proc/self is the shell, which holds what exec kept.
  std::string list = "for fd in 0 1 2 " + std::to_string(leaked) +
                     "; do test -e /proc/self/fd/$fd && printf '%s ' $fd; done";
  Command c;
  c.argv = {"sh", "-c", list};
  auto r = runner->Run(c);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->out, "0 1 2 ");

  char tmpl[] = "/tmp/pgb-fds-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string log = std::string(tmpl) + "/log";
  Command d;
  d.argv = {"sh", "-c", list + "; echo"};
  auto pid = runner->SpawnDaemon(d, log);
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  std::string out;
  for (int i = 0; i < 200 && out.find('\n') == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto content = ReadFile(log);
    out = content.ok() ? *content : "";
  }
  EXPECT_EQ(out, "0 1 2 \n");
  ::close(leaked);
  std::filesystem::remove_all(tmpl);
}

TEST(SubprocessTest, FormatArgvQuotesForDisplay) {
  EXPECT_EQ(FormatArgv({"mkfs.btrfs", "-q", "/a b/c"}), "mkfs.btrfs -q '/a b/c'");
  EXPECT_EQ(FormatArgv({"echo", "it's"}), "echo 'it'\\''s'");
  EXPECT_EQ(TailLines("a\nb\nc\n", 2), "b\nc");
  EXPECT_EQ(TailLines("only", 3), "only");
}

TEST(SubprocessTest, ShellQuoteMakesOneWord) {
  EXPECT_EQ(ShellQuote("/var/lib/pgbranch/pgpass/branch-2"), "/var/lib/pgbranch/pgpass/branch-2");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's $(id)"), "'it'\\''s $(id)'");
  EXPECT_EQ(ShellQuote("~x"), "'~x'");
}

// A process replaced in place keeps 0-2 only (a descriptor without close-on-exec at 47 is
// gone), starts with no signal blocked, and gets the environment asked for.
TEST(SubprocessTest, ExecInPlaceHandsOverACleanProcess) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    int fd = open("/dev/null", O_RDONLY);
    dup2(fd, 47);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, nullptr);
    setenv("PGB_GONE", "1", 1);
    Command c;
    c.argv = {"sh", "-c",
              "test -e /proc/self/fd/47 && echo fd47; grep SigBlk /proc/self/status; "
              "echo \"${PGB_SET}-${PGB_GONE:-unset}\""};
    c.env = {{"PGB_SET", "set"}};
    c.env_unset = {"PGB_GONE"};
    Status s = ExecInPlace(c);
    _exit(s.ok() ? 98 : 99);
  }
  close(out[1]);
  std::string text;
  char buf[256];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) > 0;) text.append(buf, n);
  close(out[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(text, "SigBlk:\t0000000000000000\nset-unset\n");
}

TEST(SubprocessTest, ExecInPlaceRefusesWhatNeedsAChild) {
  Command c;
  c.argv = {"true"};
  c.stdin_data = "x";
  EXPECT_TRUE(ExecInPlace(c).Is(StatusCode::kInvalidArgument));
}

TEST(SubprocessTest, SplitLinesDropsEmptyLines) {
  EXPECT_EQ(SplitLines("a\n\nb\n"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(SplitLines("last"), std::vector<std::string>{"last"});
  EXPECT_TRUE(SplitLines("").empty());
}

}  // namespace
}  // namespace pgb
