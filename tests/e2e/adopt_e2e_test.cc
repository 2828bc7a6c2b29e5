// `project create --adopt DATADIR` and `project delete --keep-data` on real pools (a Btrfs
// subvolume on the image pool's filesystem; a ZFS dataset of the pool's zpool): a user's own
// cluster, made with initdb by the `postgres` account and run with pg_ctl outside pgbranch,
// becomes main without a copy and comes back exactly as its owner knew it — same place, owner,
// settings, password and data (plus what main wrote), cleanly shut down, startable by pg_ctl.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/subprocess.h"
#include "pg/cluster.h"
#include "runtime/test_instance.h"
#include "tests/e2e/harness.h"

namespace pgb {
namespace {

using e2e::CliResult;
using e2e::Home;
using e2e::MustRun;

std::string FileText(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class AdoptE2eTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (::getpwnam("postgres") == nullptr) GTEST_SKIP() << "no postgres account";
    home_ = std::make_unique<Home>(GetParam(), "2G");
    if (!home_->ready()) GTEST_SKIP() << "no pool";
    runner_ = NewRealProcessRunner();
    auto bins = FindPgBinaries(*runner_);
    ASSERT_TRUE(bins.ok()) << bins.status().ToString();
    bin_ = bins->bin_dir;
    auto port = test::FreePort();
    ASSERT_TRUE(port.ok());
    port_ = *port;
    sock_ = home_->path() + "/usersock";
    log_ = home_->path() + "/user.log";
    ASSERT_EQ(::mkdir(sock_.c_str(), 0700), 0);
    MustRun({"touch", log_});
    MustRun({"chown", "postgres:postgres", sock_, log_});
    // The user's cluster where the pool can take it in place.
    if (GetParam() == "zfs") {
      const std::string& dataset = home_->pool_config().dataset;
      user_dataset_ = dataset.substr(0, dataset.find('/')) + "/userpg";
      data_ = home_->path() + "/userpg";
      MustRun({"zfs", "create", "-o", "mountpoint=" + data_, user_dataset_});
    } else {
      data_ = home_->pool_root() + "/userdata";
      MustRun({"btrfs", "subvolume", "create", data_});
    }
    MustRun({"chown", "postgres:postgres", data_});
    ASSERT_EQ(::chmod(data_.c_str(), 0700), 0);
    AsPostgres({bin_ + "/initdb", "-D", data_, "-U", "admin", "--auth=trust", "-N"});
    // Its own settings, which must survive.
    AsPostgres({"sh", "-c", "echo \"work_mem = '7MB'\" >> " + data_ + "/postgresql.conf"});
    StartUser();
    UserSql("ALTER ROLE admin PASSWORD 'owner-secret'");
    UserSql("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 500) g");
    verifier_ = UserSql("SELECT rolpassword FROM pg_authid WHERE rolname = 'admin'");
    hba_ = FileText(data_ + "/pg_hba.conf");
  }

  void TearDown() override {
    if (!data_.empty() && PathExists(data_ + "/postmaster.pid")) {
      (void)runner_->Run(
          PostgresCommand({bin_ + "/pg_ctl", "stop", "-D", data_, "-m", "immediate"}));
    }
    home_.reset();
  }

