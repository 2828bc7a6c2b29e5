// Benchmark: how long until a new copy of a database answers a query.
//
// In one run, on the same data (main loaded with `pgbench -i -s SCALE`, ~1 GB at scale 70):
// After loading, one CHECKPOINT and a sync let the load settle. Then:
//   - pgbranch branch create: command start -> first successful `SELECT 1` on the new branch
//     over TCP with its password (includes process start, CHECKPOINT, snapshot, clone,
//     PostgreSQL start, and a fresh client connection);
//   - CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY and WAL_LOG: statement start -> first
//     `SELECT 1` in the new database;
//   - cp -a of the data directory (--reflink=never: a real copy; on Btrfs, GNU cp 9 would
//     otherwise reflink): copy time alone, before any server could even start.
// Prints p50/p95 and the ratio to pgbranch's p50, the per-step medians pgbranch reports, and
// the exclusive size of a fresh branch. Figures, not assertions.
//
// Usage: pgbranch_bench --pgbranch BIN [--home DIR] [--scale 70] [--branches 10] [--copies 3]
// Needs root (the default pool is a loop-mounted image). Leaves nothing behind.

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/bytes.h"
#include "common/subprocess.h"
#include "pg/client.h"
#include "storage/pool.h"

namespace pgb {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string pgbranch;
  std::string home = "/var/tmp/pgbranch-bench";
  int scale = 70;
  int branches = 10;
  int copies = 3;
};

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double rank = p * (v.size() - 1);
  size_t lo = static_cast<size_t>(rank);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - lo);
}

