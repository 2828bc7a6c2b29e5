// Use without root (issue 11): the whole life cycle as an unprivileged OS user, whose servers
// run as that user, on a copy pool, a reflink pool (XFS) and a Btrfs directory mounted with
// user_subvol_rm_allowed, in directories the user owns; a Btrfs directory mounted without it is
// refused with the way out.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/os_user.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

constexpr const char* kUser = "pgbranch-e2e-user";

class UnprivilegedE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!LookupOsUser(kUser).ok()) {
      MustRun({"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", kUser});
    }
  }
  // doctor's look at the container engines leaves rootless podman's pause process behind.
  static void TearDownTestSuite() {
    NewRealProcessRunner()->Run(Command{.argv = {"pkill", "-KILL", "-u", kUser}});
    MustRun({"userdel", "--force", kUser});
  }

  void SetUp() override {
    auto user = LookupOsUser(kUser);
    ASSERT_TRUE(user.ok()) << user.status().ToString();
    user_ = *user;
    char tmpl[] = "/tmp/pgb-e2e-user-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(chown(dir_.c_str(), user_.uid, user_.gid), 0);
    home_ = dir_ + "/home";
  }
  void TearDown() override {
    // Whatever a failed step left running goes before its pool does.
    Run({"project", "delete", "u", "--force"});
    if (!mounted_.empty()) MustRun({"umount", mounted_});
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // pgbranch as the unprivileged user, with its own home.
  CommandResult Run(const std::vector<std::string>& args) {
    Command c;
    c.argv = {PGBRANCH_BINARY};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.env = {{"PGBRANCH_HOME", home_}, {"NO_COLOR", "1"}, {"HOME", dir_}};
    c.user = user_;
    c.timeout = std::chrono::minutes(5);
    auto r = NewRealProcessRunner()->Run(c);
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      return {};
    }
    return *r;
  }
  CommandResult Ok(const std::vector<std::string>& args) {
    CommandResult r = Run(args);
    EXPECT_TRUE(r.Succeeded()) << FormatArgv(args) << ": " << r.err;
    return r;
  }

  // A fresh Btrfs filesystem (a 1 GiB image file root loop-mounts with `options`) at
  // dir_/btrfs.mnt.
  std::string MountBtrfs(const std::string& options) {
    std::string image = dir_ + "/btrfs.img", mnt = dir_ + "/btrfs.mnt";
    MustRun({"truncate", "-s", "1G", image});
    MustRun({"mkfs.btrfs", "-q", "-f", image});
    std::filesystem::create_directories(mnt);
    MustRun({"mount", "-o", "loop," + options, image, mnt});
    mounted_ = mnt;
    chmod(mnt.c_str(), 0711);
    return mnt;
  }

  // A directory the user owns, for its pool.
  std::string UserDir(const std::string& path) {
    std::filesystem::create_directories(path);
    EXPECT_EQ(chown(path.c_str(), user_.uid, user_.gid), 0);
    return path;
  }

  // project create, branch create, snapshot, reset to it, branch delete, project delete, with
  // the data checked on the way and nothing left in the pool.
  void LifeCycle(const std::string& pool_flag, const std::string& pool_dir) {
    int first = NextPortBlock();
    Ok({"-q", "init", pool_flag, pool_dir, "--port-range",
        fmt::format("{}-{}", first, first + 39)});
    Ok({"-q", "project", "create", "u"});
    nlohmann::json main = nlohmann::json::parse(Ok({"branch", "get", "u/main", "--json"}).out);
    Sql(main["uri"], "CREATE TABLE t AS SELECT 1 AS v");
    nlohmann::json dev =
        nlohmann::json::parse(Ok({"-q", "branch", "create", "u/dev", "--json"}).out);
    EXPECT_EQ(Column(dev["uri"], "SELECT current_user"), std::vector<std::string>{"postgres"});
    std::string id = std::to_string(
        nlohmann::json::parse(Ok({"snapshot", "create", "u/dev", "--json"}).out)["id"]
            .get<int64_t>());
    Sql(dev["uri"], "INSERT INTO t VALUES (2)");
    Ok({"-q", "branch", "reset", "u/dev", "--snapshot", id});
    EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t ORDER BY v"), std::vector<std::string>{"1"});
    // The servers run as the user, not as root or postgres.
    dev = nlohmann::json::parse(Ok({"branch", "get", "u/dev", "--json"}).out);
    CommandResult ps = MustRun({"ps", "-o", "uid=", "-p", std::to_string(dev["pid"].get<int>())});
    EXPECT_EQ(std::stoul(ps.out), user_.uid) << ps.out;
    Ok({"-q", "branch", "delete", "u/dev"});
    Ok({"-q", "project", "delete", "u"});
    std::error_code ec;
    for (const char* sub : {"volumes", "snapshots"}) {
      std::string d = pool_dir + "/" + sub;
      EXPECT_TRUE(std::filesystem::is_empty(d, ec)) << d;
    }
    CommandResult doctor = Run({"doctor"});
    EXPECT_EQ(doctor.out.find("fail "), std::string::npos) << doctor.out;
  }

  OsUser user_;
  std::string dir_, home_;
  std::string mounted_;  // unmounted by TearDown
};