  Command PostgresCommand(std::vector<std::string> argv) {
    Command c;
    c.argv = {"runuser", "-u", "postgres", "--"};
    c.argv.insert(c.argv.end(), argv.begin(), argv.end());
    c.cwd = "/";
    c.timeout = std::chrono::minutes(2);
    return c;
  }
  void AsPostgres(std::vector<std::string> argv) {
    auto r = runner_->Run(PostgresCommand(std::move(argv)));
    ASSERT_TRUE(r.ok() && r->Succeeded()) << (r.ok() ? r->err + r->out : r.status().ToString());
  }
  void StartUser() {
    AsPostgres({bin_ + "/pg_ctl", "start", "-w", "-D", data_, "-l", log_, "-o",
                "-p " + std::to_string(port_) + " -k " + sock_ + " -c listen_addresses=''"});
  }
  void StopUser() { AsPostgres({bin_ + "/pg_ctl", "stop", "-w", "-D", data_, "-m", "fast"}); }
  std::string ClusterState() {
    CommandResult control = MustRun({bin_ + "/pg_controldata", data_});
    size_t at = control.out.find("Database cluster state:");
    if (at == std::string::npos) return "";
    std::string line = control.out.substr(at, control.out.find('\n', at) - at);
    return line.substr(line.find_first_not_of(' ', line.find(':') + 1));
  }
  // The step names of the newest operation, which must be of `kind` and done.
  std::vector<std::string> StepsOfNewest(const std::string& kind) {
    nlohmann::json ops = home_->Ok({"operations", "--all", "--limit", "1", "--json"}).Json();
    std::vector<std::string> steps;
    if (ops.size() != 1) return steps;
    EXPECT_EQ(ops[0]["kind"], kind) << ops.dump();
    for (const auto& step : ops[0]["steps"]) steps.push_back(step["name"]);
    EXPECT_FALSE(steps.empty()) << ops.dump();
    return steps;
  }
  // After doctor: nothing failing, interrupted or quarantined.
  void ExpectDoctorClean(const std::string& context) {
    CliResult r = home_->Run({"doctor", "--json"});
    EXPECT_EQ(r.exit_code, 0) << context << "\n" << r.out << r.err;
    for (const auto& f : r.Json()) {
      EXPECT_NE(f["status"], "fail") << context << ": " << f.dump();
      if (f["check"] == "quarantine" || f["check"] == "interrupted") {
        ADD_FAILURE() << context << ": " << f.dump();
      }
    }
  }
  // The directory is its owner's again and whole: where it was, theirs, no pgbranch files, its
  // rows and password; left cleanly shut down for the next round.
  void ExpectHandedBack(const std::string& context) {
    ASSERT_TRUE(PathExists(data_ + "/PG_VERSION")) << context << ": not back at " << data_;
    struct stat st {};
    ASSERT_EQ(::stat(data_.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, ::getpwnam("postgres")->pw_uid) << context;
    EXPECT_FALSE(PathExists(data_ + "/pgbranch.conf")) << context;
    EXPECT_EQ(FileText(data_ + "/pg_hba.conf"), hba_) << context;
    StartUser();
    EXPECT_EQ(UserSql("SELECT count(*) FROM orders"), "500") << context;
    EXPECT_EQ(UserSql("SELECT rolpassword FROM pg_authid WHERE rolname = 'admin'"), verifier_)
        << context;
    StopUser();
  }

  std::string UserSql(const std::string& sql) {
    CommandResult r = MustRun({"psql", "-h", sock_, "-p", std::to_string(port_), "-U", "admin",
                               "-d", "postgres", "-XAtc", sql});
    return Trimmed(r.out);
  }

  std::unique_ptr<Home> home_;
  std::unique_ptr<ProcessRunner> runner_;
  std::string bin_, sock_, log_, data_, user_dataset_, verifier_, hba_;
  int port_ = 0;
};

TEST_P(AdoptE2eTest, AdoptsInPlaceAndHandsBackAsItWas) {
  // Running: refused, and nothing is made.
  CliResult busy = home_->Run({"project", "create", "shop", "--adopt", data_});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_NE(busy.err.find("in use by a running server"), std::string::npos) << busy.err;
  EXPECT_TRUE(PathExists(data_ + "/PG_VERSION"));
  EXPECT_EQ(Trimmed(home_->Ok({"project", "list", "--json"}).out), "[]");
  EXPECT_TRUE(home_->Volumes().empty());

  // Another major version's directory (an old cluster left by an upgrade): refused first.
  std::string old_cluster = home_->path() + "/pg14";
  ASSERT_EQ(::mkdir(old_cluster.c_str(), 0700), 0);
  ASSERT_TRUE(WriteFileAtomic(old_cluster + "/PG_VERSION", "14\n", 0600).ok());
  CliResult old = home_->Run({"project", "create", "old", "--adopt", old_cluster});
  EXPECT_NE(old.exit_code, 0);
  EXPECT_NE(old.err.find("holds PostgreSQL 14 data, the project runs PostgreSQL"),
            std::string::npos)
      << old.err;
  EXPECT_EQ(Trimmed(home_->Ok({"project", "list", "--json"}).out), "[]");

  // --stop: pgbranch stops it cleanly and takes it in without copying.
  home_->Ok({"project", "create", "shop", "--adopt", data_, "--stop"});
  EXPECT_FALSE(PathExists(data_ + "/PG_VERSION")) << "the directory was copied, not moved";
  ASSERT_EQ(home_->Volumes().size(), 1u);
  std::string main_uri = Trimmed(home_->Ok({"branch", "url", "shop/main"}).out);
  EXPECT_EQ(e2e::Column(main_uri, "SELECT count(*) FROM orders"), std::vector<std::string>{"500"});
  // Its own settings are kept beside pgbranch's.
  EXPECT_EQ(e2e::Column(main_uri, "SHOW work_mem"), std::vector<std::string>{"7MB"});
  EXPECT_EQ(e2e::Column(main_uri, "SELECT current_user"), std::vector<std::string>{"admin"});

  // Branches are copy-on-write clones of it, isolated from it.
  home_->Ok({"branch", "create", "shop/dev"});
  std::string dev_uri = Trimmed(home_->Ok({"branch", "url", "shop/dev"}).out);
  e2e::Sql(dev_uri, "DELETE FROM orders");
  e2e::Sql(main_uri, "INSERT INTO orders VALUES (501)");
  EXPECT_EQ(e2e::Column(main_uri, "SELECT count(*) FROM orders"), std::vector<std::string>{"501"});

  // Hand back: refused while branches exist, and for a project that was not adopted.
  CliResult has_branches = home_->Run({"project", "delete", "shop", "--keep-data"});
  EXPECT_NE(has_branches.exit_code, 0);
  EXPECT_NE(has_branches.err.find("shop/dev"), std::string::npos) << has_branches.err;
  home_->Ok({"project", "create", "plain"});
  CliResult not_adopted = home_->Run({"project", "delete", "plain", "--keep-data"});
  EXPECT_NE(not_adopted.exit_code, 0);
  EXPECT_NE(not_adopted.err.find("was not adopted"), std::string::npos) << not_adopted.err;
  home_->Ok({"project", "delete", "plain"});

  home_->Ok({"project", "delete", "shop", "--keep-data", "--force"});
  EXPECT_TRUE(home_->Volumes().empty());
  EXPECT_TRUE(home_->Snapshots().empty());
  ASSERT_TRUE(PathExists(data_ + "/PG_VERSION")) << "not handed back to " << data_;
  struct stat st {};
  ASSERT_EQ(::stat(data_.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::getpwnam("postgres")->pw_uid) << "owner not restored";
  EXPECT_FALSE(PathExists(data_ + "/pgbranch.conf"));
  std::string conf = FileText(data_ + "/postgresql.conf");
  EXPECT_EQ(conf.find("pgbranch"), std::string::npos) << "pgbranch's include left behind";
  EXPECT_NE(conf.find("work_mem = '7MB'"), std::string::npos);
  EXPECT_EQ(FileText(data_ + "/pg_hba.conf"), hba_);
  CommandResult control = MustRun({bin_ + "/pg_controldata", data_});
  EXPECT_NE(control.out.find("Database cluster state:               shut down\n"),
            std::string::npos)
      << control.out;

  // Its owner starts it as before: main's writes are there, the password is its own.
  StartUser();
  EXPECT_EQ(UserSql("SELECT count(*) FROM orders"), "501");
  EXPECT_EQ(UserSql("SELECT rolpassword FROM pg_authid WHERE rolname = 'admin'"), verifier_);
}

// Killed at every step of the adopt and of the hand back, then `doctor --fix`: the directory
// is never lost nor left half-changed. Either the adopt committed (then --keep-data hands it
// back) or it is back where it was, its owner's, with its rows and its own password.
TEST_P(AdoptE2eTest, CrashAtEveryStepOfAdoptAndHandBackLosesNothing) {
  if (GetParam() != "btrfs") GTEST_SKIP() << "the crash sweep runs on btrfs";
  StopUser();
  const std::vector<std::string> adopt = {"project", "create", "shop", "--adopt", data_};
  const std::vector<std::string> hand_back = {"project", "delete", "shop", "--keep-data"};
  home_->Ok(adopt);
  std::vector<std::string> create_steps = StepsOfNewest("project.create");
  home_->Ok(hand_back);
  std::vector<std::string> delete_steps = StepsOfNewest("project.delete");
  ExpectHandedBack("run normally");
  int crashes = 0;
  for (const auto& [kind, steps] :
       {std::pair{"project.create", create_steps}, std::pair{"project.delete", delete_steps}}) {
    for (const std::string& step : steps) {
      std::string point = fmt::format("crash:{}:{}", kind, step);
      SCOPED_TRACE(point);
      bool deleting = std::string(kind) == "project.delete";
      if (deleting) home_->Ok(adopt);
      CliResult r = home_->Run(deleting ? hand_back : adopt, {{"PGBRANCH_FAILPOINTS", point}});
      EXPECT_EQ(r.exit_code, 70) << r.err;
      ++crashes;
      CliResult fix = home_->Run({"doctor", "--fix", "--json"});
      EXPECT_EQ(fix.exit_code, 0) << fix.out << fix.err;
      ExpectDoctorClean(point);
      if (home_->Run({"project", "get", "shop"}).exit_code == 0) {
        // Committed, or the delete undone: the project runs on the adopted data.
        std::string uri = Trimmed(home_->Ok({"branch", "url", "shop/main"}).out);
        EXPECT_EQ(e2e::Column(uri, "SELECT count(*) FROM orders"), std::vector<std::string>{"500"});
        home_->Ok(hand_back);
      }
      if (ClusterState() != "shut down") {
        // A crash while main ran hands it back as a crash would leave it: its owner's server
        // recovers it.
        StartUser();
        StopUser();
      }
      ExpectHandedBack(point);
      if (HasFatalFailure()) return;
    }
  }
  std::printf("[ sweep    ] %d crashes, each followed by doctor --fix\n", crashes);
}

INSTANTIATE_TEST_SUITE_P(Pools, AdoptE2eTest, ::testing::Values("btrfs", "zfs"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace pgb
