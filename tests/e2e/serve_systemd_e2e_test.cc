// `pgbranch serve` under systemd's Type=notify (packaging/pgbranch.service): it must send
// READY=1 with its MAINPID once it listens and STOPPING=1 on SIGTERM, as sd_notify(3) sends
// them, to the datagram socket named by $NOTIFY_SOCKET; reload its certificate on SIGHUP and go
// on; and exit 0 with serve.json removed.
// The real binary and a real AF_UNIX datagram socket stand in for systemd's end.

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
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
  pid_t pid =
      SpawnServe(home, {"--proxy-listen", listen, "--api-listen", "127.0.0.1:0"}, log, socket_path);
  ASSERT_GT(pid, 0);

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

// A TCP connection to 127.0.0.1:`port`, or -1.
int ConnectTcp(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

// Everything the peer sends until it closes (or 5 s pass).
std::string ReadUntilClosed(int fd) {
  std::string out;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return out + "<timeout>";
    char buffer[4096];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return out;
    out.append(buffer, static_cast<size_t>(n));
  }
}

// A StartupMessage for user postgres and `database`, protocol 3.0.
std::string Startup(const std::string& database) {
  std::string body = std::string("\0\3\0\0", 4) + "user" + '\0' + "postgres" + '\0' + "database" +
                     '\0' + database + '\0' + '\0';
  uint32_t length = htonl(static_cast<uint32_t>(body.size() + 4));
  return std::string(reinterpret_cast<const char*>(&length), 4) + body;
}

// 10 000 malformed first packets, each on its own connection: every one closes only that
// connection (with an ErrorResponse where the protocol allows one), and the proxy goes on
// answering a well-formed startup message.
TEST(ServeDaemonTest, MalformedPacketsLeaveItServing) {
  char dir_template[] = "/tmp/pgb-malformed-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  std::string dir = dir_template;
  std::string home = dir + "/home";
  int port = NextPortBlock() + 39;
  std::string listen = fmt::format("127.0.0.1:{}", port);
  std::string log = dir + "/serve.log";
  pid_t pid = SpawnServe(home, {"--proxy-listen", listen, "--api-listen", "127.0.0.1:0"}, log, "");
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 300 && PortIsFree(port); ++i) ::usleep(50'000);
  ASSERT_FALSE(PortIsFree(port)) << LogOf(log);

  std::mt19937_64 rng(20261202);
  const std::string valid = Startup("demo/dev");
  int answered = 0;
  for (int i = 0; i < 10'000; ++i) {
    std::string packet = valid;
    switch (i % 5) {
      case 0:
        packet.resize(rng() % packet.size());
        break;  // truncated
      case 1:
        packet[rng() % 4] = static_cast<char>(rng());
        break;  // length word
      case 2:
        packet[4 + rng() % 4] = static_cast<char>(rng());
        break;  // protocol code
      case 3:
        packet.back() = 'x';
        break;  // no terminator
      default:
        for (int k = 0; k < 4; ++k) packet[rng() % packet.size()] = static_cast<char>(rng());
    }
    int fd = ConnectTcp(port);
    ASSERT_GE(fd, 0) << "connection " << i << " refused";
    ASSERT_EQ(::send(fd, packet.data(), packet.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(packet.size()));
    ::shutdown(fd, SHUT_WR);  // a truncated packet never completes: the proxy sees the end
    std::string reply = ReadUntilClosed(fd);
    ::close(fd);
    ASSERT_EQ(reply.find("<timeout>"), std::string::npos) << "packet " << i << " hung";
    if (!reply.empty() && reply[0] == 'E') ++answered;
  }
  std::cout << "[ fuzz     ] 10000 malformed packets: " << answered
            << " answered with an ErrorResponse, the rest closed\n";
  EXPECT_GT(answered, 1000);

  // Still serving: a well-formed startup for a route that leads nowhere gets 3D000.
  int fd = ConnectTcp(port);
  ASSERT_GE(fd, 0);
  std::string good = Startup("nope/dev");
  ASSERT_EQ(::send(fd, good.data(), good.size(), MSG_NOSIGNAL), static_cast<ssize_t>(good.size()));
  std::string reply = ReadUntilClosed(fd);
  ::close(fd);
  EXPECT_NE(reply.find("3D000"), std::string::npos) << reply;
  EXPECT_NE(reply.find("project nope does not exist"), std::string::npos) << reply;

  ::kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << LogOf(log);
  EXPECT_TRUE(RemoveTree(dir).ok());
}

}  // namespace
}  // namespace pgb::e2e
