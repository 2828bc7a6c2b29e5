// `project create P --from-server URI [--replica [--slot S]] [--transform F]`: a physical copy
// of a running "production" server that pgbranch does not manage (a TestInstance: its own
// initdb'd data directory and port, scram-sha-256 over TCP for everything, replication
// included), made under write load; a replica main that keeps following the source while its
// branches are independent primaries; masking of every branch of a replica; refusals that
// leave nothing, and a password that reaches no file, no audit row and no output.
//
// A replica main is a read-only standby with the source's roles and passwords, so the test
// reads it as production's `reader` role over TCP (TryStandby); that `pgbranch psql` reaches it
// too is checked once, on its own.
//
// The version-mismatch refusal needs a second PostgreSQL major and is tested elsewhere.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/random.h"
#include "common/subprocess.h"
#include "pg/client.h"
#include "runtime/test_instance.h"
#include "tests/e2e/harness.h"

namespace pgb {
namespace {

using e2e::CliResult;
using e2e::Eventually;
using e2e::Home;
using Env = std::vector<std::pair<std::string, std::string>>;

// "16/B374D848" as a number, to compare LSNs; nullopt for anything else.
std::optional<uint64_t> ParseLsn(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
  try {
    size_t hi_end = 0, lo_end = 0;
    uint64_t hi = std::stoull(text.substr(0, slash), &hi_end, 16);
    uint64_t lo = std::stoull(text.substr(slash + 1), &lo_end, 16);
    if (hi_end != slash || lo_end != text.size() - slash - 1) return std::nullopt;
    return (hi << 32) | lo;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) out.push_back(part);
  return out;
}

// `j[key]` when it is a string, else "" (the LSNs are null before any WAL arrived).
std::string StringAt(const nlohmann::json& j, const std::string& key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// Whether some line of `text` starts with `prefix` (the CLI's error line, after any progress).
bool HasLineStarting(const std::string& text, const std::string& prefix) {
  for (const auto& line : Split(text, '\n')) {
    if (line.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

class SourceE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::make_unique<Home>("btrfs", "3G");
    if (!home_->ready()) GTEST_SKIP() << "no pool";
    auto pg =
        test::TestInstance::Create(::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (!pg.ok() && pg.status().Is(StatusCode::kNotFound)) {
      GTEST_SKIP() << "no PostgreSQL server to copy from: " << pg.status().ToString();
    }
    ASSERT_TRUE(pg.ok()) << pg.status().ToString();
    source_ = std::move(pg).value();
    Status started = source_->StartAndWait();
    ASSERT_TRUE(started.ok()) << started.ToString() << "\n" << source_->Log();
    // The role pgbranch copies as: a login with the replication privilege, over TCP with
    // scram-sha-256 (the instance's pg_hba.conf), its password in a private passfile that
    // lives outside the home (test 4 greps the home for the password).
    password_ = RandomHex(16);
    SourceExec("CREATE ROLE replicator LOGIN REPLICATION PASSWORD '" + password_ + "'");
    passfile_ = secrets_.path() + "/pgpass";
    {
      std::ofstream out(passfile_);
      out << "127.0.0.1:" << source_->port << ":*:replicator:" << password_ << "\n";
    }
    ASSERT_EQ(::chmod(passfile_.c_str(), 0600), 0);
    // Production's own reader, copied with everything else: a replica main keeps the source's
    // roles and passwords (it is read-only), so that is how the test reads it, as its users
    // would. CHECKPOINT (pg_checkpoint, 15+) and pg_control_checkpoint() for its timeline.
    reader_password_ = RandomHex(16);
    SourceExec("CREATE ROLE reader LOGIN PASSWORD '" + reader_password_ +
               "';"
               "GRANT pg_read_all_data, pg_read_all_stats TO reader;"
               "GRANT EXECUTE ON FUNCTION pg_control_checkpoint() TO reader;"
               "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'pg_checkpoint')"
               " THEN GRANT pg_checkpoint TO reader; END IF; END$$");
  }

  void TearDown() override {
    // The projects first (a replica main streams from the source), then the source; the
    // source's destructor also reaps the servers re-parented to this process.
    home_.reset();
    source_.reset();
  }

  // The source over TCP as the replication role, without the password (it comes from
  // PGPASSFILE: Env()).
  std::string SourceUri() const {
    return "postgresql://replicator@127.0.0.1:" + std::to_string(source_->port) + "/postgres";
  }
  // The same with the password in the URI.
  std::string SourceUriWithPassword() const {
    return "postgresql://replicator:" + password_ + "@127.0.0.1:" + std::to_string(source_->port) +
           "/postgres";
  }
  Env PassEnv() const { return {{"PGPASSFILE", passfile_}}; }

  // SQL on the source as its superuser, over its private socket.
  void SourceExec(const std::string& sql) {
    auto conn = Connection::Open(source_->AdminParams());
    ASSERT_TRUE(conn.ok()) << conn.status().ToString();
    Status s = (*conn)->Exec(sql);
    ASSERT_TRUE(s.ok()) << sql << ": " << s.ToString();
  }
  std::string SourceValue(const std::string& sql) {
    auto conn = Connection::Open(source_->AdminParams());
    EXPECT_TRUE(conn.ok()) << conn.status().ToString();
    if (!conn.ok()) return "";
    auto v = (*conn)->QueryValue(sql);
    EXPECT_TRUE(v.ok()) << sql << ": " << v.status().ToString();
    return v.ok() ? *v : "";
  }

  // pgbench on the source as its OS user, over the socket (trusted), no shell.
  static Result<CommandResult> Pgbench(const test::TestInstance& source,
                                       const std::vector<std::string>& args,
                                       std::chrono::seconds timeout) {
    Command c;
    c.argv = {JoinPath(source.bins.bin_dir, "pgbench"), "-h", source.socket_dir, "-p",
              std::to_string(source.port)};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    c.argv.push_back("postgres");
    c.clean_env = true;
    c.user = source.os_user;
    c.cwd = "/";
    c.timeout = timeout;
    return NewRealProcessRunner()->Run(c);
  }

  // `project create NAME --from-server URI EXTRA...` with `env`.
  CliResult CreateFrom(const std::string& name, const std::string& uri,
                       const std::vector<std::string>& extra, const Env& env) {
    std::vector<std::string> args = {"project", "create", name, "--from-server", uri};
    args.insert(args.end(), extra.begin(), extra.end());
    return home_->Run(args, env);
  }

  // One value from psql on a branch; the test fails unless psql succeeds.
  std::string Query(const std::string& ref, const std::string& sql) {
    CliResult r = home_->Run({"psql", ref, "--", "-XAtc", sql});
    EXPECT_EQ(r.exit_code, 0) << ref << ": " << sql << "\n" << r.err;
    return Trim(r.out);
  }
  // The same for polling: nullopt when psql fails.
  std::optional<std::string> TryQuery(const std::string& ref, const std::string& sql) {
    CliResult r = home_->Run({"psql", ref, "--", "-XAtc", sql});
    if (r.exit_code != 0) return std::nullopt;
    return Trim(r.out);
  }
  static std::string Trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }

  // One value from a replica's main (over TCP, at its port, as the source's `reader`); nullopt
  // when the connection or the query fails.
  std::optional<std::string> TryStandby(const std::string& ref, const std::string& sql) {
    CliResult got = home_->Run({"branch", "get", ref, "--json"});
    if (got.exit_code != 0) return std::nullopt;
    nlohmann::json b = nlohmann::json::parse(got.out, nullptr, false);
    if (!b.is_object() || !b["port"].is_number_integer()) return std::nullopt;
    ConnParams p;
    p.host = "127.0.0.1";
    p.port = b["port"].get<int>();
    p.user = "reader";
    p.password = reader_password_;
    p.connect_timeout_seconds = 5;
    auto conn = Connection::Open(p);
    if (!conn.ok()) {
      last_standby_error_ = conn.status().ToString();
      return std::nullopt;
    }
    auto v = (*conn)->Query(sql);
    if (!v.ok()) {
      last_standby_error_ = v.status().ToString();
      return std::nullopt;
    }
    if (v->empty() || v->front().empty()) return std::string();
    return v->front().front().value_or("NULL");
  }
  // The same; the test fails when it cannot be read.
  std::string Standby(const std::string& ref, const std::string& sql) {
    std::optional<std::string> v = TryStandby(ref, sql);
    EXPECT_TRUE(v.has_value()) << ref << ": " << sql << ": " << last_standby_error_;
    return v.value_or("");
  }
  int StandbyTimeline(const std::string& ref) {
    Standby(ref, "CHECKPOINT");
    std::string tli = Standby(ref, "SELECT timeline_id FROM pg_control_checkpoint()");
    return tli.empty() ? -1 : std::atoi(tli.c_str());
  }

  // `branch get ref --json`'s "replica" object (null if missing; the test fails then).
  nlohmann::json Replica(const std::string& ref) {
    CliResult r = home_->Run({"branch", "get", ref, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return nullptr;
    nlohmann::json b = r.Json();
    if (!b.is_object() || !b.contains("replica") || !b["replica"].is_object()) {
      ADD_FAILURE() << ref << " has no \"replica\" object: " << b.dump();
      return nullptr;
    }
    return b["replica"];
  }

  // The timeline a branch's last checkpoint is on, after a fresh CHECKPOINT (a restartpoint
  // on a standby).
  int Timeline(const std::string& ref) {
    Query(ref, "CHECKPOINT");
    std::string tli = Query(ref, "SELECT timeline_id FROM pg_control_checkpoint()");
    return tli.empty() ? -1 : std::atoi(tli.c_str());
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = home_->path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // Regular files under the home (outside the pool's mount, and under 10 MB, so never volume
  // data or the pool image) whose contents contain `needle`, relative to the home.
  std::vector<std::string> FilesContaining(const std::string& needle) {
    std::vector<std::string> found;
    namespace fs = std::filesystem;
    const fs::path root = home_->path();
    std::set<fs::path> skipped = {root / "pool", root / "zfs", root / "ext4"};
    std::error_code ec;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    EXPECT_FALSE(ec) << ec.message();
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code e;
      if (it->is_directory(e) && !it->is_symlink(e)) {
        if (skipped.count(it->path())) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(e) || it->is_symlink(e)) continue;
      if (it->file_size(e) >= 10u * 1024 * 1024 || e) continue;
      Result<std::string> text = ReadFile(it->path().string());
      if (text.ok() && text->find(needle) != std::string::npos) {
        found.push_back(fs::relative(it->path(), root).string());
      }
    }
    return found;
  }

  // Every audit row the home has recorded.
  nlohmann::json Audit() { return home_->Ok({"audit", "--json", "--limit", "100000"}).Json(); }

  std::unique_ptr<Home> home_;
  test::TempDir secrets_;  // the test's passfile: outside the home
  std::unique_ptr<test::TestInstance> source_;
  std::string password_;
  std::string passfile_;
  std::string reader_password_;
  std::string last_standby_error_;
};

// The TPC-B transaction pgbench runs moves the same delta into one account, its teller and its
// branch and records it in history, in one transaction: in any consistent copy the four sums
// are equal. A copy made while pgbench writes that is torn (a file copied before, another after
// a transaction, without the WAL that fixes it up) breaks that.
TEST_F(SourceE2eTest, PhysicalImportUnderWriteLoadKeepsTpcbInvariant) {
  auto init = Pgbench(*source_, {"-i", "-q", "-s", "5"}, std::chrono::minutes(3));
  ASSERT_TRUE(init.ok() && init->Succeeded()) << (init.ok() ? init->err : init.status().ToString());

  std::optional<Result<CommandResult>> load;  // written by the writer, read after the join
  std::atomic<bool> load_ended{false};
  CliResult made;
  {
    // Joined when the block is left, however it is left (std::jthread).
    std::jthread writer([&load, &load_ended, source = source_.get()] {
      load = Pgbench(*source, {"-n", "-c", "2", "-j", "2", "-T", "30"}, std::chrono::minutes(2));
      load_ended = true;
    });
    // Only copy once transactions are committing.
    bool writing = Eventually(
        [&] {
          std::string n = SourceValue("SELECT count(*) FROM pgbench_history");
          return !n.empty() && n != "0";
        },
        std::chrono::seconds(15));
    EXPECT_TRUE(writing) << "pgbench committed nothing in 15 s";
    if (writing) made = CreateFrom("shop", SourceUri(), {}, PassEnv());
    // Still writing when the copy ended: the whole copy ran under load.
    EXPECT_FALSE(load_ended.load()) << "pgbench ended before the copy did";
  }
  ASSERT_TRUE(load.has_value());
  EXPECT_TRUE(load->ok() && (*load)->Succeeded())
      << "pgbench: " << (load->ok() ? (*load)->err : load->status().ToString());
  ASSERT_EQ(made.exit_code, 0) << "stderr: " << made.err << "\nstdout: " << made.out;

  home_->Ok({"branch", "create", "shop/dev"});
  const std::string sums =
      "SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts),"
      " (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches),"
      " (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),"
      " (SELECT coalesce(sum(delta), 0) FROM pgbench_history),"
      " (SELECT count(*) FROM pgbench_history),"
      " (SELECT count(*) FROM pgbench_accounts)";
  std::string main_sums;
  for (const char* ref : {"shop/main", "shop/dev"}) {
    SCOPED_TRACE(ref);
    EXPECT_EQ(Query(ref, "SELECT pg_is_in_recovery()"), "f");
    std::string row = Query(ref, sums);
    std::vector<std::string> v = Split(row, '|');
    ASSERT_EQ(v.size(), 6u) << row;
    EXPECT_EQ(v[0], v[1]) << "accounts vs branches: " << row;
    EXPECT_EQ(v[1], v[2]) << "branches vs tellers: " << row;
    EXPECT_EQ(v[2], v[3]) << "tellers vs history: " << row;
    EXPECT_NE(v[4], "0") << "no transaction of the load is in the copy: " << row;
    EXPECT_EQ(v[5], "500000") << row;
    if (main_sums.empty()) {
      main_sums = row;
    } else {
      EXPECT_EQ(row, main_sums) << "the branch differs from main";
    }
  }
  // Both are primaries of their own: they take writes.
  Query("shop/main", "CREATE TABLE main_only (x int); INSERT INTO main_only VALUES (1)");
  Query("shop/dev", "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1");
  EXPECT_EQ(Query("shop/main", "SELECT count(*) FROM main_only"), "1");
}

TEST_F(SourceE2eTest, ReplicaFollowsSourceAndBranchesAreIndependentPrimaries) {
  SourceExec(
      "CREATE TABLE events (id int PRIMARY KEY, note text);"
      "INSERT INTO events VALUES (1, 'before the copy')");
  CliResult made = CreateFrom("shop", SourceUri(), {"--replica"}, PassEnv());
  ASSERT_EQ(made.exit_code, 0) << "stderr: " << made.err << "\nstdout: " << made.out;

  // main is a standby with the source's data.
  EXPECT_EQ(Standby("shop/main", "SELECT pg_is_in_recovery()"), "t");
  // ... and pgbranch's own way in reaches it like any branch.
  CliResult psql = home_->Run({"psql", "shop/main", "--", "-XAtc", "SELECT pg_is_in_recovery()"});
  EXPECT_EQ(psql.exit_code, 0) << "`pgbranch psql` cannot reach a replica main: " << psql.err;
  EXPECT_EQ(Trim(psql.out), "t");
  EXPECT_EQ(Standby("shop/main", "SELECT count(*) FROM events"), "1");
  // Its URI carries no password: it has the source's, never pgbranch's.
  nlohmann::json main = home_->Branch("shop/main");
  EXPECT_EQ(main["uri"], fmt::format("postgresql://{}@127.0.0.1:{}/postgres",
                                     main["user"].get<std::string>(), main["port"].get<int>()));

  // It follows: a row written in the source shows up in main, and `branch get` says how far
  // replay has come.
  SourceExec("INSERT INTO events VALUES (2, 'streamed')");
  std::optional<uint64_t> written = ParseLsn(SourceValue("SELECT pg_current_wal_lsn()"));
  ASSERT_TRUE(written.has_value());
  EXPECT_TRUE(Eventually([&] {
    return TryStandby("shop/main", "SELECT count(*) FROM events WHERE id = 2") == "1";
  })) << "row 2 never reached main";
  nlohmann::json replica;
  bool caught_up = Eventually([&] {
    replica = Replica("shop/main");
    if (!replica.is_object()) return false;
    auto replay = ParseLsn(StringAt(replica, "replay_lsn"));
    return replica.value("streaming", false) && replay && *replay >= *written;
  });
  EXPECT_TRUE(caught_up) << "replay never reached the source's " << std::hex << *written << ": "
                         << replica.dump();
  ASSERT_TRUE(replica.is_object());
  EXPECT_TRUE(replica["streaming"].is_boolean()) << replica.dump();
  EXPECT_TRUE(replica["lag_bytes"].is_number_integer()) << replica.dump();
  EXPECT_TRUE(replica["lag_seconds"].is_number()) << replica.dump();
  EXPECT_TRUE(ParseLsn(StringAt(replica, "receive_lsn"))) << replica.dump();
  std::string shown_source = StringAt(replica, "source");
  EXPECT_NE(shown_source.find("replicator"), std::string::npos) << shown_source;
  EXPECT_NE(shown_source.find(std::to_string(source_->port)), std::string::npos) << shown_source;
  EXPECT_EQ(shown_source.find(password_), std::string::npos) << "the password is shown";
  // `status` has a line about the replica: main, its source's port, that it streams.
  CliResult status = home_->Ok({"status"});
  bool replica_line = false;
  for (const auto& line : Split(status.out, '\n')) {
    replica_line |= line.find("shop/main") != std::string::npos &&
                    line.find(std::to_string(source_->port)) != std::string::npos &&
                    line.find("streaming") != std::string::npos;
  }
  EXPECT_TRUE(replica_line) << status.out;
  EXPECT_EQ(status.out.find(password_), std::string::npos);

  // A branch made a few seconds after a write has it, and is a primary of its own timeline.
  SourceExec("INSERT INTO events VALUES (3, 'just before the branch')");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  home_->Ok({"branch", "create", "shop/dev"});
  EXPECT_EQ(Query("shop/dev", "SELECT string_agg(id::text, ',' ORDER BY id) FROM events"), "1,2,3");
  EXPECT_EQ(Query("shop/dev", "SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM pg_stat_wal_receiver"), "0");
  Query("shop/dev",
        "CREATE TABLE dev_only (x int); INSERT INTO dev_only VALUES (42);"
        "INSERT INTO events VALUES (100, 'written in dev')");
  EXPECT_EQ(Query("shop/dev", "SELECT x FROM dev_only"), "42");
  int main_tli = StandbyTimeline("shop/main");
  int dev_tli = Timeline("shop/dev");
  EXPECT_GT(dev_tli, main_tli) << "dev is not on a timeline of its own";
  // main is still the source's standby, untouched by dev.
  EXPECT_EQ(Standby("shop/main", "SELECT pg_is_in_recovery()"), "t");
  EXPECT_EQ(Standby("shop/main", "SELECT to_regclass('dev_only') IS NULL"), "t");
  EXPECT_EQ(Standby("shop/main", "SELECT count(*) FROM events WHERE id = 100"), "0");
  replica = Replica("shop/main");
  EXPECT_TRUE(replica.is_object() && replica.value("streaming", false)) << replica.dump();
  // The source never sees dev's writes either.
  EXPECT_EQ(SourceValue("SELECT count(*) FROM events"), "3");

  // The source goes away: main keeps running (no longer streaming), dev is unaffected, and
  // branches can still be made from what main has.
  Status stopped = source_->runtime->Stop(source_->spec, StopMode::kFast, std::chrono::seconds(30));
  ASSERT_TRUE(stopped.ok()) << stopped.ToString();
  EXPECT_TRUE(Eventually([&] {
    replica = Replica("shop/main");
    return replica.is_object() && replica["streaming"] == false;
  })) << "main still says it streams from a stopped source: "
      << replica.dump();
  nlohmann::json main_info = home_->Branch("shop/main");
  EXPECT_EQ(main_info["state"], "running") << main_info.dump();
  EXPECT_EQ(Standby("shop/main", "SELECT count(*) FROM events"), "3");
  EXPECT_EQ(Query("shop/dev", "SELECT count(*) FROM events"), "4");
  EXPECT_EQ(Query("shop/dev", "SELECT x FROM dev_only"), "42");
  CliResult later = home_->Run({"branch", "create", "shop/later"});
  ASSERT_EQ(later.exit_code, 0) << "branch from main without its source: " << later.err;
  EXPECT_EQ(Query("shop/later", "SELECT string_agg(id::text, ',' ORDER BY id) FROM events"),
            "1,2,3");
  EXPECT_EQ(Query("shop/later", "SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(Query("shop/later", "SELECT count(*) FROM pg_stat_wal_receiver"), "0");
}

TEST_F(SourceE2eTest, ReplicaMasksEveryBranch) {
  SourceExec(
      "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL UNIQUE);"
      "INSERT INTO customers SELECT g, 'person' || g || '@example.com'"
      " FROM generate_series(1, 200) g");
  std::string mask =
      Write("mask.sql", "UPDATE customers SET email = 'customer' || id || '@masked.invalid';\n");
  const std::string unmasked = "SELECT count(*) FROM customers WHERE email LIKE '%example.com'";

  // The password in the URI this time (no PGPASSFILE), and a replication slot pgbranch makes.
  CliResult made = CreateFrom("shop", SourceUriWithPassword(),
                              {"--replica", "--slot", "pgb_shop", "--transform", mask}, {});
  ASSERT_EQ(made.exit_code, 0) << "stderr: " << made.err << "\nstdout: " << made.out;
  EXPECT_EQ(made.out.find(password_), std::string::npos) << made.out;
  EXPECT_EQ(made.err.find(password_), std::string::npos) << made.err;

  // main is production's copy, a standby: unmasked.
  EXPECT_EQ(Standby("shop/main", "SELECT pg_is_in_recovery()"), "t");
  EXPECT_EQ(Standby("shop/main", unmasked), "200");

  home_->Ok({"branch", "create", "shop/a"});
  EXPECT_EQ(Query("shop/a", "SELECT count(*) FROM customers"), "200");
  EXPECT_EQ(Query("shop/a", unmasked), "0") << "an original address reached shop/a";
  EXPECT_EQ(Query("shop/a", "SELECT count(*) FROM customers WHERE email LIKE '%@masked.invalid'"),
            "200");

  // More production data, streamed to main, then a second branch: masked too.
  SourceExec(
      "INSERT INTO customers SELECT g, 'person' || g || '@example.com'"
      " FROM generate_series(201, 300) g");
  EXPECT_TRUE(Eventually([&] { return TryStandby("shop/main", unmasked) == "300"; }))
      << "the new rows never reached main";
  home_->Ok({"branch", "create", "shop/b"});
  EXPECT_EQ(Query("shop/b", "SELECT count(*) FROM customers"), "300");
  EXPECT_EQ(Query("shop/b", unmasked), "0") << "an original address reached shop/b";
  // A branch of a masked branch is masked (it is made from masked data).
  home_->Ok({"branch", "create", "shop/a2", "--parent", "shop/a"});
  EXPECT_EQ(Query("shop/a2", unmasked), "0");
  // The earlier branch is as it was; main is untouched by every mask.
  EXPECT_EQ(Query("shop/a", "SELECT count(*) FROM customers"), "200");
  EXPECT_EQ(Standby("shop/main", unmasked), "300");
  EXPECT_EQ(SourceValue(unmasked), "300");

  // The password: nowhere in what pgbranch shows, and in the home only in the replica's
  // private passfile (sources/<project id>/pgpass).
  nlohmann::json replica = Replica("shop/main");
  EXPECT_EQ(replica.dump().find(password_), std::string::npos) << replica.dump();
  EXPECT_EQ(Audit().dump().find(password_), std::string::npos) << "the password is audited";
  for (const auto& f : FilesContaining(password_)) {
    EXPECT_TRUE(f.rfind("sources/", 0) == 0) << "the password is in " << f;
  }

  // The slot pgbranch created on the source is in use, and `project delete` drops it.
  EXPECT_TRUE(Eventually([&] {
    return SourceValue(
               "SELECT count(*) FROM pg_replication_slots"
               " WHERE slot_name = 'pgb_shop' AND active") == "1";
  })) << "no active slot pgb_shop on the source";
  home_->Ok({"project", "delete", "shop", "--force"});
  EXPECT_EQ(SourceValue("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pgb_shop'"),
            "0");
  EXPECT_TRUE(FilesContaining(password_).empty()) << "the passfile outlived its project";
}

TEST_F(SourceE2eTest, RefusalsLeaveNothing) {
  SourceExec("CREATE TABLE t (id int); INSERT INTO t VALUES (7)");
  Result<int> closed = test::FreePort();
  ASSERT_TRUE(closed.ok()) << closed.status().ToString();
  std::string dump = Write("empty.dump", "");

  auto nothing_left = [&](const std::string& what) {
    SCOPED_TRACE(what);
    auto projects = home_->Ok({"project", "list", "--json"}).Json();
    for (const auto& p : projects) EXPECT_NE(p["name"], "x") << projects.dump();
    CliResult doctor = home_->Run({"doctor", "--json"});
    for (const auto& f : doctor.Json()) EXPECT_NE(f["status"], "fail") << f.dump();
    EXPECT_TRUE(home_->Volumes().empty());
    std::error_code ec;
    std::string sources = home_->path() + "/sources";
    EXPECT_TRUE(!std::filesystem::exists(sources, ec) || std::filesystem::is_empty(sources, ec))
        << "a passfile was left in " << sources;
  };

  // Nothing listens there.
  CliResult r =
      CreateFrom("x", "postgresql://replicator@127.0.0.1:" + std::to_string(*closed) + "/postgres",
                 {}, PassEnv());
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_TRUE(HasLineStarting(r.err, "project create x:")) << r.err;
  nothing_left("no server");

  // A wrong password (in the URI: no passfile).
  r = CreateFrom("x",
                 "postgresql://replicator:not-the-password@127.0.0.1:" +
                     std::to_string(source_->port) + "/postgres",
                 {}, {});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_TRUE(HasLineStarting(r.err, "project create x:")) << r.err;
  EXPECT_NE(r.err.find("password authentication failed"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not-the-password"), std::string::npos) << "the password is echoed";
  nothing_left("wrong password");

  // --replica alone.
  r = home_->Run({"project", "create", "x", "--replica"}, PassEnv());
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("--from-server"), std::string::npos) << r.err;
  nothing_left("--replica without --from-server");

  // Two ways in at once.
  r = CreateFrom("x", SourceUri(), {"--from-dump", dump}, PassEnv());
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("--from-dump"), std::string::npos) << r.err;
  nothing_left("--from-server with --from-dump");

  // A slot name PostgreSQL would refuse.
  r = CreateFrom("x", SourceUri(), {"--replica", "--slot", "Bad-Slot"}, PassEnv());
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("slot"), std::string::npos) << r.err;
  nothing_left("bad slot name");
  EXPECT_EQ(SourceValue("SELECT count(*) FROM pg_replication_slots"), "0");

  // A copy with the password in the URI (and no passfile): it works, and the password is in
  // no output, no audit row (pg_basebackup's argv included) and no file of the home.
  CliResult made = CreateFrom("shop", SourceUriWithPassword(), {}, {});
  ASSERT_EQ(made.exit_code, 0) << "stderr: " << made.err << "\nstdout: " << made.out;
  EXPECT_EQ(Query("shop/main", "SELECT id FROM t"), "7");
  EXPECT_EQ(Query("shop/main", "SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(made.out.find(password_), std::string::npos) << made.out;
  EXPECT_EQ(made.err.find(password_), std::string::npos) << made.err;
  nlohmann::json main_info = home_->Branch("shop/main");
  EXPECT_EQ(main_info.dump().find(password_), std::string::npos) << main_info.dump();
  nlohmann::json audit = Audit();
  bool saw_basebackup = false;
  for (const auto& row : audit) {
    std::string text = row.dump();
    if (text.find("pg_basebackup") != std::string::npos) saw_basebackup = true;
    EXPECT_EQ(text.find(password_), std::string::npos) << "audit row has the password: " << text;
  }
  EXPECT_TRUE(saw_basebackup) << "no audit row for pg_basebackup: " << audit.dump();
  for (const auto& f : FilesContaining(password_)) ADD_FAILURE() << "the password is in " << f;
}

}  // namespace
}  // namespace pgb