TEST_F(UnprivilegedE2eTest, LifeCycleOnACopyPool) { LifeCycle("--copy", UserDir(dir_ + "/pool")); }

TEST_F(UnprivilegedE2eTest, LifeCycleOnAReflinkPool) {
  Home xfs("xfs", "1G");  // root mounts an XFS image; the user gets a directory in it
  ASSERT_TRUE(xfs.ready());
  chmod(xfs.pool_root().c_str(), 0711);
  LifeCycle("--reflink", UserDir(xfs.pool_root() + "/user"));
  std::error_code ec;
  std::filesystem::remove_all(xfs.pool_root() + "/user", ec);
}

// Snapshots are read-only subvolumes, which Btrfs lets no unprivileged user delete: pgbranch
// makes them writable first (their owner may), where the mount allows deleting at all.
TEST_F(UnprivilegedE2eTest, LifeCycleOnABtrfsDirectory) {
  std::string mnt = MountBtrfs("user_subvol_rm_allowed");
  LifeCycle("--btrfs", UserDir(mnt + "/user"));
}

// Without user_subvol_rm_allowed, branches could be made and never deleted: init refuses, says
// how to remount, and makes nothing in the pool directory.
TEST_F(UnprivilegedE2eTest, BtrfsWithoutUserSubvolRmAllowedIsRefused) {
  std::string mnt = MountBtrfs("noatime");
  std::string pool = UserDir(mnt + "/user");
  CommandResult r = Run({"init", "--btrfs", pool});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("mounted without user_subvol_rm_allowed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'mount -o remount,user_subvol_rm_allowed " + mnt + "'"), std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  std::error_code ec;
  EXPECT_TRUE(std::filesystem::is_empty(pool, ec)) << pool;
}

// `pgbranch setup` (as root) gives the user a Btrfs image of their own, mounted with
// user_subvol_rm_allowed, whose root the user owns; the user's whole life cycle runs there.
// Run again (as after a reboot) it keeps the image; run by the user it says it needs root.
TEST_F(UnprivilegedE2eTest, SetupPreparesABtrfsPoolForTheUser) {
  const std::string dir = dir_ + "/setup", pool = dir + "/pool";
  CommandResult made =
      MustRun({PGBRANCH_BINARY, "setup", "--user", kUser, "--dir", dir, "--size", "1G"});
  mounted_ = pool;
  EXPECT_EQ(made.out, std::string(kUser) + " can now run: pgbranch init --btrfs " + pool + "\n")
      << made.err;
  struct stat st {};
  ASSERT_EQ(stat(pool.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, user_.uid);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  LifeCycle("--btrfs", pool);
  CommandResult again = MustRun({PGBRANCH_BINARY, "setup", "--user", kUser, "--dir", dir});
  EXPECT_NE(again.err.find("Kept " + dir + "/pool.img"), std::string::npos) << again.err;
  CommandResult by_user = Run({"setup", "--user", kUser, "--dir", dir});
  EXPECT_EQ(by_user.exit_code, 1);
  EXPECT_NE(by_user.err.find("run it as root"), std::string::npos) << by_user.err;
}

// A ZFS pool needs root on Linux, which no delegation changes: init says so, and what to use.
TEST_F(UnprivilegedE2eTest, ZfsWithoutRootIsRefusedWithTheReason) {
  CommandResult r = Run({"init", "--zfs", "tank/pgbranch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("zfs-allow(8)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(std::string("pgbranch setup --user ") + kUser), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pgb::e2e
