// The engine under the conditions a daemon makes routine: many commands at once with
// `doctor --fix` running in a loop beside them, interrupts, a reboot that left stale lock files,
// and a lost catalog. Real pgbranch processes, real PostgreSQL, a real Btrfs image pool.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

// Runs `doctor --fix` over and over until stopped, keeping what it said it fixed.
class DoctorLoop {
 public:
  explicit DoctorLoop(const Home& home) : home_(home) {
    thread_ = std::thread([this] {
      while (!stop_) {
        CliResult r = home_.Run({"doctor", "--fix", "--json"});
        ++runs_;
        if (r.exit_code != 0 && r.exit_code != 1) {
          std::lock_guard<std::mutex> lock(mu_);
          errors_.push_back(r.err);
          continue;
        }
        nlohmann::json findings = nlohmann::json::parse(r.out, nullptr, false);
        if (!findings.is_array()) continue;
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& f : findings) {
          if (f["status"] == "fixed") fixed_.push_back(f.dump());
        }
      }
    });
  }
  // Stops the loop and returns what the doctor runs fixed (nothing, when every command they
  // ran beside was in flight and protected).
  std::vector<std::string> Stop() {
    stop_ = true;
    thread_.join();
    EXPECT_GT(runs_.load(), 0);
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : errors_) ADD_FAILURE() << "doctor failed: " << e;
    return fixed_;
  }
  ~DoctorLoop() {
    if (thread_.joinable()) Stop();
  }

 private:
  const Home& home_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> runs_{0};
  std::mutex mu_;
  std::vector<std::string> fixed_;
  std::vector<std::string> errors_;
};

std::string One(const std::string& uri, const std::string& sql) {
  auto c = Column(uri, sql);
  return c.empty() ? "" : c[0];
}

// Doctor has nothing to report: no interrupted operation, no orphan, no quarantine.
void ExpectClean(const Home& home, const std::string& context) {
  CliResult r = home.Run({"doctor", "--json"});
  EXPECT_EQ(r.exit_code, 0) << context << "\n" << r.out << r.err;
  for (const auto& f : r.Json()) {
    EXPECT_NE(f["status"], "fail") << context << ": " << f.dump();
    EXPECT_NE(f["check"], "quarantine") << context << ": " << f.dump();
  }
  EXPECT_TRUE(home.Ok({"operations", "--json"}).Json().empty()) << context << ": open operations";
}

// Every branch of the home: its state is running, its port is its own (no two rows share one),
// and its URI reaches a server that calls itself by the branch's name.
void ExpectBranchesServeTheirOwnPorts(const Home& home) {
  nlohmann::json branches = home.Ok({"branch", "list", "--json"}).Json();
  std::set<int> ports;
  for (const auto& b : branches) {
    std::string ref = b["project"].get<std::string>() + "/" + b["name"].get<std::string>();
    EXPECT_EQ(b["state"], "running") << ref;
    EXPECT_TRUE(ports.insert(b["port"].get<int>()).second) << "port shared: " << b.dump();
    std::string uri = home.Branch(ref)["uri"];
    EXPECT_EQ(One(uri, "SHOW cluster_name"), ref);
  }
}

class SafetyTest : public ::testing::Test {
 protected:
  void NewProject(const Home& home, const std::string& name) {
    std::string uri = home.Ok({"project", "create", name, "--json"}).Json()["uri"];
    Sql(uri, "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id");
  }
};

// Twenty creates on one project at once, with doctor --fix in a loop beside them: every create
// reports success, every branch runs on a port of its own with main's data, and doctor neither
// fixed anything nor left anything behind.
TEST_F(SafetyTest, TwentyConcurrentCreatesBesideDoctor) {
  Home home("btrfs", "4G");
  NewProject(home, "a");
  DoctorLoop doctor(home);
  std::vector<std::future<CliResult>> runs;
  for (int i = 0; i < 20; ++i) {
    runs.push_back(std::async(std::launch::async, [&home, i] {
      return home.Run({"-q", "branch", "create", fmt::format("a/b{}", i)});
    }));
  }
  for (auto& r : runs) {
    CliResult res = r.get();
    EXPECT_EQ(res.exit_code, 0) << res.err;
  }
  std::vector<std::string> fixed = doctor.Stop();
  EXPECT_TRUE(fixed.empty()) << "doctor changed something beside the creates: " << fixed[0];
  ExpectClean(home, "after the creates");
  ExpectBranchesServeTheirOwnPorts(home);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(One(home.Branch(fmt::format("a/b{}", i))["uri"], "SELECT count(*) FROM t"), "1000");
  }
  home.Ok({"project", "delete", "a", "--force"});
}

