// Benchmark: how long until a new copy of a database answers, and what each pool costs.
//
// Two parts, each in one run on the same data (main loaded with `pgbench -i -s SCALE`, ~1 GB at
// scale 70, then settled with one CHECKPOINT and a sync):
//
// 1. Copies compared (default pool, a Btrfs image): "copy -> first SELECT 1" for
//    - pgbranch branch create: command start -> first successful `SELECT 1` on the new branch
//      over TCP with its password (process start, CHECKPOINT, snapshot, clone, PostgreSQL start,
//      a fresh client connection);
//    - CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY and WAL_LOG: statement start -> first
//      `SELECT 1` in the new database;
//    - cp -a of the data directory (--reflink=never: a real copy; GNU cp 9 would otherwise
//      reflink on Btrfs): copy time alone, before any server could even start.
//    p50/p95 and the ratio to pgbranch's p50, pgbranch's per-step medians, a fresh branch's
//    exclusive size; then the first branch after a bulk load (pgbench -s SCALE/4 more, no
//    checkpoint since), whose CHECKPOINT writes everything loaded, beside the next one.
//
// 2. Pools compared (btrfs, xfs, zfs, copy): per backend, branch create -> first SELECT 1,
//    snapshot create, reset and delete (p50), a fresh branch's exclusive size, and
//    `pgbench -c 4 -j 2 -T SECONDS` TPS on a branch, relative to the same data on the host's own
//    filesystem (the copy pool's main: a plain data directory on the host's ext4).
//
// 3. Runtimes compared (--runtimes native,docker,podman): on one Btrfs image pool, one project
//    per runtime (containers run --image, default pgbranch/postgres:15: the same PostgreSQL 15
//    as the host's), each loaded with the same pgbench data; branch create -> first SELECT 1,
//    round-robin across runtimes, p50/p95 and the ratio to native, beside CREATE DATABASE ...
//    TEMPLATE (WAL_LOG) on the native main. Only this part runs when --runtimes is given.
//
// Figures, not assertions. Needs root (images are loop-mounted; ZFS needs zfs-fuse running,
// scripts/daemon.sh zfs-fuse start). Leaves nothing behind.
//
// Usage: pgbranch_bench --pgbranch BIN [--work DIR] [--scale 70] [--branches 10] [--copies 3]
//                       [--backends btrfs,xfs,zfs,copy] [--tps-seconds 20] [--skip-comparison]
//                       [--runtimes native,docker,podman [--image pgbranch/postgres:15]]

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/bytes.h"
#include "common/random.h"
#include "common/subprocess.h"
#include "pg/client.h"
#include "storage/pool.h"

namespace pgb {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Options {
  std::string pgbranch;
  std::string work = "/var/tmp/pgbranch-bench";
  int scale = 70;
  int branches = 10;
  int copies = 3;
  std::string backends = "btrfs,xfs,zfs,copy";
  int tps_seconds = 20;
  bool skip_comparison = false;
  std::string runtimes;  // non-empty: part 3 only
  std::string image = "pgbranch/postgres:15";
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

// One $PGBRANCH_HOME with a pool of one backend, torn down when destroyed.
class BenchHome {
 public:
  BenchHome(const Options& o, ProcessRunner& runner, const std::string& backend)
      : o_(o), runner_(runner), backend_(backend) {
    path_ = fmt::format("{}/{}", o.work, backend);
    std::filesystem::create_directories(path_);
    std::filesystem::permissions(path_, std::filesystem::perms(0711));
    std::vector<std::string> init = {"init", "--port-range", "58000-58099"};
    if (backend == "btrfs" || backend == "xfs") {
      config_.kind = "image";
      config_.image = path_ + "/pool.img";
      config_.root = path_ + "/pool";
      init.insert(init.end(), {"--image", config_.image, "--size", "24G", "--fs", backend});
    } else if (backend == "zfs") {
      zpool_ = "pgbbench" + RandomHex(3);
      Must({"truncate", "-s", "24G", path_ + "/zpool.img"});
      Must({"zpool", "create", "-m", "none", zpool_, path_ + "/zpool.img"});
      init.insert(init.end(), {"--zfs", zpool_ + "/pgbranch"});
    } else if (backend == "copy") {
      std::filesystem::create_directories(path_ + "/copy");
      std::filesystem::permissions(path_ + "/copy", std::filesystem::perms(0711));
      init.insert(init.end(), {"--copy", path_ + "/copy"});
    } else {
      Die("backend", Status::InvalidArgument(backend));
    }
    Pgbranch(init);
  }

