// `project create P --from-dump FILE --transform mask.sql`: a logical load of a real pg_dump
// archive made by the test, masked before any branch can see it; refusals that leave nothing.

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/subprocess.h"
#include "tests/e2e/harness.h"

namespace pgb {
namespace {

using e2e::CliResult;
using e2e::Home;

class LoadE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::make_unique<Home>("btrfs", "3G");
    if (!home_->ready()) GTEST_SKIP() << "no pool";
  }

  std::string Query(const std::string& ref, const std::string& sql) {
    return e2e::PsqlValue(*home_, ref, sql);
  }

  std::string Dump(const std::string& ref, const std::string& format) {
    return e2e::DumpBranch(*home_, ref, format, home_->path() + "/source." + format);
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = home_->path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::unique_ptr<Home> home_;
};

TEST_F(LoadE2eTest, DumpIsLoadedAndMaskedBeforeAnyBranchSeesIt) {
  // "Production": 500 customers with real-looking addresses and their orders.
  home_->Ok({"project", "create", "prod"});
  Query("prod/main",
        "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL UNIQUE);"
        "CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customers,"
        " total numeric);"
        "INSERT INTO customers SELECT g, 'person' || g || '@example.com'"
        " FROM generate_series(1, 500) g;"
        "INSERT INTO orders (customer, total) SELECT 1 + g % 500, g FROM generate_series(1, 2000) "
        "g;");
  std::string dump = Dump("prod/main", "c");
  std::string mask =
      Write("mask.sql", "UPDATE customers SET email = 'customer' || id || '@masked.invalid';\n");

  CliResult made = home_->Run(
      {"project", "create", "shop", "--from-dump", dump, "--jobs", "2", "--transform", mask});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_NE(made.err.find("Restore"), std::string::npos) << made.err;  // the step is shown
  home_->Ok({"branch", "create", "shop/dev"});
  for (const char* ref : {"shop/main", "shop/dev"}) {
    EXPECT_EQ(Query(ref, "SELECT count(*) FROM customers"), "500") << ref;
    EXPECT_EQ(Query(ref, "SELECT count(*) FROM orders"), "2000") << ref;
    EXPECT_EQ(Query(ref, "SELECT count(*) FROM customers WHERE email LIKE '%example.com'"), "0")
        << ref << ": an original address survived";
  }
  // Every snapshot of the project was taken after the mask: a branch from the oldest one (the
  // base) sees masked data too.
  auto snaps = home_->Ok({"snapshot", "list", "shop/main", "--json"}).Json();
  ASSERT_FALSE(snaps.empty());
  home_->Ok({"branch", "create", "shop/oldest", "--snapshot",
             std::to_string(snaps[0]["id"].get<int64_t>())});
  EXPECT_EQ(Query("shop/oldest", "SELECT count(*) FROM customers WHERE email LIKE '%example.com'"),
            "0");
}

TEST_F(LoadE2eTest, RefusalsAndFailuresLeaveNoProject) {
  home_->Ok({"project", "create", "prod"});
  Query("prod/main", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
  std::string dump = Dump("prod/main", "c");
  std::string plain = Dump("prod/main", "p");
  std::string bad = Write("bad.sql", "UPDATE t SET id = 2;\nUPDATE nope SET x = 1;\n");

  auto refused = [&](const std::vector<std::string>& args, const std::string& part) {
    CliResult r = home_->Run(args);
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
    auto projects = home_->Ok({"project", "list", "--json"}).Json();
    EXPECT_EQ(projects.size(), 1u) << projects.dump();  // prod only
  };
  refused({"project", "create", "x", "--from-dump", home_->path() + "/missing.dump"},
          "project create x: the dump");
  refused({"project", "create", "x", "--from-dump", plain}, "text format dump");
  refused({"project", "create", "x", "--transform", bad}, "--transform runs after --from-dump");
  refused({"project", "create", "x", "--from-dump", dump, "--transform", bad},
          "relation \"nope\" does not exist");
  // Nothing left behind: no volume, no half-made main, no open operation.
  CliResult doctor = home_->Run({"doctor", "--json"});
  for (const auto& f : doctor.Json()) EXPECT_NE(f["status"], "fail") << f.dump();
  EXPECT_EQ(home_->Ok({"branch", "list", "--json"}).Json().size(), 1u);
}

}  // namespace
}  // namespace pgb
