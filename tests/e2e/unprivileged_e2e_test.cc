// Use without root (issue 11): the whole life cycle as an unprivileged OS user, whose servers
// run as that user, on a copy pool and on a reflink pool (XFS) in directories the user owns.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

}  // namespace
}  // namespace pgb::e2e