  ~BenchHome() {
    auto projects = nlohmann::json::parse(Pgbranch({"project", "list", "--json"}).out);
    for (const auto& p : projects) Pgbranch({"project", "delete", p["name"], "--force"});
    if (!config_.kind.empty()) {
      Status s = ClosePool(config_);
      if (!s.ok()) fmt::print(stderr, "bench: unmount {}: {}\n", config_.root, s.ToString());
    }
    for (int i = 0; i < 20 && !zpool_.empty(); ++i) {
      Command destroy;
      destroy.argv = {"zpool", "destroy", "-f", zpool_};
      auto r = runner_.Run(destroy);
      if (r.ok() && r->Succeeded()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  CommandResult Pgbranch(const std::vector<std::string>& args) {
    Command c;
    c.argv = {o_.pgbranch};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.env = {{"PGBRANCH_HOME", path_}, {"NO_COLOR", "1"}};
    auto r = RunChecked(runner_, c);
    if (!r.ok()) Die("pgbranch", r.status());
    return *r;
  }
  nlohmann::json Json(const std::vector<std::string>& args) {
    return nlohmann::json::parse(Pgbranch(args).out);
  }
  CommandResult Must(const std::vector<std::string>& argv,
                     std::vector<std::pair<std::string, std::string>> env = {}) {
    Command c;
    c.argv = argv;
    c.env = std::move(env);
    auto r = RunChecked(runner_, c);
    if (!r.ok()) Die(argv[0], r.status());
    return *r;
  }

  // Runs a libpq client (pgbench) against the server of `uri`, which it reaches through the
  // PG* environment (PostgreSQL docs 34.15, "Environment Variables"): the password stays out of
  // every process's argv.
  CommandResult MustOn(const std::string& uri, const std::vector<std::string>& argv) {
    auto params = ConnParamsFromUri(uri);
    if (!params.ok()) Die("uri", params.status());
    return Must(argv, {{"PGHOST", params->host},
                       {"PGPORT", std::to_string(params->port)},
                       {"PGUSER", params->user},
                       {"PGDATABASE", params->dbname},
                       {"PGPASSWORD", params->password}});
  }

  const std::string& backend() const { return backend_; }

 private:
  const Options& o_;
  ProcessRunner& runner_;
  std::string backend_;
  std::string path_;
  PoolConfig config_;
  std::string zpool_;
};

// Polls until `SELECT 1` succeeds on `params` (a fresh connection each time).
void WaitForSelect1(const ConnParams& params) {
  for (int i = 0; i < 20000; ++i) {
    auto conn = Connection::Open(params);
    if (conn.ok() && (*conn)->Exec("SELECT 1").ok()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  Die("SELECT 1", Status::Unavailable("never answered"));
}

ConnParams Params(const std::string& uri) {
  auto params = ConnParamsFromUri(uri);
  if (!params.ok()) Die("uri", params.status());
  return *params;
}

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)), runner_(NewRealProcessRunner()) {}

  void Run() {
    if (std::filesystem::exists(o_.work)) {
      Die("work", Status::AlreadyExists(o_.work + " exists; remove it or pass --work"));
    }
    std::filesystem::create_directories(o_.work);
    std::filesystem::permissions(o_.work, std::filesystem::perms(0711));
    if (!o_.runtimes.empty()) {
      {
        BenchHome home(o_, *runner_, "btrfs");
        CompareRuntimes(home);
      }
      std::filesystem::remove_all(o_.work);
      ReportRuntimes();
      return;
    }
    if (!o_.skip_comparison) {
      BenchHome home(o_, *runner_, "btrfs");
      std::string main_uri = Load(home);
      CompareCopies(home, main_uri);
    }
    std::stringstream list(o_.backends);
    std::string backend;
    while (std::getline(list, backend, ',')) {
      BenchHome home(o_, *runner_, backend);
      std::string main_uri = Load(home);
      MeasureBackend(home, main_uri);
    }
    std::filesystem::remove_all(o_.work);
    Report();
  }

 private:
  // Creates project `project` (with `create_args`), loads pgbench data into main, settles it;
  // returns main's URI.
  std::string Load(BenchHome& home, const std::string& project = "bench",
                   const std::vector<std::string>& create_args = {}) {
    std::vector<std::string> create = {"project", "create", project, "--json"};
    create.insert(create.end(), create_args.begin(), create_args.end());
    auto main = home.Json(create);
    std::string uri = main["uri"];
    fmt::print(stderr, "{}: loading pgbench -i -s {} ...\n", home.backend(), o_.scale);
    auto start = SteadyClock::now();
    home.MustOn(uri, {"pgbench", "-i", "-q", "-s", std::to_string(o_.scale)});
    fmt::print(stderr, "{}: loaded in {:.1f}s\n", home.backend(),
               Seconds(SteadyClock::now() - start));
    auto conn = Connection::Open(Params(uri));
    if (!conn.ok()) Die("connect", conn.status());
    auto size = (*conn)->QueryValue("SELECT pg_database_size('postgres')");
    db_bytes_ = size.ok() ? std::stoull(*size) : 0;
    // Settle: the first CHECKPOINT after a load takes seconds, whatever comes next.
    Status s = (*conn)->Exec("CHECKPOINT");
    if (!s.ok()) Die("CHECKPOINT", s);
    home.Must({"sync"});
    pool_[home.backend()] = home.Json({"status", "--json"})["pool"]["description"];
    return uri;
  }

  // Times `pgbranch branch create` to the first SELECT 1; records the per-step lines under
  // `key` (default: the backend).
  double TimeCreate(BenchHome& home, const std::string& ref, std::string* uri,
                    const std::string& key = "") {
    auto start = SteadyClock::now();
    CommandResult r = home.Pgbranch({"branch", "create", ref, "--json"});
    *uri = nlohmann::json::parse(r.out)["uri"];
    WaitForSelect1(Params(*uri));
    double took = Seconds(SteadyClock::now() - start);
    // "▸ Backup start 0.03s": the marker, the step's name (maybe several words), seconds.
    std::istringstream err(r.err);
    std::string line;
    while (std::getline(err, line)) {
      std::istringstream words(line);
      std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
      if (w.size() < 3 || w.front() != "▸" || w.back().back() != 's') continue;
      char* end = nullptr;
      double secs = std::strtod(w.back().c_str(), &end);
      if (end != w.back().c_str() + w.back().size() - 1) continue;
      std::string step = w[1];
      for (size_t i = 2; i + 1 < w.size(); ++i) step += " " + w[i];
      steps_[key.empty() ? home.backend() : key][step].push_back(secs);
    }
    return took;
  }

  double TimeCommand(BenchHome& home, const std::vector<std::string>& args) {
    auto start = SteadyClock::now();
    home.Pgbranch(args);
    return Seconds(SteadyClock::now() - start);
  }

  void CompareCopies(BenchHome& home, const std::string& main_uri) {
    auto& created = results_["pgbranch branch create"];
    for (int i = 0; i < o_.branches; ++i) {
      std::string uri;
      created.push_back(TimeCreate(home, fmt::format("bench/c{}", i), &uri));
      fmt::print(stderr, "  bench/c{} ready in {:.3f}s\n", i, created.back());
    }
    auto fresh = home.Json({"branch", "get", fmt::format("bench/c{}", o_.branches - 1), "--json"});
    comparison_exclusive_ =
        fresh["exclusive_bytes"].is_number() ? fresh["exclusive_bytes"].get<uint64_t>() : 0;
    comparison_logical_ = fresh["size_bytes"].is_number() ? fresh["size_bytes"].get<uint64_t>() : 0;
    for (int i = 0; i < o_.branches; ++i)
      home.Pgbranch({"branch", "delete", fmt::format("bench/c{}", i)});

    // CREATE DATABASE ... TEMPLATE needs no other session on the template: run it from
    // template1.
    ConnParams admin = Params(main_uri);
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
        ConnParams target = admin;
        target.dbname = db;
        WaitForSelect1(target);
        std::string label = fmt::format("CREATE DATABASE TEMPLATE ({})", strategy);
        results_[label].push_back(Seconds(SteadyClock::now() - start));
        fmt::print(stderr, "  {} #{}: {:.3f}s\n", label, i + 1, results_[label].back());
        s = (*conn)->Exec(fmt::format("DROP DATABASE {}", db));
        if (!s.ok()) Die("DROP DATABASE", s);
      }
    }

    std::string data_dir = home.Json({"branch", "get", "bench/main", "--json"})["data_dir"];
    std::string target = std::filesystem::path(data_dir).parent_path().parent_path() / "bench-copy";
    for (int i = 0; i < o_.copies; ++i) {
      home.Must({"sync"});
      auto start = SteadyClock::now();
      home.Must({"cp", "-a", "--reflink=never", data_dir, target});
      results_["cp -a --reflink=never (copy only)"].push_back(Seconds(SteadyClock::now() - start));
      fmt::print(stderr, "  cp -a #{}: {:.3f}s\n", i + 1,
                 results_["cp -a --reflink=never (copy only)"].back());
      std::filesystem::remove_all(target);
    }
    MeasureAfterLoad(home, main_uri);
    home.Pgbranch({"project", "delete", "bench", "--force"});
  }

