// The conformance suite: the same behavioural tests, end to end (the real pgbranch binary, real
// PostgreSQL 15), against every pool backend on real filesystems: Btrfs and XFS (reflink)
// images, ZFS (zfs-fuse on a file), and plain copies on ext4.

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include "storage/pool.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

bool Exists(const std::string& path) { return std::filesystem::exists(path); }

class ConformanceTest : public BackendTest {
 protected:
  // Creates project `name` (and main) and returns main's JSON.
  nlohmann::json NewProject(const std::string& name) {
    projects_.push_back(name);
    return home().Ok({"project", "create", name, "--json"}).Json();
  }
  nlohmann::json NewBranch(const std::string& ref, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"branch", "create", ref, "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return home().Ok(args).Json();
  }
};

// A new project has a running main with a 32-character password, reachable over TCP with
// scram-sha-256, and `branch url` prints exactly the URI that --json reports.
TEST_P(ConformanceTest, ProjectCreateGivesRunningMain) {
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
TEST_P(ConformanceTest, IsolationBothWays) {
  std::string main_uri = NewProject("p-iso")["uri"];
  auto runner = NewRealProcessRunner();
  Command pgbench;
  pgbench.argv = {"pgbench", "-i", "-s", "1", "-q", main_uri};
  auto init = RunChecked(*runner, pgbench);
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  Sql(main_uri, "CREATE TABLE notes (who text)");
  Sql(main_uri, "INSERT INTO notes VALUES ('before')");

  auto created = home().Ok({"branch", "create", "p-iso/dev", "--json"});
  // Atomic pools checkpoint, then snapshot; copying pools bracket the copy with the backup API
  // (whose start is a checkpoint).
  bool atomic = home().Ok({"status", "--json"}).Json()["pool"]["atomic_snapshots"];
  EXPECT_NE(created.err.find(atomic ? "Checkpoint" : "Backup start"), std::string::npos)
      << created.err;
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
TEST_P(ConformanceTest, BranchOfABranch) {
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
TEST_P(ConformanceTest, ResetBringsParentsCurrentDataAtSameUri) {
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
TEST_P(ConformanceTest, DataSurvivesStopStart) {
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
TEST_P(ConformanceTest, KilledServerShowsStoppedAndRestarts) {
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
TEST_P(ConformanceTest, DeleteFreesVolumeAndPort) {
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
TEST_P(ConformanceTest, DeleteRefusesChildrenUnlessRecursive) {
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
TEST_P(ConformanceTest, HostileNamesRejectedBeforeAnythingIsCreated) {
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
TEST_P(ConformanceTest, DuplicateAndUnknownAreClearErrors) {
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
TEST_P(ConformanceTest, FailedStartIsUndone) {
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
TEST_P(ConformanceTest, FailedResetKeepsOldData) {
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
TEST_P(ConformanceTest, FailedProjectCreateIsUndone) {
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
TEST_P(ConformanceTest, FastAndStoppedParent) {
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
TEST_P(ConformanceTest, ConcurrentCreates) {
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
TEST_P(ConformanceTest, StatusReportsPoolAndBranches) {
  std::string main_uri = NewProject("p-status")["uri"];
  Sql(main_uri, "CREATE TABLE t AS SELECT repeat('x', 1000) AS v FROM generate_series(1, 20000)");
  std::string dev_uri = NewBranch("p-status/dev")["uri"];
  nlohmann::json s = home().Ok({"status", "--json"}).Json();
  EXPECT_TRUE(s["pool"]["configured"]);
  EXPECT_EQ(s["pool"]["kind"], home().pool_config().kind);
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
  if (s["pool"]["copy_on_write"]) {
    EXPECT_LT(exclusive, size / 4) << "a fresh clone shares its parent's blocks";
  } else {
    EXPECT_GT(exclusive, size / 2) << "a full copy shares nothing";
  }

  // Sizes are the last measurement, with its time, until --refresh (or serve) measures again.
  ASSERT_TRUE(dev["sizes_measured_at"].is_string()) << dev.dump();
  std::string measured_at = dev["sizes_measured_at"];
  Sql(dev_uri,
      "CREATE TABLE more AS SELECT repeat('y', 1000) AS v FROM generate_series(1, 30000); "
      "CHECKPOINT");
  nlohmann::json cached = home().Ok({"branch", "get", "p-status/dev", "--json"}).Json();
  EXPECT_EQ(cached["sizes_measured_at"], measured_at);
  EXPECT_EQ(cached["exclusive_bytes"], exclusive);
  nlohmann::json fresh = home().Ok({"branch", "get", "p-status/dev", "--refresh", "--json"}).Json();
  EXPECT_GT(fresh["sizes_measured_at"].get<std::string>(), measured_at);
  // (zfs compresses the repeated text: less than was written, but still far more than before)
  EXPECT_GT(fresh["exclusive_bytes"].get<uint64_t>(), exclusive + (5u << 20)) << fresh.dump();
  for (const auto& b : home().Ok({"branch", "list", "p-status", "--json"}).Json()) {
    if (b["name"] == "dev") {
      EXPECT_EQ(b["sizes_measured_at"], fresh["sizes_measured_at"]);
      EXPECT_EQ(b["exclusive_bytes"], fresh["exclusive_bytes"]);
    }
  }

  std::string text = home().Ok({"status"}).out;
  for (const char* word : {"Pool", "p-status/dev", "running", "UPTIME", "EXCLUSIVE"}) {
    EXPECT_NE(text.find(word), std::string::npos) << word << "\n" << text;
  }
  auto projects = home().Ok({"project", "ls", "--json"}).Json();
  ASSERT_TRUE(projects.is_array());
  EXPECT_EQ(home().Ok({"project", "get", "p-status", "--json"}).Json()["branch_count"], 2);
}

// Deleting a project stops and removes every branch and the project.
TEST_P(ConformanceTest, ProjectDeleteForceRemovesEverything) {
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

// Writes a filler file under `dir` until the filesystem has about `leave` bytes free (or is
// full). The data is incompressible, so ZFS compression cannot make room. Returns its path.
std::string FillPool(const std::string& dir, uint64_t leave) {
  constexpr uint64_t kMaxBytes = 2ull << 30;  // more than any test pool: never fill a host disk
  std::string path = dir + "/filler";
  std::string block(1 << 20, 0);
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((i * 2654435761u) >> 13);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_GE(fd, 0);
  for (uint64_t n = 0; n < (kMaxBytes >> 20); ++n) {
    if (n % 16 == 0) {
      fsync(fd);
      struct statvfs vfs {};
      if (statvfs(dir.c_str(), &vfs) == 0 && uint64_t(vfs.f_bavail) * vfs.f_frsize <= leave) break;
    }
    // Vary each block a little so no filesystem can deduplicate or compress it away.
    std::memcpy(block.data(), &n, sizeof(n));
    if (write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) break;
  }
  fsync(fd);
  close(fd);
  sync();
  return path;
}

// A full pool refuses a new branch with a clear error, creating nothing; the parent is fine.
TEST_P(ConformanceTest, FullPoolRefusesBranch) {
  Home small(GetParam(), "1G");
  ASSERT_TRUE(small.ready());
  std::string uri = small.Ok({"project", "create", "p-full", "--json"}).Json()["uri"];
  // Below pgbranch's 64 MiB floor, but not to the last byte: zfs-fuse's daemon can die when its
  // pool runs completely out of space with snapshots in it.
  std::string filler = FillPool(small.pool_root(), 16ull << 20);
  std::set<std::string> volumes = small.Volumes();
  std::set<std::string> snapshots = small.Snapshots();
  CliResult r = small.Run({"branch", "create", "p-full/dev"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("pool is full"), std::string::npos) << r.err;
  EXPECT_EQ(small.Volumes(), volumes);
  EXPECT_EQ(small.Snapshots(), snapshots);
  std::filesystem::remove(filler);
  EXPECT_EQ(Column(uri, "SELECT 1"), std::vector<std::string>{"1"});
}

// In a pool with a little room left, a create either succeeds or fails cleanly: on a pool that
// copies (no sharing), the copy runs out of space part-way and everything it made is undone.
TEST_P(ConformanceTest, NearlyFullPoolFailsCleanlyMidClone) {
  Home small(GetParam(), "1G");
  ASSERT_TRUE(small.ready());
  std::string uri = small.Ok({"project", "create", "p-mid", "--json"}).Json()["uri"];
  Sql(uri,
      "CREATE TABLE t AS SELECT g, repeat(md5(g::text), 30) AS pad "
      "FROM generate_series(1, 150000) g");
  std::string filler = FillPool(small.pool_root(), 100ull << 20);
  std::set<std::string> volumes = small.Volumes();
  std::set<std::string> snapshots = small.Snapshots();
  CliResult r = small.Run({"branch", "create", "p-mid/dev"});
  bool copies = small.Ok({"status", "--json"}).Json()["pool"]["copy_on_write"] == false;
  if (copies) {
    EXPECT_EQ(r.exit_code, 1) << "a full copy of ~170 MB cannot fit in ~100 MB";
  }
  if (r.exit_code != 0) {
    EXPECT_NE(r.err.find("full"), std::string::npos) << r.err;
    EXPECT_EQ(small.Volumes(), volumes);
    EXPECT_EQ(small.Snapshots(), snapshots);
    EXPECT_NE(small.Run({"branch", "get", "p-mid/dev"}).exit_code, 0);
  } else {
    // Made: complete and running. (Not queried here: on a copy-on-write pool this full, its first
    // query may need the space for hint bits it does not have, which is the filler's doing.)
    EXPECT_EQ(small.Branch("p-mid/dev")["state"], "running");
  }
  std::filesystem::remove(filler);
  EXPECT_EQ(Column(uri, "SELECT count(*) FROM t"), std::vector<std::string>{"150000"});
}

// Snapshots: a labelled snapshot keeps the branch as it was; branches and resets can start
// from it; deleting it is refused while branches were made from it, and --recursive takes them.
TEST_P(ConformanceTest, SnapshotLifecycle) {
  NewProject("p-snap");
  nlohmann::json dev = NewBranch("p-snap/dev");
  Sql(dev["uri"], "CREATE TABLE t (v text); INSERT INTO t VALUES ('before')");
  std::set<std::string> pool_snapshots = home().Snapshots();
  nlohmann::json snap =
      home()
          .Ok({"snapshot", "create", "p-snap/dev", "--label", "before migration", "--json"})
          .Json();
  ASSERT_TRUE(snap["id"].is_number());
  std::string id = std::to_string(snap["id"].get<int64_t>());
  EXPECT_EQ(snap["branch"], "p-snap/dev");
  EXPECT_EQ(snap["label"], "before migration");
  EXPECT_EQ(home().Snapshots().size(), pool_snapshots.size() + 1);
  Sql(dev["uri"], "INSERT INTO t VALUES ('after')");

  nlohmann::json list = home().Ok({"snap", "ls", "p-snap/dev", "--json"}).Json();
  ASSERT_TRUE(list.is_array());
  bool found = false;
  for (const auto& s : list) {
    for (const char* field : {"id", "branch", "label", "created_at", "size_bytes"}) {
      EXPECT_TRUE(s.contains(field)) << field;
    }
    found |= s["id"] == snap["id"];
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(home().Ok({"snapshot", "get", id, "--json"}).Json()["label"], "before migration");

  // A branch from the snapshot sees the data as it was; its parent is the snapshot's branch.
  nlohmann::json old = NewBranch("p-snap/old", {"--snapshot", id});
  EXPECT_EQ(old["parent"], "p-snap/dev");
  EXPECT_EQ(Column(old["uri"], "SELECT v FROM t ORDER BY v"), std::vector<std::string>{"before"});
  // A reset to the snapshot brings the branch back, at the same URI.
  home().Ok({"branch", "reset", "p-snap/dev", "--snapshot", id});
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t ORDER BY v"), std::vector<std::string>{"before"});

  CliResult r = home().Run({"snapshot", "delete", id});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("p-snap/old"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--recursive"), std::string::npos) << r.err;
  home().Ok({"branch", "delete", "p-snap/old"});
  home().Ok({"branch", "reset", "p-snap/dev"});  // back to main's data: the snapshot is free
  home().Ok({"snapshot", "rm", id});
  EXPECT_NE(home().Run({"snapshot", "get", id}).exit_code, 0);
  EXPECT_EQ(home().Snapshots().size(), pool_snapshots.size());

  // --recursive deletes the branches made from a snapshot, and theirs.
  std::string id2 = std::to_string(
      home().Ok({"snapshot", "create", "p-snap/dev", "--json"}).Json()["id"].get<int64_t>());
  NewBranch("p-snap/a", {"--snapshot", id2});
  NewBranch("p-snap/a2", {"--parent", "p-snap/a"});
  home().Ok({"snapshot", "delete", id2, "--recursive"});
  EXPECT_NE(home().Run({"branch", "get", "p-snap/a"}).exit_code, 0);
  EXPECT_NE(home().Run({"branch", "get", "p-snap/a2"}).exit_code, 0);
  EXPECT_EQ(home().Branch("p-snap/dev")["state"], "running");
}

// Bad input about snapshots is refused with a clear error and changes nothing.
TEST_P(ConformanceTest, SnapshotBadInput) {
  NewProject("p-snapbad");
  std::set<std::string> snapshots = home().Snapshots();
  CliResult r = home().Run({"snapshot", "create", "p-snapbad/ghost"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  r = home().Run({"snapshot", "create", "p-snapbad/main", "--label", "two\nlines"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("control character"), std::string::npos) << r.err;
  EXPECT_EQ(
      home().Run({"snapshot", "create", "p-snapbad/main", "--label", "\x1b[31mred"}).exit_code, 2);
  EXPECT_EQ(home()
                .Run({"snapshot", "create", "p-snapbad/main", "--label", std::string(201, 'x')})
                .exit_code,
            1);
  // One good snapshot: a backslash and non-ASCII text are fine in a label.
  home().Ok({"snapshot", "create", "p-snapbad/main", "--label", "a \\ b – ok"});
  EXPECT_EQ(home().Run({"snapshot", "get", "999999"}).exit_code, 1);
  EXPECT_EQ(home().Run({"snapshot", "delete", "999999"}).exit_code, 1);
  EXPECT_EQ(home().Run({"snapshot", "get", "abc"}).exit_code, 2);
  r = home().Run({"snapshot", "cleanup", "--all", "--days", "-1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--days: -1 is out of range"), std::string::npos) << r.err;
  EXPECT_EQ(home().Run({"snapshot", "cleanup", "--all", "--days", "soon"}).exit_code, 2);
  EXPECT_EQ(home().Run({"snapshot", "cleanup", "--days", "1"}).exit_code, 1);
  EXPECT_EQ(home().Run({"branch", "create", "p-snapbad/x", "--snapshot", "999999"}).exit_code, 1);
  // Only the one good snapshot above was made.
  EXPECT_EQ(home().Snapshots().size(), snapshots.size() + 1);
}

// cleanup removes old snapshots nobody depends on, keeps (and explains) the ones branches were
// made from, and --dry-run changes nothing.
TEST_P(ConformanceTest, SnapshotCleanup) {
  NewProject("p-clean");
  NewBranch("p-clean/dev");  // its implicit snapshot of main is depended on
  std::string lone = std::to_string(
      home().Ok({"snapshot", "create", "p-clean/main", "--json"}).Json()["id"].get<int64_t>());
  std::set<std::string> before = home().Snapshots();
  nlohmann::json dry =
      home()
          .Ok({"snapshot", "cleanup", "p-clean/main", "--days", "0", "--dry-run", "--json"})
          .Json();
  // The lone snapshot and main's "base" (made with the project; nothing was made from it).
  ASSERT_EQ(dry["removed"].size(), 2u) << dry.dump();
  std::set<std::string> removed;
  for (const auto& r : dry["removed"]) removed.insert(std::to_string(r["id"].get<int64_t>()));
  EXPECT_EQ(removed.count(lone), 1u) << dry.dump();
  ASSERT_EQ(dry["kept"].size(), 1u) << dry.dump();
  EXPECT_NE(dry["kept"][0]["kept_because"].get<std::string>().find("p-clean/dev"),
            std::string::npos);
  EXPECT_EQ(home().Snapshots(), before);
  EXPECT_EQ(home().Run({"snapshot", "get", lone}).exit_code, 0);

  std::string text = home().Ok({"snapshot", "cleanup", "p-clean/main", "--days", "0"}).out;
  EXPECT_NE(text.find("deleted snapshot " + lone), std::string::npos) << text;
  EXPECT_NE(text.find("kept snapshot"), std::string::npos) << text;
  EXPECT_NE(home().Run({"snapshot", "get", lone}).exit_code, 0);
  EXPECT_EQ(home().Snapshots().size(), before.size() - 2);
  // Recent snapshots are not old enough.
  std::string fresh = std::to_string(
      home().Ok({"snapshot", "create", "p-clean/main", "--json"}).Json()["id"].get<int64_t>());
  home().Ok({"snapshot", "cleanup", "--all", "--days", "1"});
  EXPECT_EQ(home().Run({"snapshot", "get", fresh}).exit_code, 0);
}

// Renames keep ports, passwords and URIs; the old names are gone; history says what happened.
TEST_P(ConformanceTest, RenameKeepsUri) {
  NewProject("p-ren");
  nlohmann::json dev = NewBranch("p-ren/dev");
  Sql(dev["uri"], "CREATE TABLE t (v int); INSERT INTO t VALUES (1)");
  nlohmann::json renamed = home().Ok({"branch", "rename", "p-ren/dev", "feature", "--json"}).Json();
  EXPECT_EQ(renamed["name"], "feature");
  EXPECT_EQ(renamed["uri"], dev["uri"]);
  EXPECT_NE(home().Run({"branch", "get", "p-ren/dev"}).exit_code, 0);
  EXPECT_EQ(home().Run({"branch", "rename", "p-ren/main", "trunk"}).exit_code, 1);
  EXPECT_EQ(home().Run({"branch", "rename", "p-ren/feature", "Bad"}).exit_code, 1);
  EXPECT_EQ(home().Run({"branch", "rename", "p-ren/feature", "main"}).exit_code, 1);

  home().Ok({"project", "rename", "p-ren", "p-ren2"});
  projects_ = {"p-ren2"};
  nlohmann::json moved = home().Branch("p-ren2/feature");
  EXPECT_EQ(moved["uri"], dev["uri"]);
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t"), std::vector<std::string>{"1"});
  // cluster_name follows at the next start.
  home().Ok({"branch", "restart", "p-ren2/feature"});
  EXPECT_EQ(Column(dev["uri"], "SHOW cluster_name"), std::vector<std::string>{"p-ren2/feature"});
  std::string log = home().Ok({"log", "p-ren2/feature"}).out;
  EXPECT_NE(log.find("renamed from p-ren/dev"), std::string::npos) << log;
  EXPECT_NE(log.find("renamed from p-ren/feature"), std::string::npos) << log;
}

// log tells a branch's story newest first; list --tree draws the lineage.
TEST_P(ConformanceTest, LogAndTree) {
  NewProject("p-log");
  NewBranch("p-log/dev");
  home().Ok({"snapshot", "create", "p-log/dev", "--label", "checkpoint one"});
  NewBranch("p-log/exp", {"--parent", "p-log/dev"});
  home().Ok({"branch", "reset", "p-log/dev"});
  nlohmann::json log = home().Ok({"log", "p-log/dev", "--json"}).Json();
  ASSERT_GE(log.size(), 4u) << log.dump(2);
  EXPECT_EQ(log[0]["kind"], "reset");
  std::vector<std::string> kinds;
  for (const auto& l : log) kinds.push_back(l["kind"]);
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "branch"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "snapshot"), kinds.end());
  EXPECT_EQ(kinds.back(), "created");
  std::string text = home().Ok({"log", "p-log/dev"}).out;
  EXPECT_NE(text.find("\"checkpoint one\""), std::string::npos) << text;
  EXPECT_NE(text.find("branch p-log/exp made"), std::string::npos) << text;

  std::string tree = home().Ok({"branch", "list", "p-log", "--tree"}).out;
  EXPECT_NE(tree.find("p-log/main"), std::string::npos) << tree;
  EXPECT_NE(tree.find("└── dev"), std::string::npos) << tree;
  EXPECT_NE(tree.find("    └── exp"), std::string::npos) << tree;
}

// Every storage and runtime operation of a command is in the audit trail, failed ones and the
// undo of a failed create included.
TEST_P(ConformanceTest, AuditTrail) {
  NewProject("p-audit");
  NewBranch("p-audit/dev");
  home().Run({"branch", "create", "p-audit/bad"}, {{"PGBRANCH_FAILPOINTS", "branch-after-clone"}});
  nlohmann::json rows = home().Ok({"audit", "--json", "--limit", "200"}).Json();
  auto has = [&](const std::string& command, const std::string& operation, bool ok) {
    for (const auto& r : rows) {
      if (r["command"] == command && r["operation"] == operation && r["ok"] == ok) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("branch create p-audit/dev", "pool.CreateSnapshot", true));
  EXPECT_TRUE(has("branch create p-audit/dev", "pool.CloneSnapshot", true));
  EXPECT_TRUE(has("branch create p-audit/dev", "runtime.Start", true));
  EXPECT_TRUE(has("project create p-audit", "exec", true)) << "initdb's argv";
  EXPECT_TRUE(has("branch create p-audit/bad", "pool.CloneSnapshot", true));
  EXPECT_TRUE(has("branch create p-audit/bad", "pool.DestroyVolume", true)) << "the undo";
  for (const auto& r : rows) {
    EXPECT_EQ(r["detail"].get<std::string>().find("password"), std::string::npos) << r.dump();
  }
  std::string text = home().Ok({"audit"}).out;
  EXPECT_NE(text.find("OPERATION"), std::string::npos);
}

// A crash part-way through a create leaves a row, a volume, a snapshot and a running server
// behind; doctor names the interrupted operation and --fix undoes it; a port held by a stranger
// is reported.
TEST_P(ConformanceTest, DoctorReconcilesACrash) {
  NewProject("p-doc");
  std::set<std::string> volumes = home().Volumes();
  std::set<std::string> snapshots = home().Snapshots();
  CliResult crash =
      home().Run({"branch", "create", "p-doc/dev"}, {{"PGBRANCH_FAILPOINTS", "crash-after-start"}});
  EXPECT_EQ(crash.exit_code, 70);
  EXPECT_EQ(home().Volumes().size(), volumes.size() + 1);
  CliResult check = home().Run({"doctor"});
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_NE(check.out.find("p-doc/dev was left by an interrupted create"), std::string::npos)
      << check.out;
  // What it made is the interrupted operation's to undo, not an orphan to report twice.
  EXPECT_EQ(check.out.find("orphan"), std::string::npos) << check.out;
  CliResult fixed = home().Run({"doctor", "--fix"});
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out;
  EXPECT_NE(fixed.out.find("fixed"), std::string::npos) << fixed.out;
  EXPECT_EQ(home().Volumes(), volumes);
  EXPECT_EQ(home().Snapshots(), snapshots);
  EXPECT_EQ(home().Run({"doctor"}).exit_code, 0);
  nlohmann::json dev = NewBranch("p-doc/dev");  // the name and port are free again
  EXPECT_EQ(Column(dev["uri"], "SELECT 1"), std::vector<std::string>{"1"});

  home().Ok({"branch", "stop", "p-doc/dev"});
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  // The stopped server's closed connections may leave TIME-WAIT sockets on its port, which
  // only a plain bind minds (doctor's probe sets SO_REUSEADDR too).
  int on = 1;
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(dev["port"].get<int>());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  listen(fd, 1);
  CliResult port = home().Run({"doctor", "--json"});
  close(fd);
  EXPECT_EQ(port.exit_code, 1);
  EXPECT_NE(port.out.find("held by another program"), std::string::npos) << port.out;
}

// Given a stopped branch with a table, the pool library quarantines its volume: the volume
// leaves the pool's list and its PostgreSQL data directory is intact where ListQuarantined says,
// with its owner and mode 0700; Release puts it back, and the branch starts on it with its data.
TEST_P(ConformanceTest, QuarantinedVolumeComesBackWithItsData) {
  NewProject("p-quar");
  nlohmann::json dev = NewBranch("p-quar/dev");
  Sql(dev["uri"], "CREATE TABLE t (v int); INSERT INTO t VALUES (7)");
  home().Ok({"branch", "stop", "p-quar/dev"});
  const std::string data_dir = dev["data_dir"];
  const std::string volume = std::filesystem::path(data_dir).filename();
  struct stat before {};
  ASSERT_EQ(stat(data_dir.c_str(), &before), 0);
  auto read_version = [](const std::string& dir) {
    std::ifstream in(dir + "/PG_VERSION");
    std::string major;
    in >> major;
    return major;
  };
  const std::string major = read_version(data_dir);
  ASSERT_FALSE(major.empty());

  auto runner = NewRealProcessRunner();
  auto pool = OpenPool(home().pool_config(), *runner);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  Status quarantined = (*pool)->Quarantine(volume, std::chrono::system_clock::now());
  ASSERT_TRUE(quarantined.ok()) << quarantined.ToString();
  EXPECT_FALSE(home().Volumes().contains(volume));
  EXPECT_FALSE(Exists(data_dir + "/PG_VERSION"));
  auto held = (*pool)->ListQuarantined();
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_EQ(held->size(), 1u);
  EXPECT_EQ((*held)[0].name, volume);
  struct stat aside {};
  ASSERT_EQ(stat((*held)[0].path.c_str(), &aside), 0) << (*held)[0].path;
  EXPECT_EQ(aside.st_uid, before.st_uid);
  EXPECT_EQ(aside.st_mode & 07777, 0700u);
  EXPECT_EQ(read_version((*held)[0].path), major);

  Status released = (*pool)->Release(volume);
  ASSERT_TRUE(released.ok()) << released.ToString();
  EXPECT_TRUE(home().Volumes().contains(volume));
  EXPECT_TRUE((*pool)->ListQuarantined()->empty());
  home().Ok({"branch", "start", "p-quar/dev"});
  EXPECT_EQ(Column(dev["uri"], "SELECT v FROM t"), std::vector<std::string>{"7"});
}

INSTANTIATE_TEST_SUITE_P(Backends, ConformanceTest, ::testing::ValuesIn(AllBackends()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace pgb::e2e
