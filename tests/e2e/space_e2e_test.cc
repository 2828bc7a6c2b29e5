// Space limits end to end (issue 10: "a full pool never takes down a branch that did not fill
// it"): the real pgbranch binary and real PostgreSQL on small pools of every kind. Where the
// pool can limit branches (the Btrfs image, with simple quotas) a branch that writes until it
// cannot gets "Disk quota exceeded" in its own server, while main goes on committing; where it
// cannot (XFS reflink, copy, and ZFS in zfs-fuse, whose daemon dies at a quota) pgbranch says
// so and refuses --max-size.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;

std::string BackendName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// Commits one row into main's table `heartbeat` every 20 ms on its own connection until
// stopped; counts the commits and keeps the errors.
class MainWriter {
 public:
  explicit MainWriter(std::string uri) : uri_(std::move(uri)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~MainWriter() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int commits() const { return commits_; }
  std::vector<std::string> errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }

 private:
  void Run() {
    auto params = ConnParamsFromUri(uri_);
    auto conn = params.ok() ? Connection::Open(*params)
                            : Result<std::unique_ptr<Connection>>(params.status());
    if (!conn.ok()) {
      Fail(conn.status().ToString());
      return;
    }
    while (!stop_) {
      Status s = (*conn)->Exec("INSERT INTO heartbeat VALUES (now(), repeat('h', 200))");
      if (s.ok()) {
        ++commits_;
      } else {
        Fail(s.ToString());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void Fail(std::string error) {
    std::lock_guard<std::mutex> lock(mu_);
    errors_.push_back(std::move(error));
  }

  const std::string uri_;
  std::atomic<bool> stop_{false};
  std::atomic<int> commits_{0};
  std::mutex mu_;
  std::vector<std::string> errors_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

// Inserts ~100 MB batches into the branch at `uri` until a statement fails (at most
// `max_batches`); returns the first error, "" if none failed.
std::string FillUntilError(const std::string& uri, int max_batches) {
  auto conn = Connect(uri);
  if (!conn) return "cannot connect";
  Status s = conn->Exec("CREATE TABLE big (g int, pad text)");
  for (int i = 0; s.ok() && i < max_batches; ++i) {
    s = conn->Exec(
        "INSERT INTO big SELECT g, repeat(md5(g::text), 20) FROM generate_series(1, 150000) g");
  }
  return s.ok() ? "" : s.ToString();
}

uint64_t FreeBytes(const Home& home) {
  return home.Ok({"status", "--json"}).Json()["pool"]["free_bytes"].get<uint64_t>();
}

class SpaceTest : public ::testing::TestWithParam<std::string> {};

// Given a 1.5 GiB pool that limits branches, main with data and a branch with the default
// limit: while a thread commits into main every 20 ms, the branch inserts until it fails. Its
// error (or, if PostgreSQL stopped on a failed WAL write, its log) says "Disk quota exceeded";
// main committed throughout without a single error, still answers reads and writes, and runs
// with the same postmaster as before. The pool still has main's headroom free. Deleting the
// branch frees its space at once: `status` shows it, and a new branch is made right away.
TEST_P(SpaceTest, BranchAtItsLimitLeavesMainWorking) {
  Home home(GetParam(), "1536M");
  ASSERT_TRUE(home.ready());
  nlohmann::json main = home.Ok({"project", "create", "sp", "--json"}).Json();
  std::string main_uri = main["uri"];
  Sql(main_uri,
      "CREATE TABLE heartbeat (at timestamptz, pad text);"
      "CREATE TABLE kept AS SELECT g, repeat(md5(g::text), 10) AS pad "
      "FROM generate_series(1, 50000) g");
  int main_pid = home.Branch("sp/main")["pid"];
  ASSERT_GT(main_pid, 0);

  nlohmann::json big = home.Ok({"branch", "create", "sp/big", "--json"}).Json();
  nlohmann::json got = home.Branch("sp/big");
  ASSERT_TRUE(got["limit_bytes"].is_number()) << got.dump();
  uint64_t limit = got["limit_bytes"];
  EXPECT_GT(limit, 700 * kMiB);
  EXPECT_LT(limit, 1536 * kMiB);
  EXPECT_NE(home.Ok({"branch", "get", "sp/big"}).out.find("space limit"), std::string::npos);
  EXPECT_TRUE(home.Branch("sp/main")["limit_bytes"].is_null()) << "main has no limit";
  EXPECT_EQ(home.Ok({"status"}).out.find("no per-branch space limits"), std::string::npos);

  MainWriter writer(main_uri);
  std::string error = FillUntilError(big["uri"], 40);
  std::this_thread::sleep_for(std::chrono::seconds(1));  // main keeps committing after it too
  writer.Stop();

  ASSERT_FALSE(error.empty()) << "the branch wrote 40 batches (~4 GB) into a 1.5 GiB pool";
  std::string log = home.Ok({"branch", "logs", "sp/big", "--tail", "400"}).out;
  bool says_quota = error.find("Disk quota exceeded") != std::string::npos ||
                    log.find("Disk quota exceeded") != std::string::npos;
  EXPECT_TRUE(says_quota) << "error: " << error << "\nlog:\n" << log;
  EXPECT_EQ(log.find("No space left on device"), std::string::npos) << log;
  EXPECT_TRUE(writer.errors().empty()) << writer.errors().front();
  EXPECT_GT(writer.commits(), 10);

  EXPECT_GT(FreeBytes(home), 64 * kMiB) << "main's headroom";
  Sql(main_uri, "INSERT INTO kept SELECT g, 'after' FROM generate_series(1, 20000) g");
  EXPECT_EQ(Column(main_uri, "SELECT count(*) FROM kept"), std::vector<std::string>{"70000"});
  nlohmann::json main_now = home.Branch("sp/main");
  EXPECT_EQ(main_now["state"], "running");
  EXPECT_EQ(main_now["pid"], main_pid);

  uint64_t before_delete = FreeBytes(home);
  home.Ok({"branch", "delete", "sp/big"});
  EXPECT_GT(FreeBytes(home), before_delete + limit / 2) << "freed space shows at once";
  nlohmann::json next = home.Ok({"branch", "create", "sp/next", "--json"}).Json();
  EXPECT_EQ(Column(next["uri"], "SELECT count(*) FROM kept"), std::vector<std::string>{"70000"});
  EXPECT_GT(home.Branch("sp/next")["limit_bytes"].get<uint64_t>(), limit / 2);
  EXPECT_EQ(home.Branch("sp/main")["pid"], main_pid);
}

// Given a pool that limits branches: `--max-size 128M` is the branch's limit (read back by
// `branch get`, text and JSON), it stops the branch's inserts with "Disk quota exceeded" well
// before the pool is full, and a reset keeps it. A limit below 64 MiB, or one with --pitr, is
// refused and leaves nothing behind.
TEST_P(SpaceTest, MaxSizeIsTheLimitAndResetKeepsIt) {
  Home home(GetParam(), "1536M");
  ASSERT_TRUE(home.ready());
  home.Ok({"project", "create", "ms"});
  nlohmann::json small =
      home.Ok({"branch", "create", "ms/small", "--max-size", "128M", "--json"}).Json();
  EXPECT_EQ(home.Branch("ms/small")["limit_bytes"], 128 * kMiB);
  EXPECT_NE(home.Ok({"branch", "get", "ms/small"}).out.find("128.0 MiB"), std::string::npos);

  uint64_t free_before = FreeBytes(home);
  std::string error = FillUntilError(small["uri"], 20);
  ASSERT_FALSE(error.empty());
  std::string log = home.Ok({"branch", "logs", "ms/small", "--tail", "400"}).out;
  // The quota stops a write whole ("Disk quota exceeded") or, when part of it fit, as a short
  // write, which PostgreSQL reports without errno ("wrote only 4096 of 8192 bytes"); the free
  // space below tells the quota from a full pool.
  EXPECT_TRUE(error.find("Disk quota exceeded") != std::string::npos ||
              log.find("Disk quota exceeded") != std::string::npos ||
              error.find("could not extend file") != std::string::npos)
      << error << "\n"
      << log;
  EXPECT_GT(FreeBytes(home) + 200 * kMiB, free_before) << "it stopped at its own 128 MiB";

  home.Ok({"branch", "reset", "ms/small"});
  EXPECT_EQ(home.Branch("ms/small")["limit_bytes"], 128 * kMiB);
  EXPECT_EQ(home.Branch("ms/small")["state"], "running");

  std::set<std::string> volumes = home.Volumes();
  std::set<std::string> snapshots = home.Snapshots();
  CliResult tiny = home.Run({"branch", "create", "ms/tiny", "--max-size", "1M"});
  EXPECT_EQ(tiny.exit_code, 2) << "refused as it is parsed";
  EXPECT_NE(tiny.err.find("at least 64.0 MiB"), std::string::npos) << tiny.err;
  CliResult pitr =
      home.Run({"branch", "create", "ms/p", "--max-size", "100M", "--pitr", "1 minute ago"});
  EXPECT_EQ(pitr.exit_code, 2) << pitr.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Snapshots(), snapshots);
  EXPECT_NE(home.Run({"branch", "get", "ms/tiny"}).exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(Pools, SpaceTest, ::testing::Values("btrfs"), BackendName);

class NoSpaceLimitsTest : public ::testing::TestWithParam<std::string> {};

// Given a pool that cannot limit branches (XFS reflink, zfs-fuse, copy): `status` and `doctor`
// say so, `branch get` says the limit is not available (JSON: null), and `--max-size` is
// refused with the reason, leaving nothing behind, rather than pretending.
TEST_P(NoSpaceLimitsTest, SaysSoAndRefusesMaxSize) {
  Home home(GetParam(), "1G");
  home.Ok({"project", "create", "nl"});
  home.Ok({"branch", "create", "nl/dev"});
  EXPECT_NE(home.Ok({"status"}).out.find("no per-branch space limits"), std::string::npos);
  EXPECT_NE(home.Run({"doctor"}).out.find("no per-branch space limits"), std::string::npos);
  EXPECT_TRUE(home.Branch("nl/dev")["limit_bytes"].is_null());
  EXPECT_NE(home.Ok({"branch", "get", "nl/dev"}).out.find("not available on this pool"),
            std::string::npos);

  std::set<std::string> volumes = home.Volumes();
  std::set<std::string> snapshots = home.Snapshots();
  CliResult r = home.Run({"branch", "create", "nl/capped", "--max-size", "200M"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no space limits in this pool"), std::string::npos) << r.err;
  EXPECT_EQ(home.Volumes(), volumes);
  EXPECT_EQ(home.Snapshots(), snapshots);
  EXPECT_NE(home.Run({"branch", "get", "nl/capped"}).exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(Pools, NoSpaceLimitsTest, ::testing::Values("xfs", "zfs", "copy"),
                         BackendName);

}  // namespace
}  // namespace pgb::e2e