  // The first branch after a bulk load waits for main's CHECKPOINT of everything loaded: a
  // database of pgbench -s SCALE/4 is loaded into main with no checkpoint after it, then two
  // branches are made one after the other. Both, and their Checkpoint steps, are reported.
  void MeasureAfterLoad(BenchHome& home, const std::string& main_uri) {
    ConnParams admin = Params(main_uri);
    admin.dbname = "template1";
    auto conn = Connection::Open(admin);
    if (!conn.ok()) Die("connect", conn.status());
    Status s = (*conn)->Exec("CREATE DATABASE bulk");
    if (!s.ok()) Die("CREATE DATABASE bulk", s);
    const int scale = std::max(1, o_.scale / 4);
    std::string bulk_uri = main_uri.substr(0, main_uri.rfind('/')) + "/bulk";
    home.MustOn(bulk_uri, {"pgbench", "-i", "-q", "-s", std::to_string(scale)});
    after_load_scale_ = scale;
    for (const char* which : {"first", "next"}) {
      std::string uri;
      std::string key = std::string("after load, ") + which;
      results_[key].push_back(TimeCreate(home, std::string("bench/load-") + which, &uri, key));
      fmt::print(stderr, "  {} branch after the load: {:.3f}s\n", which, results_[key].back());
    }
  }

