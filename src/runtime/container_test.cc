#include "runtime/container.h"

#include <gtest/gtest.h>

#include <regex>

#include "runtime/runtime.h"

namespace pgb {
namespace {

TEST(ContainerNameTest, NamesProjectAndBranchAndKeepsHomesApart) {
  std::string a = ContainerName("/var/lib/pgbranch", "demo", "dev");
  std::string b = ContainerName("/tmp/other-home", "demo", "dev");
  EXPECT_TRUE(std::regex_match(a, std::regex("pgbranch-[0-9a-f]{8}\\.demo\\.dev"))) << a;
  EXPECT_NE(a, b);
  EXPECT_EQ(a, ContainerName("/var/lib/pgbranch", "demo", "dev"));  // stable
  // Docker's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (project and branch names comply).
  EXPECT_TRUE(std::regex_match(ContainerName("/h", "a-b_c", "x_1-2"),
                               std::regex("[a-zA-Z0-9][a-zA-Z0-9_.-]+")));
}

TEST(DebianReleaseTest, ShipsThreeMajors) {
  EXPECT_EQ(*DebianReleaseFor(13), "bullseye");
  EXPECT_EQ(*DebianReleaseFor(15), "bookworm");
  EXPECT_EQ(*DebianReleaseFor(17), "trixie");
  Result<std::string> r = DebianReleaseFor(16);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().Is(StatusCode::kInvalidArgument));
  EXPECT_NE(r.status().message().find("--image"), std::string::npos);
  EXPECT_EQ(DefaultImageName(15), "pgbranch/postgres:15");
}

TEST(EngineArgvTest, PodmanGetsItsGlobalFlagsAndLimits) {
  EXPECT_EQ(EngineArgv("docker"), std::vector<std::string>{"docker"});
  std::vector<std::string> podman = EngineArgv("podman");
  ASSERT_FALSE(podman.empty());
  EXPECT_EQ(podman[0], "podman");
  EXPECT_TRUE(EngineRunFlags("docker").empty());
  std::vector<std::string> flags = EngineRunFlags("podman");
  ASSERT_EQ(flags.size(), 4u);
  EXPECT_EQ(flags[0], "--ulimit");
  EXPECT_TRUE(std::regex_match(flags[1], std::regex("nofile=[0-9]+:[0-9]+"))) << flags[1];
  EXPECT_TRUE(std::regex_match(flags[3], std::regex("nproc=[0-9]+:[0-9]+"))) << flags[3];
}

TEST(EngineErrorTest, ADeadDaemonSaysToStartIt) {
  Status s = EngineError("docker", "inspect container x",
                         "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                         "Is the docker daemon running?\n");
  EXPECT_TRUE(s.Is(StatusCode::kUnavailable));
  EXPECT_NE(s.message().find("start it"), std::string::npos) << s.message();
  Status other = EngineError("podman", "remove container x", "Error: something else\n");
  EXPECT_TRUE(other.Is(StatusCode::kCommandFailed));
  EXPECT_NE(other.message().find("something else"), std::string::npos);
}

TEST(ContainerRuntimeTest, KnowsItsKinds) {
  EXPECT_TRUE(IsContainerRuntime("docker"));
  EXPECT_TRUE(IsContainerRuntime("podman"));
  EXPECT_FALSE(IsContainerRuntime("native"));
  EXPECT_FALSE(IsContainerRuntime("lxc"));
}

}  // namespace
}  // namespace pgb
