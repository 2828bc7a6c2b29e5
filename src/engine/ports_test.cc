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