  void CompareRuntimes(BenchHome& home) {
    std::vector<std::string> runtimes;
    std::stringstream list(o_.runtimes);
    std::string r;
    while (std::getline(list, r, ',')) runtimes.push_back(r);
    std::string native_uri;
    for (const auto& rt : runtimes) {
      std::vector<std::string> args = {"--runtime", rt};
      if (rt != "native") args.insert(args.end(), {"--image", o_.image});
      std::string uri = Load(home, "bench-" + rt, args);
      if (rt == "native") native_uri = uri;
    }
    // Round-robin, so drift on the machine (caches, the pool filling) hits every runtime alike.
    for (int i = 0; i < o_.branches; ++i) {
      for (const auto& rt : runtimes) {
        std::string uri;
        double took = TimeCreate(home, fmt::format("bench-{}/c{}", rt, i), &uri, rt);
        runtime_create_[rt].push_back(took);
        fmt::print(stderr, "  {}: bench-{}/c{} ready in {:.3f}s\n", rt, rt, i, took);
      }
    }
    if (!native_uri.empty()) {
      ConnParams admin = Params(native_uri);
      admin.dbname = "template1";
      for (int i = 0; i < o_.copies; ++i) {
        auto conn = Connection::Open(admin);
        if (!conn.ok()) Die("connect", conn.status());
        auto start = SteadyClock::now();
        Status s = (*conn)->Exec("CREATE DATABASE copy_rt TEMPLATE postgres STRATEGY WAL_LOG");
        if (!s.ok()) Die("CREATE DATABASE", s);
        ConnParams target = admin;
        target.dbname = "copy_rt";
        WaitForSelect1(target);
        template_copy_.push_back(Seconds(SteadyClock::now() - start));
        s = (*conn)->Exec("DROP DATABASE copy_rt");
        if (!s.ok()) Die("DROP DATABASE", s);
      }
    }
    runtime_order_ = runtimes;
    for (const auto& rt : runtimes) home.Pgbranch({"project", "delete", "bench-" + rt, "--force"});
  }