// Ten creates on each of two projects at once, beside doctor --fix: the projects do not wait
// for each other's locks, and everything ends as in the single-project case.
TEST_F(SafetyTest, TenCreatesOnEachOfTwoProjectsBesideDoctor) {
  Home home("btrfs", "4G");
  NewProject(home, "p1");
  NewProject(home, "p2");
  DoctorLoop doctor(home);
  std::vector<std::future<CliResult>> runs;
  for (int i = 0; i < 20; ++i) {
    std::string ref = fmt::format("p{}/b{}", i % 2 + 1, i / 2);
    runs.push_back(std::async(std::launch::async, [&home, ref] {
      return home.Run({"-q", "branch", "create", ref});
    }));
  }
  for (auto& r : runs) {
    CliResult res = r.get();
    EXPECT_EQ(res.exit_code, 0) << res.err;
  }
  std::vector<std::string> fixed = doctor.Stop();
  EXPECT_TRUE(fixed.empty()) << fixed[0];
  ExpectClean(home, "after the creates");
  ExpectBranchesServeTheirOwnPorts(home);
  EXPECT_EQ(home.Ok({"branch", "list", "--json"}).Json().size(), 22u);
  home.Ok({"project", "delete", "p1", "--force"});
  home.Ok({"project", "delete", "p2", "--force"});
}

// A reset, a snapshot and a delete of one branch at once, beside doctor --fix, several times:
// the delete always succeeds (it waits for the others' locks), whatever the others reported is
// consistent with it, and nothing is left over.
TEST_F(SafetyTest, ResetSnapshotAndDeleteOfOneBranchAtOnce) {
  Home home("btrfs", "4G");
  NewProject(home, "r");
  DoctorLoop doctor(home);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(round);
    home.Ok({"-q", "branch", "create", "r/x"});
    auto reset = std::async(std::launch::async, [&] {
      return home.Run({"-q", "branch", "reset", "r/x"});
    });
    auto snap = std::async(std::launch::async, [&] {
      return home.Run({"-q", "snapshot", "create", "r/x"});
    });
    auto del = std::async(std::launch::async, [&] {
      return home.Run({"-q", "branch", "delete", "r/x"});
    });
    CliResult d = del.get();
    CliResult rs = reset.get();
    CliResult sn = snap.get();
    EXPECT_EQ(d.exit_code, 0) << d.err;
    for (const CliResult* r : {&rs, &sn}) {
      // Before the delete they succeed; after it they find the branch gone or going.
      if (r->exit_code != 0) {
        EXPECT_TRUE(r->err.find("does not exist") != std::string::npos ||
                    r->err.find("is deleting") != std::string::npos)
            << r->err;
      }
    }
    EXPECT_NE(home.Run({"branch", "get", "r/x"}).exit_code, 0);
  }
  std::vector<std::string> fixed = doctor.Stop();
  EXPECT_TRUE(fixed.empty()) << fixed[0];
  ExpectClean(home, "after the rounds");
  nlohmann::json snaps = home.Ok({"snapshot", "list", "--json"}).Json();
  for (const auto& s : snaps) EXPECT_EQ(s["branch"], "r/main") << s.dump();
  home.Ok({"project", "delete", "r", "--force"});
}

// `branch create --parent X` racing `branch delete X`, beside doctor --fix: exactly one of them
// wins; the state matches the winner.
TEST_F(SafetyTest, CreateFromAParentRacingItsDelete) {
  Home home("btrfs", "4G");
  NewProject(home, "c");
  DoctorLoop doctor(home);
  int creates_won = 0, deletes_won = 0;
  for (int round = 0; round < 6; ++round) {
    SCOPED_TRACE(round);
    home.Ok({"-q", "branch", "create", "c/x"});
    auto create = std::async(std::launch::async, [&] {
      return home.Run({"-q", "branch", "create", "c/y", "--parent", "c/x"});
    });
    auto del = std::async(std::launch::async, [&] {
      return home.Run({"-q", "branch", "delete", "c/x"});
    });
    CliResult cr = create.get();
    CliResult dr = del.get();
    EXPECT_NE(cr.exit_code == 0, dr.exit_code == 0) << cr.err << "\n" << dr.err;
    if (cr.exit_code == 0) {
      ++creates_won;
      EXPECT_NE(dr.err.find("has child branches"), std::string::npos) << dr.err;
      EXPECT_EQ(home.Branch("c/y")["parent"], "c/x");
      EXPECT_EQ(One(home.Branch("c/y")["uri"], "SELECT count(*) FROM t"), "1000");
      home.Ok({"-q", "branch", "delete", "c/x", "--recursive"});
    } else {
      ++deletes_won;
      EXPECT_NE(home.Run({"branch", "get", "c/y"}).exit_code, 0);
    }
    EXPECT_NE(home.Run({"branch", "get", "c/x"}).exit_code, 0);
  }
  std::printf("[ race     ] creates won %d, deletes won %d\n", creates_won, deletes_won);
  std::vector<std::string> fixed = doctor.Stop();
  EXPECT_TRUE(fixed.empty()) << fixed[0];
  ExpectClean(home, "after the races");
  home.Ok({"project", "delete", "c", "--force"});
}

