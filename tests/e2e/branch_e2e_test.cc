// End-to-end: the real pgbranch binary, real PostgreSQL 15, a real Btrfs image pool.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "storage/pool.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

// One pool shared by the tests of this suite (mkfs + mount once); each test uses its own
// project, deleted at the end.
class BranchE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { home_ = new Home("4G"); }
  static void TearDownTestSuite() {
    delete home_;
    home_ = nullptr;
  }
  void TearDown() override {
    for (const auto& p : projects_) home_->Run({"project", "delete", p, "--force"});
  }
  // Creates project `name` (and main) and returns main's JSON.
  nlohmann::json NewProject(const std::string& name) {
    projects_.push_back(name);
    return home_->Ok({"project", "create", name, "--json"}).Json();
  }
  nlohmann::json NewBranch(const std::string& ref, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"branch", "create", ref, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return home_->Ok(args).Json();
  }
  const Home& home() { return *home_; }

  static Home* home_;
  std::vector<std::string> projects_;
};
Home* BranchE2eTest::home_ = nullptr;

// A new project has a running main with a 32-character password, reachable over TCP with
// scram-sha-256, and `branch url` prints exactly the URI that --json reports.
TEST_F(BranchE2eTest, ProjectCreateGivesRunningMain) {
  nlohmann::json main = NewProject("p-create");
  EXPECT_EQ(main["name"], "main");
  EXPECT_EQ(main["project"], "p-create");
  EXPECT_TRUE(main["parent"].is_null());
  EXPECT_EQ(main["state"], "running");
  std::string uri = main["uri"];
  EXPECT_EQ(home().Ok({"branch", "url", "p-create/main"}).out, uri + "\n");
  auto at = uri.find('@');
  auto colon = uri.rfind(':', at);
  EXPECT_EQ(at - colon - 1, 32u) << uri;  // the password's length
  EXPECT_EQ(Column(uri, "SELECT 1"), std::vector<std::string>{"1"});
  EXPECT_EQ(Column(uri, "SHOW password_encryption"), std::vector<std::string>{"scram-sha-256"});
  EXPECT_EQ(Column(uri, "SHOW listen_addresses"), std::vector<std::string>{"127.0.0.1"});
  EXPECT_EQ(Column(uri,
                   "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                   "WHERE rolname = 'postgres'"),
            std::vector<std::string>{"t"});

  // A wrong password is refused.
  std::string wrong = uri.substr(0, colon + 1) + std::string(32, 'x') + uri.substr(at);
  auto runner = NewRealProcessRunner();
  Command psql;
  psql.argv = {"psql", "-Atc", "SELECT 1", wrong};
  auto r = runner->Run(psql);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->exit_code, 0);
  EXPECT_NE(r->err.find("password authentication failed"), std::string::npos) << r->err;

  // Tables mask the password; only `branch url` and --json show it.
  std::string table = home().Ok({"branch", "list", "p-create"}).out;
  EXPECT_EQ(table.find(main["uri"].get<std::string>().substr(colon + 1, 32)), std::string::npos);
  EXPECT_NE(table.find("postgres:****@"), std::string::npos) << table;

  // State files are private.
  struct stat st {};
  ASSERT_EQ(stat((home().path() + "/state.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Given real pgbench data in main, a branch sees it; rows written afterwards in the branch are
// absent from main and rows written in main are absent from the branch.
TEST_F(BranchE2eTest, IsolationBothWays) {
  std::string main_uri = NewProject("p-iso")["uri"];
  auto runner = NewRealProcessRunner();
  Command pgbench;
  pgbench.argv = {"pgbench", "-i", "-s", "1", "-q", main_uri};
  auto init = RunChecked(*runner, pgbench);
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  Sql(main_uri, "CREATE TABLE notes (who text)");
  Sql(main_uri, "INSERT INTO notes VALUES ('before')");

  auto created = home().Ok({"branch", "create", "p-iso/dev", "--json"});
  EXPECT_NE(created.err.find("Checkpoint"), std::string::npos) << created.err;
  EXPECT_NE(created.err.find("Snapshot"), std::string::npos) << created.err;
  std::string dev_uri = created.Json()["uri"];
  ASSERT_NE(dev_uri, main_uri);
  EXPECT_EQ(Column(dev_uri, "SELECT count(*) FROM pgbench_accounts"),
            std::vector<std::string>{"100000"});

  Sql(dev_uri, "INSERT INTO notes VALUES ('dev')");
  Sql(dev_uri, "DELETE FROM pgbench_accounts WHERE aid <= 10");
  Sql(main_uri, "INSERT INTO notes VALUES ('main')");
  EXPECT_EQ(Column(main_uri, "SELECT who FROM notes ORDER BY who"),
            (std::vector<std::string>{"before", "main"}));
  EXPECT_EQ(Column(dev_uri, "SELECT who FROM notes ORDER BY who"),
            (std::vector<std::string>{"before", "dev"}));
  EXPECT_EQ(Column(main_uri, "SELECT count(*) FROM pgbench_accounts"),
            std::vector<std::string>{"100000"});
  EXPECT_EQ(Column(dev_uri, "SELECT count(*) FROM pgbench_accounts"),
            std::vector<std::string>{"99990"});
}

// A branch of a branch holds its parent's data, not main's later writes.
TEST_F(BranchE2eTest, BranchOfABranch) {
  std::string main_uri = NewProject("p-nest")["uri"];
  Sql(main_uri, "CREATE TABLE t (v text); INSERT INTO t VALUES ('main')");
  std::string dev_uri = NewBranch("p-nest/dev")["uri"];
  Sql(dev_uri, "INSERT INTO t VALUES ('dev')");
  Sql(main_uri, "INSERT INTO t VALUES ('main-later')");
  nlohmann::json exp = NewBranch("p-nest/exp", {"--parent", "p-nest/dev"});
  EXPECT_EQ(exp["parent"], "p-nest/dev");
  EXPECT_EQ(Column(exp["uri"], "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"dev", "main"}));
}

// Reset throws away the branch's changes and brings in the parent's current data, at the same
// port and URI (same password).
TEST_F(BranchE2eTest, ResetBringsParentsCurrentDataAtSameUri) {
  std::string main_uri = NewProject("p-reset")["uri"];
  Sql(main_uri, "CREATE TABLE t (v text); INSERT INTO t VALUES ('one')");
  nlohmann::json dev = NewBranch("p-reset/dev");
  Sql(dev["uri"], "INSERT INTO t VALUES ('dev-only')");
  Sql(main_uri, "INSERT INTO t VALUES ('two')");
  std::string old_dir = dev["data_dir"];

  nlohmann::json reset = home().Ok({"branch", "reset", "p-reset/dev", "--json"}).Json();
  EXPECT_EQ(reset["uri"], dev["uri"]);
  EXPECT_EQ(reset["port"], dev["port"]);
  EXPECT_EQ(reset["state"], "running");
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"one", "two"}));
  EXPECT_FALSE(Exists(old_dir)) << "the old volume should be destroyed";
  EXPECT_EQ(PostmastersOf(old_dir).size(), 0u);

  // Resetting main is refused: it has no parent.
  CliResult r = home().Run({"branch", "reset", "p-reset/main"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("branch reset p-reset/main: p-reset/main has no parent"), std::string::npos)
      << r.err;
}

// Data written before a stop is there after the start; state follows.
TEST_F(BranchE2eTest, DataSurvivesStopStart) {
  NewProject("p-stop");
  nlohmann::json dev = NewBranch("p-stop/dev");
  Sql(dev["uri"], "CREATE TABLE t (v int); INSERT INTO t VALUES (42)");
  home().Ok({"branch", "stop", "p-stop/dev"});
  EXPECT_EQ(home().Branch("p-stop/dev")["state"], "stopped");
  EXPECT_TRUE(PortIsFree(dev["port"]));
  home().Ok({"branch", "start", "p-stop/dev"});
  nlohmann::json again = home().Branch("p-stop/dev");
  EXPECT_EQ(again["state"], "running");
  EXPECT_EQ(again["port"], dev["port"]);
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t"), std::vector<std::string>{"42"});
  home().Ok({"br", "restart", "p-stop/dev"});
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t"), std::vector<std::string>{"42"});
}

// A server killed from outside shows as stopped (not what the catalog last said) and
// `branch start` brings it back with its data.
TEST_F(BranchE2eTest, KilledServerShowsStoppedAndRestarts) {
  NewProject("p-kill");
  nlohmann::json dev = NewBranch("p-kill/dev");
  Sql(dev["uri"], "CREATE TABLE t (v int); INSERT INTO t VALUES (7)");
  ASSERT_TRUE(dev["pid"].is_number());
  ASSERT_EQ(kill(dev["pid"].get<int>(), SIGKILL), 0);
  for (int i = 0; i < 200 && !PostmastersOf(dev["data_dir"]).empty(); ++i) usleep(10000);
  EXPECT_EQ(home().Branch("p-kill/dev")["state"], "stopped");
  home().Ok({"branch", "start", "p-kill/dev"});
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t"), std::vector<std::string>{"7"});
}

// Deleting a branch stops its server and frees its volume and port.
TEST_F(BranchE2eTest, DeleteFreesVolumeAndPort) {
  NewProject("p-del");
  std::set<std::string> volumes_before = home().Volumes();
  std::set<std::string> snapshots_before = home().Snapshots();
  nlohmann::json dev = NewBranch("p-del/dev");
  std::string dir = dev["data_dir"];
  ASSERT_TRUE(Exists(dir));
  EXPECT_EQ(home().Volumes().size(), volumes_before.size() + 1);
  home().Ok({"branch", "rm", "p-del/dev"});
  EXPECT_FALSE(Exists(dir));
  EXPECT_TRUE(PostmastersOf(dir).empty());
  EXPECT_TRUE(PortIsFree(dev["port"]));
  EXPECT_EQ(home().Volumes(), volumes_before);
  EXPECT_EQ(home().Snapshots(), snapshots_before) << "the implicit snapshot goes with it";
  auto list = home().Ok({"branch", "ls", "p-del", "--json"}).Json();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "main");
}

// A branch with children is not deleted unless --recursive, and the error names them; main
// cannot be deleted while other branches exist.
TEST_F(BranchE2eTest, DeleteRefusesChildrenUnlessRecursive) {
  NewProject("p-tree");
  NewBranch("p-tree/dev");
  NewBranch("p-tree/exp", {"--parent", "p-tree/dev"});
  NewBranch("p-tree/deep", {"--parent", "p-tree/exp"});

  CliResult r = home().Run({"branch", "delete", "p-tree/dev"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("p-tree/exp"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("p-tree/deep"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--recursive"), std::string::npos) << r.err;
  EXPECT_EQ(home().Branch("p-tree/dev")["state"], "running");

  r = home().Run({"branch", "delete", "p-tree/main"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("other branches exist"), std::string::npos) << r.err;

  r = home().Run({"project", "delete", "p-tree"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;

  home().Ok({"branch", "delete", "p-tree/dev", "--recursive"});
  auto list = home().Ok({"branch", "list", "p-tree", "--json"}).Json();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "main");
}

// Hostile and malformed names are refused before anything is created: no row, no volume,
// no snapshot, no process; the message stays on one line.
TEST_F(BranchE2eTest, HostileNamesRejectedBeforeAnythingIsCreated) {
  NewProject("p-names");
  std::set<std::string> volumes = home().Volumes();
  std::set<std::string> snapshots = home().Snapshots();
  auto names = [&] {
    std::set<std::string> out;
    for (const auto& b : home().Ok({"branch", "list", "--json"}).Json()) {
      out.insert(b["project"].get<std::string>() + "/" + b["name"].get<std::string>());
    }
    return out;
  };
  std::set<std::string> before = names();
  for (const std::string& bad : std::vector<std::string>{
           "p-names/../../etc", "p-names/x;reboot", "p-names/$(id)", "p-names/Dev", "p-names/-rf",
           "p-names/a b", "p-names/" + std::string(64, 'a'), "p-names/", "p-names", "../x/y",
           "p-names/x\n--recursive", "p-names/\x1b[31mred"}) {
    CliResult r = home().Run({"branch", "create", bad});
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("branch create"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "escape sequence echoed raw";
  }
  for (const std::string bad : {"Demo", "a/b", "x;y", "--", "_x"}) {
    CliResult r = home().Run({"project", "create", bad});
    EXPECT_NE(r.exit_code, 0) << bad;
  }
  CliResult parent = home().Run({"branch", "create", "p-names/ok", "--parent", "p-names/../x"});
  EXPECT_NE(parent.exit_code, 0);
  EXPECT_EQ(names(), before);
  EXPECT_EQ(home().Volumes(), volumes);
  EXPECT_EQ(home().Snapshots(), snapshots);
}

// Duplicates, unknown parents and unknown projects are clear errors.
TEST_F(BranchE2eTest, DuplicateAndUnknownAreClearErrors) {
  NewProject("p-dup");
  NewBranch("p-dup/dev");
  CliResult r = home().Run({"branch", "create", "p-dup/dev"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "branch create p-dup/dev: branch p-dup/dev already exists\n");
  r = home().Run({"branch", "create", "p-dup/x", "--parent", "p-dup/nope"});
  EXPECT_EQ(r.err, "branch create p-dup/x: parent p-dup/nope does not exist\n");
  r = home().Run({"branch", "create", "nope/x"});
  EXPECT_NE(r.err.find("project nope does not exist"), std::string::npos) << r.err;
  r = home().Run({"project", "create", "p-dup"});
  EXPECT_EQ(r.err, "project create p-dup: project p-dup already exists\n");
  r = home().Run({"branch", "get", "p-dup/ghost"});
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
}

// When postgres cannot start (a real failure: it rejects its configuration), the create is
// undone: no row, no volume, no snapshot, no process, the port free, the parent untouched.
TEST_F(BranchE2eTest, FailedStartIsUndone) {
  std::string main_uri = NewProject("p-undo")["uri"];
  Sql(main_uri, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
  std::set<std::string> volumes = home().Volumes();
  std::set<std::string> snapshots = home().Snapshots();
  for (const char* fp : {"start-bad-config", "branch-after-snapshot", "branch-after-clone"}) {
    CliResult r = home().Run({"branch", "create", "p-undo/dev"}, {{"PGBRANCH_FAILPOINTS", fp}});
    EXPECT_EQ(r.exit_code, 1) << fp;
    if (std::string(fp) == "start-bad-config") {
      EXPECT_NE(r.err.find("PostgreSQL exited while starting"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("shared_buffers"), std::string::npos) << r.err;
    }
    EXPECT_EQ(home().Volumes(), volumes) << fp;
    EXPECT_EQ(home().Snapshots(), snapshots) << fp;
    auto list = home().Ok({"branch", "list", "p-undo", "--json"}).Json();
    EXPECT_EQ(list.size(), 1u) << fp;
  }
  // The port the failed branch had reserved is handed out again, and the parent is unharmed.
  nlohmann::json dev = NewBranch("p-undo/dev");
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t"), std::vector<std::string>{"1"});
  EXPECT_EQ(Column(main_uri, "SELECT v FROM t"), std::vector<std::string>{"1"});
  EXPECT_EQ(home().Branch("p-undo/main")["state"], "running");
}

// A reset whose new server cannot start keeps the branch's old data, running, at the same URI.
TEST_F(BranchE2eTest, FailedResetKeepsOldData) {
  std::string main_uri = NewProject("p-resetfail")["uri"];
  Sql(main_uri, "CREATE TABLE t (v text); INSERT INTO t VALUES ('main')");
  nlohmann::json dev = NewBranch("p-resetfail/dev");
  Sql(dev["uri"], "INSERT INTO t VALUES ('dev')");
  std::set<std::string> volumes = home().Volumes();
  std::set<std::string> snapshots = home().Snapshots();
  CliResult r = home().Run({"branch", "reset", "p-resetfail/dev"},
                           {{"PGBRANCH_FAILPOINTS", "start-bad-config"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("PostgreSQL exited while starting"), std::string::npos) << r.err;
  EXPECT_EQ(home().Branch("p-resetfail/dev")["state"], "running");
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"dev", "main"}));
  EXPECT_EQ(home().Volumes(), volumes);
  EXPECT_EQ(home().Snapshots(), snapshots);
}

// A project whose first server cannot start is not created: no row, no volume, no process.
TEST_F(BranchE2eTest, FailedProjectCreateIsUndone) {
  std::set<std::string> volumes = home().Volumes();
  CliResult r = home().Run({"project", "create", "p-projfail"},
                           {{"PGBRANCH_FAILPOINTS", "start-bad-config"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("project create p-projfail: PostgreSQL exited while starting"),
            std::string::npos)
      << r.err;
  EXPECT_NE(home().Run({"project", "get", "p-projfail"}).exit_code, 0);
  EXPECT_EQ(home().Volumes(), volumes);
  NewProject("p-projfail");  // the name is free again
}

// --fast skips the CHECKPOINT and still gives a consistent branch with the parent's data; a
// stopped parent is branched without a CHECKPOINT.
TEST_F(BranchE2eTest, FastAndStoppedParent) {
  std::string main_uri = NewProject("p-fast")["uri"];
  Sql(main_uri, "CREATE TABLE t AS SELECT generate_series(1, 50000) AS v");
  CliResult fast = home().Ok({"branch", "create", "p-fast/quick", "--fast", "--json"});
  EXPECT_EQ(fast.err.find("Checkpoint"), std::string::npos) << fast.err;
  EXPECT_EQ(Column(fast.Json()["uri"], "SELECT count(*) FROM t"),
            std::vector<std::string>{"50000"});

  home().Ok({"branch", "stop", "p-fast/quick"});
  CliResult child =
      home().Ok({"branch", "create", "p-fast/child", "--parent", "p-fast/quick", "--json"});
  EXPECT_EQ(child.err.find("Checkpoint"), std::string::npos) << child.err;
  EXPECT_EQ(Column(child.Json()["uri"], "SELECT count(*) FROM t"),
            std::vector<std::string>{"50000"});
}

// Two creates at once in one project both succeed, on different ports (project lock +
// catalog transactions).
TEST_F(BranchE2eTest, ConcurrentCreates) {
  NewProject("p-conc");
  auto a = std::async(std::launch::async, [&] {
    return home().Run({"branch", "create", "p-conc/a", "--json"});
  });
  auto b = std::async(std::launch::async, [&] {
    return home().Run({"branch", "create", "p-conc/b", "--json"});
  });
  CliResult ra = a.get(), rb = b.get();
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  EXPECT_NE(ra.Json()["port"], rb.Json()["port"]);
  EXPECT_EQ(Column(ra.Json()["uri"], "SELECT 1"), std::vector<std::string>{"1"});
  EXPECT_EQ(Column(rb.Json()["uri"], "SELECT 1"), std::vector<std::string>{"1"});
}

// status and list report pool usage and every branch with state, port, sizes and uptime; a
// fresh branch's exclusive size is a small fraction of its logical size.
TEST_F(BranchE2eTest, StatusReportsPoolAndBranches) {
  std::string main_uri = NewProject("p-status")["uri"];
  Sql(main_uri, "CREATE TABLE t AS SELECT repeat('x', 1000) AS v FROM generate_series(1, 20000)");
  NewBranch("p-status/dev");
  nlohmann::json s = home().Ok({"status", "--json"}).Json();
  EXPECT_TRUE(s["pool"]["configured"]);
  EXPECT_EQ(s["pool"]["kind"], "image");
  EXPECT_GT(s["pool"]["size_bytes"].get<uint64_t>(), 3ull << 30);
  EXPECT_GT(s["pool"]["free_bytes"].get<uint64_t>(), 0u);
  nlohmann::json dev;
  for (const auto& b : s["branches"]) {
    if (b["project"] == "p-status" && b["name"] == "dev") dev = b;
  }
  ASSERT_FALSE(dev.is_null()) << s.dump(2);
  EXPECT_EQ(dev["state"], "running");
  EXPECT_GE(dev["uptime_seconds"].get<int64_t>(), 0);
  uint64_t size = dev["size_bytes"], exclusive = dev["exclusive_bytes"];
  EXPECT_GT(size, 20u << 20);
  EXPECT_LT(exclusive, size / 4) << "a fresh clone shares its parent's blocks";

  std::string text = home().Ok({"status"}).out;
  for (const char* word : {"Pool", "p-status/dev", "running", "UPTIME", "EXCLUSIVE"}) {
    EXPECT_NE(text.find(word), std::string::npos) << word << "\n" << text;
  }
  auto projects = home().Ok({"project", "ls", "--json"}).Json();
  ASSERT_TRUE(projects.is_array());
  EXPECT_EQ(home().Ok({"project", "get", "p-status", "--json"}).Json()["branch_count"], 2);
}

// Deleting a project stops and removes every branch and the project.
TEST_F(BranchE2eTest, ProjectDeleteForceRemovesEverything) {
  NewProject("p-gone");
  std::set<std::string> volumes = home().Volumes();
  nlohmann::json dev = NewBranch("p-gone/dev");
  nlohmann::json main = home().Branch("p-gone/main");
  home().Ok({"project", "delete", "p-gone", "--force"});
  projects_.clear();
  EXPECT_FALSE(Exists(dev["data_dir"].get<std::string>()));
  EXPECT_FALSE(Exists(main["data_dir"].get<std::string>()));
  EXPECT_TRUE(PortIsFree(dev["port"]));
  EXPECT_TRUE(PortIsFree(main["port"]));
  EXPECT_EQ(home().Volumes().size(), volumes.size() - 1);
  EXPECT_NE(home().Run({"project", "get", "p-gone"}).exit_code, 0);
}

// A pool whose servers are stopped and which is unmounted (as after a reboot) is mounted again
// by the next command, and branches start with their data.
TEST(PoolE2eTest, UnmountedPoolIsMountedAgain) {
  Home home("2G");
  std::string uri = home.Ok({"project", "create", "p-boot", "--json"}).Json()["uri"];
  Sql(uri, "CREATE TABLE t (v int); INSERT INTO t VALUES (5)");
  home.Ok({"branch", "stop", "p-boot/main"});
  PoolConfig pool;
  pool.kind = "image";
  pool.image = home.path() + "/pool.img";
  pool.root = home.pool_root();
  ASSERT_TRUE(ClosePool(pool).ok());
  ASSERT_FALSE(Exists(home.pool_root() + "/volumes"));
  EXPECT_EQ(home.Branch("p-boot/main")["state"], "stopped");
  home.Ok({"branch", "start", "p-boot/main"});
  EXPECT_EQ(Column(uri, "SELECT v FROM t"), std::vector<std::string>{"5"});
}

// With every port of the range taken, a create fails with a clear error and leaves nothing.
TEST(PoolE2eTest, NoFreePort) {
  Home home("2G", "56990-56990");
  home.Ok({"project", "create", "p-ports"});
  std::set<std::string> volumes = home.Volumes();
  CliResult r = home.Run({"branch", "create", "p-ports/dev"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no free port in 56990-56990"), std::string::npos) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Snapshots().size(), 0u);
}

// A full pool refuses a new branch with a clear error, creating nothing; the parent is fine.
TEST(PoolE2eTest, FullPoolRefusesBranch) {
  Home home("1G");
  std::string uri = home.Ok({"project", "create", "p-full", "--json"}).Json()["uri"];
  // Fill the filesystem with someone else's data until (almost) nothing is left.
  std::string filler = home.pool_root() + "/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    std::string block(1 << 20, 'z');
    for (int i = 0; i < 2048 && out.good(); ++i) out.write(block.data(), block.size());
  }
  sync();
  std::set<std::string> volumes = home.Volumes();
  CliResult r = home.Run({"branch", "create", "p-full/dev"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("pool is full"), std::string::npos) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Snapshots().size(), 0u);
  std::filesystem::remove(filler);
  EXPECT_EQ(Column(uri, "SELECT 1"), std::vector<std::string>{"1"});
}

}  // namespace
}  // namespace pgb::e2e

namespace pgb::e2e {
namespace {

// `init --btrfs DIR` uses an existing directory on Btrfs (here: inside another home's image
// pool) as the pool: volumes and snapshots are created there, branches work as usual.
TEST(PoolE2eTest, BtrfsDirectoryPool) {
  Home image("1G");
  std::string dir = image.pool_root() + "/shared-btrfs";
  ASSERT_EQ(mkdir(dir.c_str(), 0711), 0);
  Home home(/*pool_size=*/"");
  home.Ok({"init", "--btrfs", dir, "--port-range", "56960-56969"});
  nlohmann::json main = home.Ok({"project", "create", "p-dir", "--json"}).Json();
  EXPECT_EQ(main["data_dir"].get<std::string>().rfind(dir + "/volumes/", 0), 0u) << main.dump();
  nlohmann::json dev = home.Ok({"branch", "create", "p-dir/dev", "--json"}).Json();
  EXPECT_EQ(Column(dev["uri"], "SELECT 1"), std::vector<std::string>{"1"});
  EXPECT_EQ(home.Ok({"status", "--json"}).Json()["pool"]["kind"], "btrfs");

  // A directory that is not on Btrfs is refused with a reason.
  Home other(/*pool_size=*/"");
  CliResult r = other.Run({"init", "--btrfs", other.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Btrfs"), std::string::npos) << r.err;
}

// --port picks the port; one held by another program is refused before anything is made.
TEST(PoolE2eTest, ChosenPortAndPortInUse) {
  Home home("1G");
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
  Home home("1G");
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

}  // namespace
}  // namespace pgb::e2e