  void ReportRuntimes() {
    fmt::print("\npgbranch benchmark: runtimes, pgbench -i -s {} ({} database per project), {}\n",
               o_.scale, FormatBytes(db_bytes_), pool_["btrfs"]);
    fmt::print("containers run {}; {} branches per runtime, round-robin\n\n", o_.image,
               o_.branches);
    double base = runtime_create_.count("native") ? Percentile(runtime_create_["native"], 0.5) : 0;
    fmt::print("{:<40} {:>9} {:>9} {:>12} {:>10}\n", "branch create -> first SELECT 1", "p50",
               "p95", "p50/native", "Start p50");
    for (const auto& rt : runtime_order_) {
      const auto& v = runtime_create_[rt];
      double p50 = Percentile(v, 0.5);
      auto& start = steps_[rt]["Start"];
      fmt::print("{:<40} {:>8.3f}s {:>8.3f}s {:>11.2f}x {:>8.0f}ms\n", rt, p50, Percentile(v, 0.95),
                 base > 0 ? p50 / base : 0.0, start.empty() ? 0.0 : Percentile(start, 0.5) * 1000);
    }
    if (!template_copy_.empty()) {
      double p50 = Percentile(template_copy_, 0.5);
      fmt::print("{:<40} {:>8.3f}s {:>8.3f}s {:>11.2f}x\n", "CREATE DATABASE TEMPLATE (WAL_LOG)",
                 p50, Percentile(template_copy_, 0.95), base > 0 ? p50 / base : 0.0);
    }
    fmt::print("\nsteps (median):\n");
    for (const auto& rt : runtime_order_) {
      fmt::print("  {:<7}", rt);
      for (const char* step : {"Checkpoint", "Snapshot", "Clone", "Start", "Password"}) {
        auto it = steps_[rt].find(step);
        if (it != steps_[rt].end()) {
          fmt::print(" {} {:.0f} ms", step, Percentile(it->second, 0.5) * 1000);
        }
      }
      fmt::print("\n");
    }
  }

  void MeasureBackend(BenchHome& home, const std::string& main_uri) {
    const std::string& b = home.backend();
    BackendFigures& f = figures_[b];
    int runs = std::max(3, o_.copies);
    for (int i = 0; i < runs; ++i) {
      std::string uri;
      f.create.push_back(TimeCreate(home, fmt::format("bench/b{}", i), &uri));
      fmt::print(stderr, "  {}: bench/b{} ready in {:.3f}s\n", b, i, f.create.back());
    }
    auto fresh = home.Json({"branch", "get", "bench/b0", "--json"});
    f.exclusive =
        fresh["exclusive_bytes"].is_number() ? fresh["exclusive_bytes"].get<uint64_t>() : 0;
    for (int i = 0; i < runs; ++i) {
      f.snapshot.push_back(TimeCommand(home, {"snapshot", "create", "bench/b0"}));
    }
    for (int i = 0; i < runs; ++i) {
      f.reset.push_back(TimeCommand(home, {"branch", "reset", "bench/b1"}));
    }
    // Throughput on a branch (the realistic case: writes against shared blocks), and, for the
    // copy pool, on main: a plain data directory on the host's own filesystem.
    f.tps = Tps(home, home.Json({"branch", "get", "bench/b2", "--json"})["uri"]);
    if (b == "copy") host_tps_ = Tps(home, main_uri);
    for (int i = 0; i < runs; ++i) {
      f.remove.push_back(
          TimeCommand(home, {"branch", "delete", fmt::format("bench/b{}", i), "--recursive"}));
    }
    fmt::print(stderr, "  {}: TPS {:.0f}\n", b, f.tps);
  }

  double Tps(BenchHome& home, const std::string& uri) {
    CommandResult r = home.MustOn(
        uri, {"pgbench", "-c", "4", "-j", "2", "-T", std::to_string(o_.tps_seconds), "-n"});
    size_t at = r.out.find("tps = ");
    return at == std::string::npos ? 0 : std::stod(r.out.substr(at + 6));
  }

