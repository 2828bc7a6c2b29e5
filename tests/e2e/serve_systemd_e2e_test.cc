// `pgbranch serve` under systemd's Type=notify (packaging/pgbranch.service): it must send
// READY=1 with its MAINPID once it listens and STOPPING=1 on SIGTERM, as sd_notify(3) sends
// them, to the datagram socket named by $NOTIFY_SOCKET; reload its certificate on SIGHUP and go
// on; and exit 0 with serve.json removed.
// The real binary and a real AF_UNIX datagram socket stand in for systemd's end.

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "common/fs.h"
#include "storage/tree_copy.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

// The file at `path`, or "" if it cannot be read.
std::string LogOf(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

// The next datagram on `fd`, or "" after `timeout`.
std::string Receive(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
  char buffer[4096];
  ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

TEST(ServeSystemdTest, NotifiesReadyAndStopping) {
  char dir_template[] = "/tmp/pgb-notify-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::string home = dir + "/home";
  std::string socket_path = dir + "/notify";

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);

  int port = NextPortBlock() + 39;
  std::string listen = fmt::format("127.0.0.1:{}", port);
  std::string log = dir + "/serve.log";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::setenv("NOTIFY_SOCKET", socket_path.c_str(), 1);
    ::execl(PGBRANCH_BINARY, "pgbranch", "--home", home.c_str(), "serve", "--proxy-listen",
            listen.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }

  std::string ready = Receive(fd, std::chrono::seconds(30));
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_NE(ready.find(fmt::format("MAINPID={}", pid)), std::string::npos) << ready;
  EXPECT_TRUE(PathExists(home + "/serve.json"));
  EXPECT_FALSE(PortIsFree(port)) << "serve said READY=1 before it listened";

  // SIGHUP (systemctl reload): the certificate is read again, and serve goes on.
  ::kill(pid, SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; ++i) {
    reloaded = LogOf(log).find("TLS certificate reloaded") != std::string::npos;
    if (!reloaded) ::usleep(50'000);
  }
  EXPECT_TRUE(reloaded) << LogOf(log);
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), 0) << "serve ended on SIGHUP";
  EXPECT_FALSE(PortIsFree(port));

  ::kill(pid, SIGTERM);
  std::string stopping = Receive(fd, std::chrono::seconds(30));
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << LogOf(log);
  EXPECT_FALSE(PathExists(home + "/serve.json")) << "serve.json outlived serve";
  EXPECT_TRUE(PortIsFree(port));

  ::close(fd);
  EXPECT_TRUE(RemoveTree(dir).ok());
}

}  // namespace
}  // namespace pgb::e2e
