// End-to-end tests of the web dashboard (web/) in a real browser: headless Chromium driven by
// tests/browser/dashboard_test.py (Selenium 4, Debian's chromium-driver), against the real
// binary's `pgbranch serve` on a Btrfs image pool with PostgreSQL.
//
// This side makes the world the script needs: a home, a project "shop" whose main holds a
// small table, a write token and a running serve. It hands them to the script in its
// environment only (the token is a secret and never goes in argv): PGB_API_URL, PGB_TOKEN,
// PGBRANCH_HOME, PGBRANCH (the binary) and PGB_SCREENSHOTS (where the script saves its PNGs:
// $PGB_SCREENSHOTS of this test binary when set, e.g. docs/screenshots; else a directory in the
// home, gone with it). The test fails with the script's output unless it exits 0.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/fs.h"
#include "common/subprocess.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class DashboardE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::make_unique<Home>("btrfs", "3G");
    ASSERT_TRUE(home_->ready()) << "the Btrfs image pool could not be made";
    home_->Ok({"project", "create", "shop"});
    // A little data in main, so that branches, resets and points in time have something to
    // carry (no pgbench: one table is enough).
    Sql(home_->Branch("shop/main")["uri"],
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 200) g");
    CliResult t = home_->Ok({"token", "create", "ui", "--scope", "write"});
    std::string out = t.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    token_ = out.substr(out.rfind('\n') + 1);  // alone on the last line
    ASSERT_EQ(token_.rfind("pgbt_", 0), 0u) << "no token on the last line of:\n" << t.out;

    log_ = home_->path() + "/serve.log";
    serve_pid_ = SpawnServe(
        home_->path(), {"--proxy-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"}, log_, "");
    ASSERT_GT(serve_pid_, 0);
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline && api_url_.empty()) {
      auto record = ReadFile(home_->path() + "/serve.json");
      if (record.ok()) {
        json j = json::parse(*record, nullptr, false);
        if (!j.is_discarded() && j.value("pid", 0) == serve_pid_) {
          api_url_ = j.value("api_url", "");
        }
      }
      if (api_url_.empty()) std::this_thread::sleep_for(50ms);
    }
    ASSERT_FALSE(api_url_.empty()) << "serve did not start:\n" << LogText();
  }

  void TearDown() override {
    if (serve_pid_ > 0) {
      ::kill(serve_pid_, SIGTERM);
      int status = 0;
      ::waitpid(serve_pid_, &status, 0);
      serve_pid_ = -1;
    }
    home_.reset();  // deletes the projects and the pool
  }

  static std::string TextOf(const std::string& path) {
    auto t = ReadFile(path);
    return t.ok() ? *t : "";
  }
  std::string LogText() const { return TextOf(log_); }

  std::unique_ptr<Home> home_;
  std::string token_;
  std::string log_;
  std::string api_url_;
  pid_t serve_pid_ = -1;
};

// Every scenario of tests/browser/dashboard_test.py in one browser session: log in (Enter),
// the project list, the lineage tree, create / reset / point-in-time create / recursive delete
// through the dialogs, a CLI-made branch arriving over the event stream, Escape, phone width,
// no console errors; screenshots along the way.
TEST_F(DashboardE2eTest, BrowserScenarios) {
  for (const char* tool : {"/usr/bin/chromium", "/usr/bin/chromedriver"}) {
    ASSERT_TRUE(PathExists(tool)) << tool << " is missing: scripts/install-deps.sh installs "
                                  << "chromium, chromium-driver and python3-selenium";
  }
  std::string shots;
  if (const char* dir = std::getenv("PGB_SCREENSHOTS"); dir != nullptr && *dir != '\0') {
    shots = dir;
  } else {
    shots = home_->path() + "/screenshots";
    ::mkdir(shots.c_str(), 0700);
  }
  // The script's unittest report, also kept in a file: shown when the run had to be killed.
  const std::string report = home_->path() + "/browser-test.log";
  auto runner = NewRealProcessRunner();
  Command c;
  c.argv = {"/usr/bin/python3",
            std::string(PGBRANCH_SOURCE_DIR) + "/tests/browser/dashboard_test.py"};
  c.cwd = PGBRANCH_SOURCE_DIR;
  c.env = {
      {"PGB_API_URL", api_url_},        {"PGB_TOKEN", token_},
      {"PGBRANCH_HOME", home_->path()}, {"PGBRANCH", PGBRANCH_BINARY},
      {"PGB_SCREENSHOTS", shots},       {"PGB_BROWSER_LOG", report},
      {"PYTHONUNBUFFERED", "1"},        {"PYTHONDONTWRITEBYTECODE", "1"},
  };
  c.timeout = 5min;
  auto r = runner->Run(c);
  ASSERT_TRUE(r.ok()) << "the browser test did not finish: " << r.status().ToString()
                      << "\nits report so far:\n"
                      << TextOf(report) << "\nserve's log:\n"
                      << LogText();
  EXPECT_TRUE(r->Succeeded()) << "tests/browser/dashboard_test.py exited "
                              << (r->term_signal ? "on signal " + std::to_string(r->term_signal)
                                                 : std::to_string(r->exit_code))
                              << ":\n"
                              << r->out << r->err << "\nserve's log:\n"
                              << LogText();
}

}  // namespace
}  // namespace pgb::e2e
