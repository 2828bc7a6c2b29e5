// `project refresh P` (new data for main, branches keep theirs) and `branch rebase P/B` (a
// branch onto main's new data, keeping its port, password, protection and labels); and
// `project create --from-server URI --logical` (pg_dump of a running server, then restore).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "tests/e2e/harness.h"

namespace pgb {
namespace {

using e2e::CliResult;
using e2e::Home;

class RefreshE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::make_unique<Home>("btrfs", "3G");
    if (!home_->ready()) GTEST_SKIP() << "no pool";
    // "Production": a project of its own, with customers whose addresses must never reach a
    // branch of the loaded project.
    home_->Ok({"project", "create", "prod"});
    Query("prod/main",
          "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL);"
          "INSERT INTO customers SELECT g, 'person' || g || '@example.com'"
          " FROM generate_series(1, 100) g;");
    mask_ =
        Write("mask.sql", "UPDATE customers SET email = 'customer' || id || '@masked.invalid';\n");
  }

  std::string Query(const std::string& ref, const std::string& sql) {
    return e2e::PsqlValue(*home_, ref, sql);
  }

  std::string Dump(const std::string& name) {
    return e2e::DumpBranch(*home_, "prod/main", "c", home_->path() + "/" + name);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = home_->path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  void ExpectMasked(const std::string& ref) {
    EXPECT_EQ(Query(ref, "SELECT count(*) FROM customers WHERE email LIKE '%example.com'"), "0")
        << ref << ": an original address survived";
  }

  void ExpectDoctorClean() {
    CliResult doctor = home_->Run({"doctor", "--json"});
    for (const auto& f : doctor.Json()) EXPECT_NE(f["status"], "fail") << f.dump();
  }

  std::unique_ptr<Home> home_;
  std::string mask_;
};

// `schedule add P --refresh CRON --from-dump FILE`: serve reloads the file at that path on each
// run (a nightly dump rewritten in place), masked, while branches keep their data. Every
// minute, so the test waits for the next minute's run (the cron arithmetic and the catch-up
// after downtime are the fake-clock tests' of snapshot schedules; this is the wiring).
TEST_F(RefreshE2eTest, RefreshScheduleReloadsTheDumpAtItsPath) {
  std::string nightly = Dump("nightly.dump");
  home_->Ok({"project", "create", "shop", "--from-dump", nightly, "--transform", mask_});
  home_->Ok({"branch", "create", "shop/dev"});

  auto refused = [&](const std::vector<std::string>& args, const std::string& says) {
    CliResult r = home_->Run(args);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  };
  refused({"schedule", "add", "shop", "--refresh", "@daily"},
          "a refresh schedule loads --from-dump FILE or --from-server URI; give one");
  refused({"schedule", "add", "shop", "--refresh", "@daily", "--from-dump", nightly, "--keep", "2"},
          "--keep and --max-age are a snapshot schedule's");
  refused({"schedule", "add", "shop/dev", "--refresh", "@daily", "--from-dump", nightly},
          "a refresh schedule refreshes the project's main; give shop or shop/main");
  refused({"schedule", "add", "shop/main", "--snapshot", "@daily", "--from-dump", nightly},
          "say what a --refresh schedule loads");
  EXPECT_EQ(home_->Ok({"schedule", "list", "--json"}).Json().size(), 0u);

  // Tonight's dump, written over last night's.
  Query("prod/main",
        "INSERT INTO customers SELECT g, 'person' || g || '@example.com'"
        " FROM generate_series(101, 150) g;");
  Dump("nightly.dump");
  nlohmann::json added = home_
                             ->Ok({"schedule", "add", "shop", "--refresh", "* * * * *",
                                   "--from-dump", nightly, "--transform", mask_, "--json"})
                             .Json();
  EXPECT_EQ(added["kind"], "refresh");
  EXPECT_EQ(added["branch"], "shop/main");
  EXPECT_EQ(added["source"], "dump " + nightly);

  std::string log = home_->path() + "/serve.log";
  pid_t serve = e2e::SpawnServe(
      home_->path(), {"--proxy-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"}, log, "");
  // Main is down while the refresh swaps it: asked without failing the test meanwhile.
  bool refreshed = e2e::Eventually(
      [&] {
        CliResult r =
            home_->Run({"psql", "shop/main", "--", "-XAtc", "SELECT count(*) FROM customers"});
        return r.exit_code == 0 && r.out == "150\n";
      },
      std::chrono::seconds(100));
  ::kill(serve, SIGTERM);
  int status = 0;
  ::waitpid(serve, &status, 0);
  std::ifstream in(log);
  std::string serve_log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(refreshed) << "no refresh within 100 s; serve said:\n" << serve_log;
  ExpectMasked("shop/main");
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM customers"), "100");
  nlohmann::json listed = home_->Ok({"schedule", "list", "shop", "--json"}).Json();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["last_result"], "refreshed shop/main");
  home_->Ok({"schedule", "remove", std::to_string(listed[0]["id"].get<int64_t>())});
  ExpectDoctorClean();
}