[[noreturn]] void Die(const std::string& what, const Status& s) {
  fmt::print(stderr, "bench: {}: {}\n", what, s.ToString());
  std::exit(1);
}

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)), runner_(NewRealProcessRunner()) {}

  CommandResult Pgbranch(const std::vector<std::string>& args) {
    Command c;
    c.argv = {o_.pgbranch};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.env = {{"PGBRANCH_HOME", o_.home}, {"NO_COLOR", "1"}};
    auto r = RunChecked(*runner_, c);
    if (!r.ok()) Die("pgbranch", r.status());
    return *r;
  }

  // Polls until `SELECT 1` succeeds on `params` (a fresh connection each time).
  void WaitForSelect1(const ConnParams& params) {
    for (int i = 0; i < 10000; ++i) {
      auto conn = Connection::Open(params);
      if (conn.ok() && (*conn)->Exec("SELECT 1").ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    Die("SELECT 1", Status::Unavailable("never answered"));
  }

  void Run() {
    std::error_code ec;
    if (std::filesystem::exists(o_.home)) {
      Die("home", Status::AlreadyExists(o_.home + " exists; remove it or pass --home"));
    }
    Pgbranch({"init"});
    auto status = nlohmann::json::parse(Pgbranch({"status", "--json"}).out);
    pool_ = status["pool"]["description"];

    auto main = nlohmann::json::parse(Pgbranch({"project", "create", "bench", "--json"}).out);
    std::string main_uri = main["uri"];
    auto main_params = ConnParamsFromUri(main_uri);
    if (!main_params.ok()) Die("uri", main_params.status());
    fmt::print(stderr, "loading pgbench -i -s {} into bench/main ...\n", o_.scale);
    auto load_start = SteadyClock::now();
    Command load;
    load.argv = {"pgbench", "-i", "-q", "-s", std::to_string(o_.scale), main_uri};
    auto loaded = RunChecked(*runner_, load);
    if (!loaded.ok()) Die("pgbench -i", loaded.status());
    fmt::print(stderr, "loaded in {:.1f}s\n", Seconds(SteadyClock::now() - load_start));
    {
      auto conn = Connection::Open(*main_params);
      if (!conn.ok()) Die("connect", conn.status());
      auto size = (*conn)->QueryValue("SELECT pg_database_size('postgres')");
      db_bytes_ = size.ok() ? std::stoull(*size) : 0;
      // Let the load settle, so the figures measure branching, not the write-back of a
      // freshly loaded gigabyte (the first CHECKPOINT after a load takes seconds, whatever
      // comes next).
      Status s = (*conn)->Exec("CHECKPOINT");
      if (!s.ok()) Die("CHECKPOINT", s);
    }
    Command sync_all;
    sync_all.argv = {"sync"};
    auto synced = RunChecked(*runner_, sync_all);
    if (!synced.ok()) Die("sync", synced.status());

    BenchBranches();
    BenchTemplates(*main_params);
    BenchCopy(main["data_dir"]);
    Pgbranch({"project", "delete", "bench", "--force"});
    PoolConfig pool;
    pool.kind = "image";
    pool.image = o_.home + "/pool.img";
    pool.root = o_.home + "/pool";
    Status closed = ClosePool(pool);
    if (!closed.ok()) Die("unmount pool", closed);
    std::filesystem::remove_all(o_.home, ec);
    Report();
  }

 private:
  void BenchBranches() {
    for (int i = 0; i < o_.branches; ++i) {
      std::string ref = fmt::format("bench/b{}", i);
      auto start = SteadyClock::now();
      CommandResult r = Pgbranch({"branch", "create", ref, "--json"});
      auto b = nlohmann::json::parse(r.out);
      auto params = ConnParamsFromUri(b["uri"]);
      if (!params.ok()) Die("uri", params.status());
      WaitForSelect1(*params);
      results_["pgbranch branch create"].push_back(Seconds(SteadyClock::now() - start));
      // Per-step timings from the "▸ Step 0.03s" lines.
      std::istringstream err(r.err);
      std::string line;
      while (std::getline(err, line)) {
        std::istringstream words(line);
        std::string arrow, step, secs;
        if (words >> arrow >> step >> secs && arrow == "▸" && secs.back() == 's') {
          steps_[step].push_back(std::stod(secs.substr(0, secs.size() - 1)));
        }
      }
      fmt::print(stderr, "  {} ready in {:.3f}s\n", ref, results_["pgbranch branch create"].back());
    }
    auto fresh = nlohmann::json::parse(
        Pgbranch({"branch", "get", fmt::format("bench/b{}", o_.branches - 1), "--json"}).out);
    if (fresh["exclusive_bytes"].is_number()) exclusive_ = fresh["exclusive_bytes"];
    if (fresh["size_bytes"].is_number()) logical_ = fresh["size_bytes"];
    for (int i = 0; i < o_.branches; ++i) {
      Pgbranch({"branch", "delete", fmt::format("bench/b{}", i)});
    }
  }

  void BenchTemplates(const ConnParams& main) {
    // CREATE DATABASE ... TEMPLATE needs no other session on the template: run it from
    // template1.
    ConnParams admin = main;
    admin.dbname = "template1";
    for (const char* strategy : {"FILE_COPY", "WAL_LOG"}) {
      for (int i = 0; i < o_.copies; ++i) {
        auto conn = Connection::Open(admin);
        if (!conn.ok()) Die("connect", conn.status());
        std::string db = fmt::format("copy_{}", i);
        auto start = SteadyClock::now();
        Status s = (*conn)->Exec(
            fmt::format("CREATE DATABASE {} TEMPLATE postgres STRATEGY {}", db, strategy));
        if (!s.ok()) Die("CREATE DATABASE", s);
        ConnParams target = main;
        target.dbname = db;
        WaitForSelect1(target);
        std::string label = fmt::format("CREATE DATABASE TEMPLATE ({})", strategy);
        results_[label].push_back(Seconds(SteadyClock::now() - start));
        fmt::print(stderr, "  {} #{}: {:.3f}s\n", label, i + 1, results_[label].back());
        s = (*conn)->Exec(fmt::format("DROP DATABASE {}", db));
        if (!s.ok()) Die("DROP DATABASE", s);
      }
    }
  }

  void BenchCopy(const std::string& data_dir) {
    std::string target = std::filesystem::path(data_dir).parent_path().parent_path() / "bench-copy";
    for (int i = 0; i < o_.copies; ++i) {
      Command sync_cmd;
      sync_cmd.argv = {"sync"};
      auto synced = RunChecked(*runner_, sync_cmd);
      (void)synced;
      Command cp;
      cp.argv = {"cp", "-a", "--reflink=never", data_dir, target};
      auto start = SteadyClock::now();
      auto r = RunChecked(*runner_, cp);
      if (!r.ok()) Die("cp", r.status());
      results_["cp -a --reflink=never (copy only)"].push_back(Seconds(SteadyClock::now() - start));
      fmt::print(stderr, "  cp -a #{}: {:.3f}s\n", i + 1,
                 results_["cp -a --reflink=never (copy only)"].back());
      std::filesystem::remove_all(target);
    }
  }

  void Report() {
    fmt::print(
        "\npgbranch benchmark: pgbench -i -s {} ({} database), {} branches, {} runs "
        "of each alternative\npool: {}\n\n",
        o_.scale, FormatBytes(db_bytes_), o_.branches, o_.copies, pool_);
    double base = Percentile(results_["pgbranch branch create"], 0.5);
    fmt::print("{:<42} {:>9} {:>9} {:>14}\n", "copy -> first SELECT 1", "p50", "p95",
               "p50 / pgbranch");
    for (const char* label :
         {"pgbranch branch create", "CREATE DATABASE TEMPLATE (FILE_COPY)",
          "CREATE DATABASE TEMPLATE (WAL_LOG)", "cp -a --reflink=never (copy only)"}) {
      const auto& v = results_[label];
      if (v.empty()) continue;
      double p50 = Percentile(v, 0.5);
      fmt::print("{:<42} {:>8.3f}s {:>8.3f}s {:>13.1f}x\n", label, p50, Percentile(v, 0.95),
                 p50 / base);
    }
    fmt::print("\npgbranch steps (median): ");
    std::vector<std::string> parts;
    for (const char* step : {"Checkpoint", "Snapshot", "Clone", "Start", "Password"}) {
      if (steps_.count(step)) {
        parts.push_back(fmt::format("{} {:.0f} ms", step, Percentile(steps_[step], 0.5) * 1000));
      }
    }
    fmt::print("{}\n", fmt::join(parts, ", "));
    fmt::print("fresh branch: {} exclusive of {} logical\n", FormatBytes(exclusive_),
               FormatBytes(logical_));
  }

  Options o_;
  std::unique_ptr<ProcessRunner> runner_;
  std::string pool_;
  uint64_t db_bytes_ = 0, exclusive_ = 0, logical_ = 0;
  std::map<std::string, std::vector<double>> results_;
  std::map<std::string, std::vector<double>> steps_;
};

}  // namespace
}  // namespace pgb

int main(int argc, char** argv) {
  pgb::Options o;
  CLI::App app("pgbranch benchmark: branch create vs CREATE DATABASE TEMPLATE vs cp -a");
  app.add_option("--pgbranch", o.pgbranch, "The pgbranch binary")->required();
  app.add_option("--home", o.home, "A PGBRANCH_HOME that does not exist yet");
  app.add_option("--scale", o.scale, "pgbench scale (70 is ~1 GB)");
  app.add_option("--branches", o.branches, "Branches to create");
  app.add_option("--copies", o.copies, "Runs of each alternative");
  CLI11_PARSE(app, argc, argv);
  pgb::Bench(o).Run();
  return 0;
}
