// Secrets out of argv (issue 11): `pgbranch psql`, `branch env`, masked lists, and pgbranch's
// own connections deaf to the caller's PG* environment.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

// The password in "postgresql://user:password@host:port/db".
std::string PasswordOf(const std::string& uri) {
  size_t start = uri.find(':', uri.find("://") + 3) + 1;
  return uri.substr(start, uri.find('@') - start);
}

// What every process's command line and environment hold, NUL bytes as spaces.
std::vector<std::string> ProcessStrings() {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    for (const char* file : {"cmdline", "environ"}) {
      auto text = ReadFile(entry.path().string() + "/" + file);
      if (!text.ok()) continue;
      std::string s = *text;
      std::replace(s.begin(), s.end(), '\0', ' ');
      out.push_back(s);
    }
  }
  return out;
}

class SecretsE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::make_unique<Home>("btrfs", "3G");
    uri_ = home_->Ok({"project", "create", "s", "--json"}).Json()["uri"];
    password_ = PasswordOf(uri_);
    ASSERT_GE(password_.size(), 16u) << uri_;
  }
  void TearDown() override { home_->Ok({"project", "delete", "s", "--force"}); }

  std::unique_ptr<Home> home_;
  std::string uri_, password_;
};

// While `pgbranch psql` runs a query, no process's command line or environment holds the
// password (psql reads it from the branch's 0600 password file), and the query runs.
TEST_F(SecretsE2eTest, PsqlKeepsThePasswordOffEveryCommandLine) {
  auto psql = std::async(std::launch::async, [&] {
    return home_->Run({"psql", "s/main", "--", "-Atc", "SELECT 'slept' FROM pg_sleep(3)"});
  });
  bool saw_psql = false;
  std::vector<std::string> leaks;
  for (int i = 0;
       i < 100 && psql.wait_for(std::chrono::milliseconds(25)) == std::future_status::timeout;
       ++i) {
    for (const auto& s : ProcessStrings()) {
      saw_psql |= s.find("pg_sleep(3)") != std::string::npos;
      if (s.find(password_) != std::string::npos) leaks.push_back(s);
    }
  }
  CliResult r = psql.get();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "slept\n");
  EXPECT_TRUE(saw_psql) << "the scan never saw psql running";
  EXPECT_TRUE(leaks.empty()) << leaks.front();
}

// `eval "$(pgbranch branch env s/main)"` connects a shell's psql over verified TLS, even one
// with a stale PGPASSWORD; the password file is private.
TEST_F(SecretsE2eTest, BranchEnvConnectsAShell) {
  CliResult env = home_->Ok({"branch", "env", "s/main"});
  EXPECT_EQ(env.out.find(password_), std::string::npos) << env.out;
  nlohmann::json j = home_->Ok({"branch", "env", "s/main", "--json"}).Json();
  std::string passfile = j["PGPASSFILE"];
  struct stat st {};
  ASSERT_EQ(stat(passfile.c_str(), &st), 0) << passfile;
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  CommandResult shell =
      MustRun({"env", "PGBRANCH_HOME=" + home_->path(), "PGPASSWORD=stale", "PGHOST=/nonexistent",
               "bash", "-c",
               fmt::format("eval \"$({} branch env s/main)\" && psql -At -c 'SHOW port' -c 'SELECT "
                           "ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'",
                           PGBRANCH_BINARY)});
  // ... over TLS, the server verified against pgbranch's CA (PGSSLMODE=verify-full).
  EXPECT_EQ(shell.out, j["PGPORT"].get<std::string>() + "\nt\n") << shell.err;
  EXPECT_EQ(j["PGSSLMODE"], "verify-full");
}

// Lists carry masked URIs; `branch get` and `branch url` carry the password.
TEST_F(SecretsE2eTest, ListsMaskThePassword) {
  home_->Ok({"-q", "branch", "create", "s/dev"});
  for (const auto& args : std::vector<std::vector<std::string>>{{"branch", "list", "--json"},
                                                                {"branch", "list"},
                                                                {"status", "--json"},
                                                                {"status"},
                                                                {"project", "get", "s", "--json"},
                                                                {"project", "get", "s"}}) {
    CliResult r = home_->Ok(args);
    EXPECT_EQ(r.out.find(password_), std::string::npos) << fmt::format("{}", fmt::join(args, " "));
    if (args.back() == "--json") EXPECT_NE(r.out.find("****"), std::string::npos) << r.out;
  }
  EXPECT_EQ(home_->Branch("s/main")["uri"], uri_);
  EXPECT_EQ(home_->Ok({"branch", "url", "s/main"}).out, uri_ + "\n");
}

// The caller's PG* variables (a service that does not exist, read-only transactions, another
// host) do not reach pgbranch's own connections: a branch is created, its password set.
TEST_F(SecretsE2eTest, CallersLibpqEnvironmentIsIgnored) {
  CliResult r = home_->Run({"-q", "branch", "create", "s/env", "--json"},
                           {{"PGSERVICE", "no-such-service"},
                            {"PGHOST", "/nonexistent"},
                            {"PGPORT", "1"},
                            {"PGUSER", "nobody"},
                            {"PGDATABASE", "nowhere"},
                            {"PGSSLMODE", "require"},
                            {"PGOPTIONS", "-c default_transaction_read_only=on"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Column(r.Json()["uri"], "SELECT 1"), std::vector<std::string>{"1"});
}

// branch url --service writes [s-main] (no password in it: passfile= names the branch's own
// file) to $PGSERVICEFILE beside the user's own sections, and psql service=s-main connects
// through it, verified by the CA; a section of that name pgbranch did not write is refused and
// the file left as it was.
TEST_F(SecretsE2eTest, ServiceFileEntryConnects) {
  std::string file = home_->path() + "/services.conf";
  const std::string mine = "# mine\n[prod]\nhost=db.example.com\n";
  ASSERT_TRUE(WriteFileAtomic(file, mine, 0640).ok());
  auto service = [&] {
    return home_->Run({"branch", "url", "s/main", "--service"}, {{"PGSERVICEFILE", file}});
  };
  CliResult r = service();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "service=s-main\n");
  std::string text = ReadFile(file).value();
  EXPECT_EQ(text.rfind(mine + "\n[s-main]\n", 0), 0u) << text;
  EXPECT_EQ(text.find(password_), std::string::npos) << text;
  EXPECT_NE(text.find("sslmode=verify-full\n"), std::string::npos) << text;
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  CommandResult psql = MustRun({"env", "PGSERVICEFILE=" + file, "psql", "service=s-main", "-Atc",
                                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"});
  EXPECT_EQ(psql.out, "t\n");
  EXPECT_EQ(service().exit_code, 0);
  EXPECT_EQ(ReadFile(file).value(), text) << "run again, the entry changed";

  const std::string theirs = "[s-main]\nhost=elsewhere\n";
  ASSERT_TRUE(WriteFileAtomic(file, theirs, 0600).ok());
  r = service();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find(file + " has a section [s-main] that pgbranch did not write"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ReadFile(file).value(), theirs);
}

}  // namespace
}  // namespace pgb::e2e
