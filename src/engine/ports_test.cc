#include "engine/ports.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pgb {
namespace {

// A probe that reports the ports in `taken` as held by another program.
class FakeProbe : public PortProbe {
 public:
  std::set<int> taken;
  bool IsFree(const std::string&, int port) override { return !taken.count(port); }
};

// Given ports held by branches and by strangers, the lowest port free of both is chosen.
TEST(PortsTest, PicksLowestFreePort) {
  FakeProbe probe;
  probe.taken = {54320, 54322};
  auto p = PickPort({54320, 54330}, {54321}, "127.0.0.1", probe);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, 54323);
}

TEST(PortsTest, ExhaustedRangeIsResourceExhausted) {
  FakeProbe probe;
  probe.taken = {54321};
  auto p = PickPort({54320, 54321}, {54320}, "127.0.0.1", probe);
  EXPECT_EQ(p.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(p.status().message().find("54320-54321"), std::string::npos);
}

TEST(PortsTest, RequestedPortIsCheckedNotSearched) {
  FakeProbe probe;
  probe.taken = {6000};
  EXPECT_EQ(PickPort({54320, 54330}, {}, "127.0.0.1", probe, 6001).value(), 6001);
  EXPECT_EQ(PickPort({54320, 54330}, {}, "127.0.0.1", probe, 6000).status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(PickPort({54320, 54330}, {6002}, "127.0.0.1", probe, 6002).status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(PickPort({54320, 54330}, {}, "127.0.0.1", probe, 80).status().code(),
            StatusCode::kInvalidArgument);
}

// The real probe sees a port held by a listening socket as taken.
TEST(PortsTest, BindProbeSeesListener) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  auto probe = NewBindPortProbe();
  EXPECT_FALSE(probe->IsFree("127.0.0.1", port));
  close(fd);
  EXPECT_TRUE(probe->IsFree("127.0.0.1", port));
}

// A loopback socket bound to `port` (0: any), with SO_REUSEADDR if `reuse`, as PostgreSQL
// binds its listening socket. Returns the fd; the port is written back.
int BoundSocket(int* port, bool reuse) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Given a server that accepted a connection, closed it first and stopped listening (so its
// side of the connection lingers in TIME_WAIT, as after a branch stop), the port counts as
// free: PostgreSQL, binding with SO_REUSEADDR, could listen there again at once. A listener
// that set SO_REUSEADDR itself still makes the port taken.
TEST(PortsTest, BindProbeIgnoresTimeWaitButNotListener) {
  int port = 0;
  int listener = BoundSocket(&port, /*reuse=*/true);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(listen(listener, 1), 0);
  auto probe = NewBindPortProbe();
  EXPECT_FALSE(probe->IsFree("127.0.0.1", port));

  int client = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int accepted = accept(listener, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  close(accepted);  // the server closes first: its end goes to TIME_WAIT
  char byte;
  EXPECT_EQ(read(client, &byte, 1), 0);  // the client saw the FIN
  close(client);
  close(listener);

  // The scenario holds: a plain bind (no SO_REUSEADDR) is still refused by the TIME_WAIT socket.
  int plain_port = port;
  int plain = BoundSocket(&plain_port, /*reuse=*/false);
  EXPECT_LT(plain, 0) << "no TIME_WAIT socket on port " << port;
  if (plain >= 0) close(plain);

  EXPECT_TRUE(probe->IsFree("127.0.0.1", port));
}

TEST(PortsTest, ParsePortRange) {
  auto r = ParsePortRange("6000-6010");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->first, 6000);
  EXPECT_EQ(r->last, 6010);
  for (const char* bad : {"", "6000", "6010-6000", "80-90", "6000-70000", "a-b", "6000-6010x"}) {
    EXPECT_FALSE(ParsePortRange(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace pgb