TEST_F(RefreshE2eTest, RefreshKeepsBranchesUntilRebase) {
  home_->Ok(
      {"project", "create", "shop", "--from-dump", Dump("monday.dump"), "--transform", mask_});
  home_->Ok({"branch", "create", "shop/dev", "--label", "team=web", "--protect"});
  Query("shop/dev", "CREATE TABLE dev_work (x int); INSERT INTO dev_work VALUES (1);");
  nlohmann::json before = home_->Branch("shop/dev");

  // Tuesday's data: 50 more customers.
  Query("prod/main",
        "INSERT INTO customers SELECT g, 'person' || g || '@example.com'"
        " FROM generate_series(101, 150) g;");
  CliResult refreshed = home_->Run(
      {"project", "refresh", "shop", "--from-dump", Dump("tuesday.dump"), "--transform", mask_});
  ASSERT_EQ(refreshed.exit_code, 0) << refreshed.err;
  EXPECT_EQ(Query("shop/main", "SELECT count(*) FROM customers"), "150");
  ExpectMasked("shop/main");
  // The branch keeps Monday's data, and its own work, until it is moved.
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM customers"), "100");
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM dev_work"), "1");

  // Protected: a rebase discards its data, so it needs --force.
  CliResult refused = home_->Run({"branch", "rebase", "shop/dev"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("protected"), std::string::npos) << refused.err;
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM dev_work"), "1");
  CliResult rebased = home_->Run({"branch", "rebase", "shop/dev", "--force"});
  ASSERT_EQ(rebased.exit_code, 0) << rebased.err;
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM customers"), "150");
  EXPECT_EQ(Query("shop/dev", "SELECT to_regclass('dev_work') IS NULL"), "t");
  ExpectMasked("shop/dev");
  nlohmann::json after = home_->Branch("shop/dev");
  EXPECT_EQ(after["port"], before["port"]);
  EXPECT_EQ(after["uri"], before["uri"]);  // same password
  EXPECT_EQ(after["protected"], true);
  EXPECT_EQ(after["labels"], before["labels"]);

  // The history says what happened.
  std::string main_log = home_->Ok({"log", "shop/main"}).out;
  EXPECT_NE(main_log.find("refreshed from the dump"), std::string::npos) << main_log;
  std::string dev_log = home_->Ok({"log", "shop/dev"}).out;
  EXPECT_NE(dev_log.find("rebased onto shop/main"), std::string::npos) << dev_log;
  ExpectDoctorClean();
}

TEST_F(RefreshE2eTest, FailedRefreshBringsTheOldMainBack) {
  home_->Ok({"project", "create", "shop", "--from-dump", Dump("monday.dump")});
  Query("shop/main", "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42);");
  std::string bad = Write("bad.sql", "UPDATE nope SET x = 1;\n");
  nlohmann::json before = home_->Branch("shop/main");
  CliResult r = home_->Run(
      {"project", "refresh", "shop", "--from-dump", Dump("tuesday.dump"), "--transform", bad});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("project refresh shop:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("relation \"nope\" does not exist"), std::string::npos) << r.err;
  nlohmann::json after = home_->Branch("shop/main");
  EXPECT_EQ(after["state"], "running");
  EXPECT_EQ(after["data_dir"], before["data_dir"]);
  EXPECT_EQ(Query("shop/main", "SELECT x FROM kept"), "42");

  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"project", "refresh", "shop"},
        {"project", "refresh", "shop", "--from-dump", home_->path() + "/missing.dump"},
        {"project", "refresh", "nosuch", "--from-dump", Dump("x.dump")}}) {
    CliResult refused = home_->Run(args);
    EXPECT_NE(refused.exit_code, 0) << args.back();
    EXPECT_NE(refused.err.find("project refresh"), std::string::npos) << refused.err;
  }
  EXPECT_EQ(Query("shop/main", "SELECT x FROM kept"), "42");
  ExpectDoctorClean();
}

TEST_F(RefreshE2eTest, LogicalCopyOfARunningServer) {
  // prod/main is the running server: its URI carries its password.
  std::string uri = home_->Ok({"branch", "url", "prod/main"}).out;
  while (!uri.empty() && uri.back() == '\n') uri.pop_back();
  uri += "?sslmode=disable";
  CliResult made = home_->Run({"project", "create", "lg", "--from-server", uri, "--logical",
                               "--jobs", "2", "--transform", mask_});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.err.find("Dump"), std::string::npos) << made.err;
  EXPECT_EQ(Query("lg/main", "SELECT count(*) FROM customers"), "100");
  ExpectMasked("lg/main");
  home_->Ok({"branch", "create", "lg/dev"});
  ExpectMasked("lg/dev");
  // The scratch dump is gone.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(home_->path() + "/sources", ec)) {
    ADD_FAILURE() << "left: " << e.path();
  }

  Query("prod/main", "INSERT INTO customers VALUES (500, 'late@example.com');");
  CliResult refreshed = home_->Run(
      {"project", "refresh", "lg", "--from-server", uri, "--logical", "--transform", mask_});
  ASSERT_EQ(refreshed.exit_code, 0) << refreshed.err;
  EXPECT_EQ(Query("lg/main", "SELECT count(*) FROM customers"), "101");
  ExpectMasked("lg/main");
  EXPECT_EQ(Query("lg/dev", "SELECT count(*) FROM customers"), "100");
  ExpectDoctorClean();
}

}  // namespace
}  // namespace pgb