// The pid of the newest open operation of `kind` once it is paused, else 0.
pid_t PausedPid(const Home& home, const std::string& kind) {
  for (int i = 0; i < 3000; ++i) {
    for (const auto& op : home.Ok({"operations", "--json"}).Json()) {
      if (op["kind"] == kind && op["step"].get<std::string>().rfind("paused", 0) == 0) {
        return op["pid"].get<pid_t>();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

// A create held half-way (its clone made, its server started) is in flight: doctor --fix
// reports it and touches nothing of it. SIGINT then undoes it: exit 130, nothing left, and the
// name and port are free again.
TEST_F(SafetyTest, InterruptUndoesAndDoctorLeavesInFlightAlone) {
  Home home("btrfs", "3G");
  NewProject(home, "i");
  std::set<std::string> volumes = home.Volumes(), snapshots = home.Snapshots();
  auto create = std::async(std::launch::async, [&] {
    return home.Run({"branch", "create", "i/dev"},
                    {{"PGBRANCH_FAILPOINTS", "pause:branch.create:password"}});
  });
  pid_t pid = PausedPid(home, "branch.create");
  ASSERT_GT(pid, 0);
  CliResult fix = home.Run({"doctor", "--fix"});
  EXPECT_NE(fix.out.find("is in progress"), std::string::npos) << fix.out;
  EXPECT_EQ(fix.out.find("fixed"), std::string::npos) << fix.out;
  EXPECT_EQ(home.Volumes().size(), volumes.size() + 1) << "doctor touched the new volume";
  nlohmann::json dev = home.Branch("i/dev");
  EXPECT_EQ(dev["state"], "creating");
  ASSERT_EQ(kill(pid, SIGINT), 0);
  CliResult r = create.get();
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted by SIGINT"), std::string::npos) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Snapshots(), snapshots);
  EXPECT_TRUE(PostmastersOf(home.pool_root()).size() == 1) << "only main's server runs";
  ExpectClean(home, "after the interrupt");
  nlohmann::json again = home.Ok({"branch", "create", "i/dev", "--json"}).Json();
  EXPECT_EQ(again["port"], dev["port"]);
  home.Ok({"project", "delete", "i", "--force"});
}

// The WAL archive directories of `project` (wal/<project id>, the parent of main's branch
// directory), two levels down.
std::set<std::string> ArchiveDirs(const Home& home, const std::string& project) {
  std::filesystem::path main_archive = home.Ok({"wal", "info", project + "/main", "--json"})
                                           .Json()["archive_dir"]
                                           .get<std::string>();
  std::set<std::string> dirs;
  std::error_code ec;
  for (const auto& b :
       std::filesystem::directory_iterator(main_archive.parent_path().parent_path(), ec)) {
    dirs.insert(b.path().string());
    for (const auto& v : std::filesystem::directory_iterator(b.path(), ec)) {
      dirs.insert(v.path().string());
    }
  }
  return dirs;
}

// Doctor read the catalog, then a create made a branch and its WAL archive, then doctor looked
// at the archives: the new archive is not "of something gone" (doctor judges again, under the
// branch's lock, from fresh reads, before it removes anything).
TEST_F(SafetyTest, DoctorLeavesTheArchiveOfABranchMadeSinceItsReads) {
  Home home("btrfs", "3G");
  NewProject(home, "w");
  std::string pause_dir = home.path() + "/pause";
  std::filesystem::create_directories(pause_dir);
  std::string paused = pause_dir + "/doctor:archives";
  auto doctor = std::async(std::launch::async, [&] {
    return home.Run(
        {"doctor", "--fix", "--json"},
        {{"PGBRANCH_FAILPOINTS", "pause:doctor:archives"}, {"PGBRANCH_PAUSE_DIR", pause_dir}});
  });
  for (int i = 0; i < 3000 && !std::filesystem::exists(paused); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(std::filesystem::exists(paused)) << "doctor never reached its archive check";
  std::set<std::string> before = ArchiveDirs(home, "w");
  home.Ok({"-q", "branch", "create", "w/new"});
  std::set<std::string> after = ArchiveDirs(home, "w");
  ASSERT_GT(after.size(), before.size()) << "the create made no archive";
  std::filesystem::remove(paused);
  CliResult r = doctor.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("stale archive"), std::string::npos) << r.out;
  EXPECT_EQ(ArchiveDirs(home, "w"), after);
  ExpectClean(home, "after doctor");
  home.Ok({"project", "delete", "w", "--force"});
}

// SIGTERM during a reset, after the branch's old server was stopped and the new data cloned:
// the old data is started again, unchanged, at the same URI.
TEST_F(SafetyTest, InterruptedResetRestartsTheOldData) {
  Home home("btrfs", "3G");
  NewProject(home, "t");
  std::string dev = home.Ok({"branch", "create", "t/dev", "--json"}).Json()["uri"];
  Sql(dev, "CREATE TABLE mine AS SELECT 42 AS v");
  std::set<std::string> volumes = home.Volumes();
  auto reset = std::async(std::launch::async, [&] {
    return home.Run({"branch", "reset", "t/dev"},
                    {{"PGBRANCH_FAILPOINTS", "pause:branch.reset:start"}});
  });
  pid_t pid = PausedPid(home, "branch.reset");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  CliResult r = reset.get();
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Branch("t/dev")["state"], "running");
  EXPECT_EQ(One(dev, "SELECT v FROM mine"), "42");
  ExpectClean(home, "after the interrupted reset");
  home.Ok({"project", "delete", "t", "--force"});
}

// After a reboot the pids in a dead server's postmaster.pid and socket lock file may belong to
// any process. Simulated: the postmaster is killed, and both files are made to name a live
// process that is not a postgres. `doctor` says the branch is down and the lock stale;
// `branch start` brings it back, saying it had stopped.
TEST_F(SafetyTest, RebootWithReusedPids) {
  Home home("btrfs", "3G");
  NewProject(home, "b");
  nlohmann::json main = home.Branch("b/main");
  // The socket directory: the project's own (sockets/<id>) where it has its own OS account.
  const std::string socket_dir = Column(main["uri"], "SHOW unix_socket_directories").at(0);
  int pid = main["pid"];
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 500 && !PostmastersOf(main["data_dir"]).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // A live stranger whose pid both lock files will name.
  pid_t stranger = fork();
  if (stranger == 0) {
    execlp("sleep", "sleep", "600", nullptr);
    _exit(127);
  }
  std::string data_dir = main["data_dir"];
  std::string pid_file = data_dir + "/postmaster.pid";
  Result<std::string> text = ReadFile(pid_file);
  ASSERT_TRUE(text.ok()) << "a killed postmaster leaves its postmaster.pid";
  std::string rest = text->substr(text->find('\n'));
  { std::ofstream(pid_file) << stranger << rest; }
  std::string lock = fmt::format("{}/.s.PGSQL.{}.lock", socket_dir, main["port"].get<int>());
  Result<std::string> lock_text = ReadFile(lock);
  ASSERT_TRUE(lock_text.ok()) << lock;
  { std::ofstream(lock) << stranger << lock_text->substr(lock_text->find('\n')); }

  CliResult check = home.Run({"doctor"});
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_NE(check.out.find("recorded running but its server is down"), std::string::npos)
      << check.out;
  EXPECT_NE(check.out.find("socket lock"), std::string::npos) << check.out;
  CliResult start = home.Run({"branch", "start", "b/main"});
  EXPECT_EQ(start.exit_code, 0) << start.err;
  EXPECT_NE(start.err.find("had stopped without being asked"), std::string::npos) << start.err;
  EXPECT_EQ(One(main["uri"], "SELECT count(*) FROM t"), "1000");
  kill(stranger, SIGKILL);
  waitpid(stranger, nullptr, 0);
  ExpectClean(home, "after the start");
  home.Ok({"project", "delete", "b", "--force"});
}

// A branch recorded running whose server died is started again by doctor --fix.
TEST_F(SafetyTest, DoctorRestartsADeadBranch) {
  Home home("btrfs", "3G");
  NewProject(home, "d");
  nlohmann::json main = home.Branch("d/main");
  ASSERT_EQ(kill(main["pid"].get<int>(), SIGKILL), 0);
  for (int i = 0; i < 500 && !PostmastersOf(main["data_dir"]).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CliResult fix = home.Run({"doctor", "--fix"});
  EXPECT_NE(fix.out.find("started d/main"), std::string::npos) << fix.out;
  EXPECT_EQ(One(main["uri"], "SELECT count(*) FROM t"), "1000");
  ExpectClean(home, "after the restart");
  home.Ok({"project", "delete", "d", "--force"});
}

// The catalog deleted, then truncated, with branches present: every command refuses with a
// clear error, creates nothing and changes nothing; `catalog restore --latest` brings back what
// the backup holds, `doctor --adopt` the branches made after it, each with its data.
TEST_F(SafetyTest, LostCatalogIsRestoredAndAdopted) {
  Home home("btrfs", "3G");
  NewProject(home, "l");
  // The first command after the project exists takes the day's backup: main only.
  home.Ok({"-q", "branch", "create", "l/dev"});
  std::string dev = home.Branch("l/dev")["uri"];
  Sql(dev, "INSERT INTO t SELECT generate_series(1001, 1500)");
  home.Ok({"-q", "branch", "create", "l/feature", "--parent", "l/dev"});
  Sql(home.Branch("l/feature")["uri"], "CREATE TABLE f AS SELECT 7 AS v");
  std::set<std::string> volumes = home.Volumes();
  ASSERT_EQ(volumes.size(), 3u);
  std::string db = home.path() + "/state.db";

  for (const char* how : {"deleted", "truncated"}) {
    SCOPED_TRACE(how);
    std::string saved = home.path() + "/state.saved";
    std::filesystem::copy_file(db, saved, std::filesystem::copy_options::overwrite_existing);
    for (const char* suffix : {"-wal", "-shm"}) std::filesystem::remove(db + suffix);
    if (std::string(how) == "deleted") {
      std::filesystem::remove(db);
    } else {
      std::filesystem::resize_file(db, 0);
    }
    for (std::vector<std::string> args : {std::vector<std::string>{"status"},
                                          {"project", "list"},
                                          {"doctor", "--fix"},
                                          {"project", "create", "z"}}) {
      CliResult r = home.Run(args);
      EXPECT_EQ(r.exit_code, 1) << args[0];
      EXPECT_NE(r.err.find("catalog restore"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("doctor --adopt"), std::string::npos) << r.err;
    }
    EXPECT_EQ(std::filesystem::exists(db), std::string(how) == "truncated");
    EXPECT_EQ(home.Volumes(), volumes) << "nothing may change";
    std::filesystem::rename(saved, db);
  }

  // Lost for good: restore the newest backup, then adopt what it lacks.
  std::filesystem::remove(db);
  CliResult listing = home.Run({"catalog", "list", "--json"});
  ASSERT_EQ(listing.exit_code, 0) << listing.err;
  ASSERT_FALSE(listing.Json().empty()) << "no backup was taken";
  CliResult restored = home.Run({"catalog", "restore", "--latest"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  CliResult check = home.Run({"doctor"});
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_NE(check.out.find("holds l/dev"), std::string::npos) << check.out;
  CliResult adopt = home.Run({"doctor", "--adopt", "--fix"});
  EXPECT_EQ(adopt.exit_code, 0) << adopt.out << adopt.err;
  EXPECT_EQ(home.Volumes(), volumes);
  nlohmann::json adopted_dev = home.Branch("l/dev");
  EXPECT_EQ(adopted_dev["parent"], "l/main");
  EXPECT_EQ(One(adopted_dev["uri"], "SELECT count(*) FROM t"), "1500");
  nlohmann::json feature = home.Branch("l/feature");
  EXPECT_EQ(feature["parent"], "l/dev");
  EXPECT_EQ(One(feature["uri"], "SELECT v FROM f"), "7");
  EXPECT_EQ(One(home.Branch("l/main")["uri"], "SELECT count(*) FROM t"), "1000");
  ExpectClean(home, "after restore and adopt");

  // Lost with no backup at all: adopt alone rebuilds the project.
  std::filesystem::remove_all(home.path() + "/backups");
  std::filesystem::remove(db);
  CliResult alone = home.Run({"doctor", "--adopt"});
  EXPECT_EQ(alone.exit_code, 0) << alone.out << alone.err;
  EXPECT_EQ(One(home.Branch("l/feature")["uri"], "SELECT v FROM f"), "7");
  EXPECT_EQ(One(home.Branch("l/dev")["uri"], "SELECT count(*) FROM t"), "1500");
  EXPECT_EQ(home.Branch("l/feature")["parent"], "l/dev");
  ExpectClean(home, "after adopt alone");
  home.Ok({"project", "delete", "l", "--force"});
}

}  // namespace
}  // namespace pgb::e2e