  void Report() {
    fmt::print("\npgbranch benchmark: pgbench -i -s {} ({} database)\n", o_.scale,
               FormatBytes(db_bytes_));
    if (!o_.skip_comparison) {
      fmt::print("\n1. Copies compared, on {}; {} branches, {} runs of each alternative\n\n",
                 pool_["btrfs"], o_.branches, o_.copies);
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
      fmt::print("\npgbranch steps (median):");
      for (const char* step : {"Checkpoint", "Snapshot", "Clone", "Start", "Password"}) {
        auto& v = steps_["btrfs"][step];
        if (!v.empty()) fmt::print(" {} {:.0f} ms", step, Percentile(v, 0.5) * 1000);
      }
      fmt::print("\nfresh branch: {} exclusive of {} logical\n", FormatBytes(comparison_exclusive_),
                 FormatBytes(comparison_logical_));
      auto& first = results_["after load, first"];
      auto& next = results_["after load, next"];
      if (!first.empty() && !next.empty()) {
        fmt::print(
            "after loading pgbench -s {} more with no checkpoint since: the first branch {:.3f}s "
            "(Checkpoint {:.0f} ms), the next {:.3f}s (Checkpoint {:.0f} ms)\n",
            after_load_scale_, first[0],
            Percentile(steps_["after load, first"]["Checkpoint"], 0.5) * 1000, next[0],
            Percentile(steps_["after load, next"]["Checkpoint"], 0.5) * 1000);
      }
    }
    if (figures_.empty()) return;
    fmt::print("\n2. Pools compared (p50 of {} runs; TPS: pgbench -c 4 -j 2 -T {} on a branch)\n\n",
               std::max(3, o_.copies), o_.tps_seconds);
    fmt::print("{:<7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8} {:>9}\n", "pool", "create",
               "snapshot", "reset", "delete", "fresh excl.", "TPS", "vs host");
    for (const auto& [b, f] : figures_) {
      fmt::print("{:<7} {:>9.3f}s {:>9.3f}s {:>9.3f}s {:>9.3f}s {:>12} {:>8.0f} {:>8.0f}%\n", b,
                 Percentile(f.create, 0.5), Percentile(f.snapshot, 0.5), Percentile(f.reset, 0.5),
                 Percentile(f.remove, 0.5), FormatBytes(f.exclusive), f.tps,
                 host_tps_ > 0 ? 100 * f.tps / host_tps_ : 0.0);
    }
    if (host_tps_ > 0) {
      fmt::print(
          "host    (the copy pool's main: a plain data directory on the host filesystem) "
          "TPS {:.0f}\n",
          host_tps_);
    }
    for (const auto& [b, desc] : pool_) fmt::print("  {}: {}\n", b, desc);
    fmt::print("\ncreate: command start -> first SELECT 1 on the branch; steps (median):\n");
    for (const auto& [b, steps] : steps_) {
      fmt::print("  {:<6}", b);
      for (const char* step :
           {"Checkpoint", "Backup start", "Snapshot", "Clone", "Start", "Password"}) {
        auto it = steps.find(step);
        if (it != steps.end())
          fmt::print(" {} {:.0f} ms", step, Percentile(it->second, 0.5) * 1000);
      }
      fmt::print("\n");
    }
  }

  struct BackendFigures {
    std::vector<double> create, snapshot, reset, remove;
    uint64_t exclusive = 0;
    double tps = 0;
  };

  Options o_;
  std::unique_ptr<ProcessRunner> runner_;
  std::map<std::string, std::string> pool_;
  uint64_t db_bytes_ = 0, comparison_exclusive_ = 0, comparison_logical_ = 0;
  double host_tps_ = 0;
  std::map<std::string, std::vector<double>> results_;
  int after_load_scale_ = 0;  // the pgbench scale MeasureAfterLoad loaded
  std::map<std::string, std::map<std::string, std::vector<double>>> steps_;
  std::map<std::string, BackendFigures> figures_;
  std::vector<std::string> runtime_order_;
  std::map<std::string, std::vector<double>> runtime_create_;
  std::vector<double> template_copy_;
};

}  // namespace
}  // namespace pgb

int main(int argc, char** argv) {
  pgb::Options o;
  CLI::App app("pgbranch benchmark: branch create vs CREATE DATABASE TEMPLATE vs cp -a, and pools");
  // A later occurrence wins, so scripts can pass defaults that the caller's arguments override.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--pgbranch", o.pgbranch, "The pgbranch binary")->required();
  app.add_option("--work", o.work, "A directory that does not exist yet (homes go inside)");
  app.add_option("--scale", o.scale, "pgbench scale (70 is ~1 GB)");
  app.add_option("--branches", o.branches, "Branches for the copy comparison");
  app.add_option("--copies", o.copies, "Runs of each alternative (and per pool, at least 3)");
  app.add_option("--backends", o.backends, "Pools to compare: btrfs,xfs,zfs,copy");
  app.add_option("--tps-seconds", o.tps_seconds, "pgbench -T for the throughput figure");
  app.add_flag("--skip-comparison", o.skip_comparison, "Only the pool table");
  app.add_option("--runtimes", o.runtimes,
                 "Compare runtimes instead: native,docker,podman (only this part runs)");
  app.add_option("--image", o.image, "Image of the container runtimes' projects");
  CLI11_PARSE(app, argc, argv);
  pgb::Bench(o).Run();
  return 0;
}
