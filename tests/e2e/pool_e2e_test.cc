// End-to-end tests of pool set-up and machine-level conditions: remounting after a reboot,
// port exhaustion, explicit pool kinds, chosen ports and PostgreSQL binaries.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "storage/pool.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

// A pool whose servers are stopped and which is unmounted (as after a reboot) is mounted again
// by the next command, and branches start with their data.
TEST(PoolE2eTest, UnmountedPoolIsMountedAgain) {
  Home home("btrfs", "2G");
  std::string uri = home.Ok({"project", "create", "p-boot", "--json"}).Json()["uri"];
  Sql(uri, "CREATE TABLE t (v int); INSERT INTO t VALUES (5)");
  home.Ok({"branch", "stop", "p-boot/main"});
  ASSERT_TRUE(ClosePool(home.pool_config()).ok());
  ASSERT_FALSE(Exists(home.pool_root() + "/volumes"));
  EXPECT_EQ(home.Branch("p-boot/main")["state"], "stopped");
  home.Ok({"branch", "start", "p-boot/main"});
  EXPECT_EQ(Column(uri, "SELECT v FROM t"), std::vector<std::string>{"5"});
}

// With every port of the range taken, a create fails with a clear error and leaves nothing.
TEST(PoolE2eTest, NoFreePort) {
  Home home("btrfs", "2G", "56990-56990");
  home.Ok({"project", "create", "p-ports"});
  std::set<std::string> volumes = home.Volumes();
  std::set<std::string> snapshots = home.Snapshots();  // main's base snapshot
  CliResult r = home.Run({"branch", "create", "p-ports/dev"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no free port in 56990-56990"), std::string::npos) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Snapshots(), snapshots);
}

// `init --btrfs DIR` uses an existing directory on Btrfs (here: inside another home's image
// pool) as the pool: volumes and snapshots are created there, branches work as usual.
TEST(PoolE2eTest, BtrfsDirectoryPool) {
  Home image("btrfs", "1G");
  std::string dir = image.pool_root() + "/shared-btrfs";
  ASSERT_EQ(mkdir(dir.c_str(), 0711), 0);
  Home home(/*backend=*/"");
  home.Ok({"init", "--btrfs", dir, "--port-range", "56960-56969"});
  nlohmann::json main = home.Ok({"project", "create", "p-dir", "--json"}).Json();
  EXPECT_EQ(main["data_dir"].get<std::string>().rfind(dir + "/volumes/", 0), 0u) << main.dump();
  nlohmann::json dev = home.Ok({"branch", "create", "p-dir/dev", "--json"}).Json();
  EXPECT_EQ(Column(dev["uri"], "SELECT 1"), std::vector<std::string>{"1"});
  EXPECT_EQ(home.Ok({"status", "--json"}).Json()["pool"]["kind"], "btrfs");

  // A directory that is not on Btrfs is refused with a reason.
  Home other(/*backend=*/"");
  CliResult r = other.Run({"init", "--btrfs", other.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Btrfs"), std::string::npos) << r.err;
}

// --port picks the port; one held by another program is refused before anything is made.
TEST(PoolE2eTest, ChosenPortAndPortInUse) {
  Home home("btrfs", "1G");
  home.Ok({"project", "create", "p-port", "--port", "56950"});
  EXPECT_EQ(home.Branch("p-port/main")["port"], 56950);
  nlohmann::json dev =
      home.Ok({"branch", "create", "p-port/dev", "--port", "56951", "--json"}).Json();
  EXPECT_EQ(dev["port"], 56951);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(56952);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  std::set<std::string> volumes = home.Volumes();
  CliResult r = home.Run({"branch", "create", "p-port/x", "--port", "56952"});
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("port 56952 is in use"), std::string::npos) << r.err;
  r = home.Run({"branch", "create", "p-port/y", "--port", "56951"});
  EXPECT_NE(r.err.find("port 56951 belongs to another branch"), std::string::npos) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
}

// --pg-bin chooses the PostgreSQL binaries; a directory without them is a clear error that
// creates nothing.
TEST(PoolE2eTest, PgBinOverride) {
  Home home("btrfs", "1G");
  CliResult bad = home.Run({"project", "create", "p-bin", "--pg-bin", "/nonexistent/bin"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("/nonexistent/bin"), std::string::npos) << bad.err;
  EXPECT_EQ(home.Ok({"project", "list", "--json"}).Json().size(), 0u);
  EXPECT_TRUE(home.Volumes().empty());
  nlohmann::json main =
      home.Ok({"project", "create", "p-bin", "--pg-bin", "/usr/lib/postgresql/15/bin", "--json"})
          .Json();
  EXPECT_EQ(main["pg_version"].get<std::string>().rfind("15.", 0), 0u);
}

// With no explicit choice, the first command picks the best pool where $PGBRANCH_HOME lives:
// a Btrfs directory on Btrfs, a reflink directory on XFS (reflink=1), and on ext4 (no snapshots,
// no reflinks), as root, a Btrfs image file it makes itself; status says which and why.
TEST(PoolE2eTest, AutomaticChoiceFollowsTheFilesystem) {
  struct Case {
    std::string backend;  // where the home lives ("" = /tmp, ext4)
    std::string kind;
    std::string why;
  };
  for (const Case& c :
       {Case{"btrfs", "btrfs", "is on Btrfs"}, Case{"xfs", "reflink", "clones files (reflink)"},
        Case{"", "image", "a Btrfs image file"}}) {
    SCOPED_TRACE(c.backend.empty() ? "ext4" : c.backend);
    Home outer(c.backend, "1G");
    std::string home = c.backend.empty() ? outer.path() + "/auto" : outer.pool_root() + "/auto";
    ASSERT_EQ(mkdir(home.c_str(), 0711), 0);
    CliResult r = outer.Run({"status", "--json"}, {{"PGBRANCH_HOME", home}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(r.Json()["pool"]["configured"]) << "status alone makes no pool";
    r = outer.Run({"init", "--json"}, {{"PGBRANCH_HOME", home}});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json pool = r.Json()["pool"];
    EXPECT_EQ(pool["kind"], c.kind) << pool.dump();
    EXPECT_NE(pool["why"].get<std::string>().find("automatic"), std::string::npos) << pool.dump();
    EXPECT_NE(pool["why"].get<std::string>().find(c.why), std::string::npos) << pool.dump();
    std::string text = outer.Run({"status"}, {{"PGBRANCH_HOME", home}}).out;
    EXPECT_NE(text.find("automatic"), std::string::npos) << text;
    if (c.kind == "image") {
      PoolConfig image;
      image.kind = "image";
      image.image = home + "/pool.img";
      image.root = home + "/pool";
      EXPECT_TRUE(ClosePool(image).ok());
    }
  }
}

}  // namespace
}  // namespace pgb::e2e
