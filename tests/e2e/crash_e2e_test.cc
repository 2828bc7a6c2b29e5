// The crash sweep: every mutating command is killed at every step boundary, on a Btrfs pool
// (atomic snapshots) and a copying pool (plain copies bracketed by the backup API).
//
// Each command's steps are not listed here: they are read from the operations record of a
// normal run (engine/operation.h records every step, and every step is a crash point), so a
// step added later is swept as well. The normal run also proves that every storage and
// runtime call the command makes happens inside a recorded step (its audit rows name the
// step), so nothing can change state between two crash points unseen.
//
// After each crash (PGBRANCH_FAILPOINTS=crash:<kind>:<step>, exit 70): `doctor --fix`, then
// `doctor` reports nothing wrong (no orphan in any direction), the parent's data is intact,
// and the command, run again, succeeds (a crash after the commit point leaves its effect in
// place instead, which is checked). On Btrfs the same sweep runs with failures instead of
// crashes (fail:<kind>:<step>): the command's own undo leaves nothing for doctor.

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

// What the sweep drives: a command, the state it starts from and what it must leave.
struct Scenario {
  std::string kind;  // the operation kind the command records ("branch.create")
  // Makes the state the command starts from (called before every run).
  std::function<void()> setup;
  // The command's arguments (may use what setup made).
  std::function<std::vector<std::string>()> args;
  // Checks the command's effect is there, then undoes it and what setup made.
  std::function<void()> check_done_and_reset;
  // Undoes what setup made when the command's effect is not there.
  std::function<void()> reset_without_effect;
};

class CrashSweepTest : public BackendTest {
 protected:
  // A project with data in main that every crash must leave exactly as it was.
  void SetUpProject(const std::string& name) {
    projects_.push_back(name);
    main_uri_ = home().Ok({"project", "create", name, "--json"}).Json()["uri"];
    Sql(main_uri_,
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g");
    checksum_ = MainChecksum();
  }

  std::string MainChecksum() {
    auto c =
        Column(main_uri_, "SELECT count(*) || ':' || md5(string_agg(v, ',' ORDER BY id)) FROM t");
    return c.empty() ? "" : c[0];
  }

  // The steps the newest operation recorded, after checking it is of `kind`, ended done, and
  // that each of its storage and runtime calls happened inside one of them.
  std::vector<std::string> StepsOfNewest(const std::string& kind) {
    nlohmann::json ops = home().Ok({"operations", "--all", "--limit", "1", "--json"}).Json();
    EXPECT_EQ(ops.size(), 1u);
    if (ops.empty()) return {};
    const auto& op = ops[0];
    EXPECT_EQ(op["kind"], kind) << op.dump();
    EXPECT_EQ(op["state"], "done") << op.dump();
    std::vector<std::string> steps;
    for (const auto& s : op["steps"]) steps.push_back(s["name"]);
    EXPECT_FALSE(steps.empty()) << op.dump();
    int64_t id = op["id"];
    nlohmann::json audit = home().Ok({"audit", "--limit", "500", "--json"}).Json();
    size_t calls = 0;
    for (const auto& row : audit) {
      if (!row["operation_id"].is_number() || row["operation_id"].get<int64_t>() != id) continue;
      ++calls;
      EXPECT_FALSE(row["step"].get<std::string>().empty())
          << kind << ": a call outside any step, so no crash point before it: " << row.dump();
    }
    // A native rename changes only the catalog and pgbranch.conf: nothing audited.
    if (kind != "branch.rename") {
      EXPECT_GT(calls, 0u) << kind << " recorded no storage or runtime call";
    }
    return steps;
  }

  // Doctor has nothing to say but "ok" (warnings about tools the machine lacks aside).
  void ExpectDoctorClean(const std::string& context) {
    CliResult r = home().Run({"doctor", "--json"});
    EXPECT_EQ(r.exit_code, 0) << context << "\n" << r.out << r.err;
    for (const auto& f : r.Json()) {
      EXPECT_NE(f["status"], "fail") << context << ": " << f.dump();
      if (f["check"] == "quarantine" || f["check"] == "interrupted") {
        ADD_FAILURE() << context << ": " << f.dump();
      }
    }
  }

  // Runs `sc` once normally, then once per step with `mode` ("crash" or "fail") at it.
  void Sweep(Scenario sc, const std::string& mode) {
    sc.setup();
    CliResult normal = home().Run(sc.args());
    ASSERT_EQ(normal.exit_code, 0) << normal.err;
    std::vector<std::string> steps = StepsOfNewest(sc.kind);
    sc.check_done_and_reset();
    ExpectDoctorClean(sc.kind + " run normally");
    for (const auto& step : steps) {
      SCOPED_TRACE(fmt::format("{} {} at {}", mode, sc.kind, step));
      sc.setup();
      std::vector<std::string> args = sc.args();
      std::string point = fmt::format("{}:{}:{}", mode, sc.kind, step);
      CliResult r = home().Run(args, {{"PGBRANCH_FAILPOINTS", point}});
      // After the commit (the finish step) a failure is only a note: the command succeeded.
      bool committed = step == "finish";
      if (mode == "crash") {
        EXPECT_EQ(r.exit_code, 70) << point << "\n" << r.err;
        CliResult fix = home().Run({"doctor", "--fix", "--json"});
        EXPECT_EQ(fix.exit_code, 0) << point << "\n" << fix.out << fix.err;
        ++crashes_;
      } else {
        EXPECT_EQ(r.exit_code, committed ? 0 : 1) << point << "\n" << r.err;
        if (committed) {
          // The command succeeded; the cleanup it could not do is left, recorded, for doctor.
          EXPECT_NE(r.err.find("left for 'pgbranch doctor --fix'"), std::string::npos) << r.err;
          CliResult fix = home().Run({"doctor", "--fix", "--json"});
          EXPECT_EQ(fix.exit_code, 0) << point << "\n" << fix.out << fix.err;
        }
        ++failures_;
      }
      ExpectDoctorClean(point);
      EXPECT_EQ(MainChecksum(), checksum_) << point << ": main's data changed";
      if (committed) {
        sc.check_done_and_reset();
      } else {
        CliResult again = home().Run(args);
        EXPECT_EQ(again.exit_code, 0) << point << ": the command run again\n" << again.err;
        if (again.exit_code == 0) {
          sc.check_done_and_reset();
        } else {
          sc.reset_without_effect();
        }
      }
      ExpectDoctorClean(point + ", after the reset");
    }
  }

  // Every scenario the issue lists, in project `p`.
  std::vector<Scenario> Scenarios(const std::string& p) {
    std::vector<Scenario> out;
    auto nothing = [] {};
    auto expect_running = [this](const std::string& ref) {
      nlohmann::json b = home().Branch(ref);
      EXPECT_EQ(b["state"], "running") << b.dump();
      EXPECT_EQ(Column(b["uri"], "SELECT 1"), std::vector<std::string>{"1"}) << ref;
      return b;
    };
    auto remove = [this](const std::string& ref) {
      home().Run({"branch", "delete", ref, "--recursive"});
    };

    // project create
    out.push_back({"project.create", nothing,
                   [] {
                     return std::vector<std::string>{"project", "create", "crash-pc"};
                   },
                   [this, expect_running] {
                     expect_running("crash-pc/main");
                     home().Ok({"project", "delete", "crash-pc", "--force"});
                   },
                   [this] {
                     home().Run({"project", "delete", "crash-pc", "--force"});
                   }});
    // branch create, plain
    out.push_back({"branch.create", nothing,
                   [p] {
                     return std::vector<std::string>{"branch", "create", p + "/c"};
                   },
                   [p, this, expect_running, remove] {
                     nlohmann::json b = expect_running(p + "/c");
                     EXPECT_EQ(Column(b["uri"], "SELECT count(*) FROM t"),
                               std::vector<std::string>{"5000"});
                     remove(p + "/c");
                   },
                   nothing});
    // branch create --snapshot
    out.push_back({"branch.create",
                   [p, this] {
                     snapshot_id_ = home().Ok({"snapshot", "create", p + "/main"}).out;
                     snapshot_id_.erase(snapshot_id_.find_last_not_of("\n") + 1);
                   },
                   [p, this] {
                     return std::vector<std::string>{"branch", "create", p + "/s", "--snapshot",
                                                     snapshot_id_};
                   },
                   [p, this, expect_running, remove] {
                     expect_running(p + "/s");
                     remove(p + "/s");
                     home().Ok({"snapshot", "delete", snapshot_id_});
                   },
                   [this] {
                     home().Run({"snapshot", "delete", snapshot_id_, "--recursive"});
                   }});
    // branch create --pitr: main as it was before a row was added
    out.push_back(
        {"branch.create",
         [this] {
           pitr_at_ = Column(main_uri_,
                             "SELECT to_char(clock_timestamp() AT TIME ZONE "
                             "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")[0];
           Sql(main_uri_, "CREATE TABLE IF NOT EXISTS later (x int); INSERT INTO later VALUES (1)");
         },
         [p, this] {
           return std::vector<std::string>{"branch", "create", p + "/r", "--pitr", pitr_at_};
         },
         [p, this, expect_running, remove] {
           nlohmann::json b = expect_running(p + "/r");
           EXPECT_EQ(Column(b["uri"], "SELECT count(*) FROM t"), std::vector<std::string>{"5000"});
           remove(p + "/r");
           Sql(main_uri_, "DROP TABLE later");
         },
         [this] { Sql(main_uri_, "DROP TABLE IF EXISTS later"); }});
    // branch reset
    out.push_back({"branch.reset",
                   [p, this] {
                     home().Ok({"branch", "create", p + "/x"});
                     Sql(home().Branch(p + "/x")["uri"], "CREATE TABLE mine (x int)");
                   },
                   [p] {
                     return std::vector<std::string>{"branch", "reset", p + "/x"};
                   },
                   [p, this, expect_running, remove] {
                     nlohmann::json b = expect_running(p + "/x");
                     EXPECT_EQ(
                         Column(b["uri"], "SELECT count(*) FROM pg_class WHERE relname = 'mine'"),
                         std::vector<std::string>{"0"})
                         << "the reset did not replace the data";
                     remove(p + "/x");
                   },
                   [p, remove] { remove(p + "/x"); }});
    // branch delete
    out.push_back({"branch.delete",
                   [p, this] {
                     home().Ok({"branch", "create", p + "/d"});
                   },
                   [p] {
                     return std::vector<std::string>{"branch", "delete", p + "/d"};
                   },
                   [p, this] {
                     EXPECT_NE(home().Run({"branch", "get", p + "/d"}).exit_code, 0)
                         << "deleted branch still there";
                   },
                   [p, remove] { remove(p + "/d"); }});
    // branch rename
    out.push_back({"branch.rename",
                   [p, this] {
                     home().Ok({"branch", "create", p + "/n"});
                   },
                   [p] {
                     return std::vector<std::string>{"branch", "rename", p + "/n", "n2"};
                   },
                   [p, this, expect_running, remove] {
                     expect_running(p + "/n2");
                     EXPECT_NE(home().Run({"branch", "get", p + "/n"}).exit_code, 0);
                     remove(p + "/n2");
                   },
                   [p, remove] { remove(p + "/n"); }});
    // snapshot create
    out.push_back({"snapshot.create", nothing,
                   [p] {
                     return std::vector<std::string>{"snapshot", "create", p + "/main", "--label",
                                                     "crash-sweep"};
                   },
                   [this] {
                     for (const auto& s : home().Ok({"snapshot", "list", "--json"}).Json()) {
                       if (s["label"] == "crash-sweep") {
                         home().Ok({"snapshot", "delete", std::to_string(s["id"].get<int64_t>())});
                         return;
                       }
                     }
                     ADD_FAILURE() << "no snapshot labelled crash-sweep";
                   },
                   nothing});
    // snapshot delete (with a branch made from it: --recursive)
    out.push_back(
        {"snapshot.delete",
         [p, this] {
           snapshot_id_ = home().Ok({"snapshot", "create", p + "/main"}).out;
           snapshot_id_.erase(snapshot_id_.find_last_not_of("\n") + 1);
           home().Ok({"branch", "create", p + "/u", "--snapshot", snapshot_id_});
         },
         [this] {
           return std::vector<std::string>{"snapshot", "delete", snapshot_id_, "--recursive"};
         },
         [p, this] {
           EXPECT_NE(home().Run({"snapshot", "get", snapshot_id_}).exit_code, 0);
           EXPECT_NE(home().Run({"branch", "get", p + "/u"}).exit_code, 0);
         },
         [this] {
           home().Run({"snapshot", "delete", snapshot_id_, "--recursive"});
         }});
    // project delete
    out.push_back({"project.delete",
                   [this] {
                     home().Ok({"project", "create", "crash-pd"});
                     home().Ok({"branch", "create", "crash-pd/b"});
                   },
                   [] {
                     return std::vector<std::string>{"project", "delete", "crash-pd", "--force"};
                   },
                   [this] {
                     EXPECT_NE(home().Run({"project", "get", "crash-pd"}).exit_code, 0);
                   },
                   [this] {
                     home().Run({"project", "delete", "crash-pd", "--force"});
                   }});
    return out;
  }

  void TearDown() override {
    if (crashes_ + failures_ > 0) {
      std::printf("[ sweep    ] %s: %d crashes, %d failures, each followed by doctor\n",
                  GetParam().c_str(), crashes_, failures_);
    }
    BackendTest::TearDown();
  }

  std::string main_uri_;
  std::string checksum_;
  std::string snapshot_id_;
  std::string pitr_at_;
  int crashes_ = 0;
  int failures_ = 0;
};

// Every command the issue names, killed at every step: doctor --fix leaves a clean home, main's
// data intact, and the command runs again.
TEST_P(CrashSweepTest, EveryStepOfEveryCommand) {
  SetUpProject("crash");
  for (auto& sc : Scenarios("crash")) {
    SCOPED_TRACE(sc.kind);
    Sweep(sc, "crash");
    if (HasFatalFailure()) return;
  }
}

// The same, failing instead of crashing: each command undoes itself, leaving nothing for
// doctor (a failure after the commit point leaves its finish, recorded, which doctor --fix
// completes). Btrfs only (the undo paths are the pool-independent part).
TEST_P(CrashSweepTest, EveryStepFailsCleanly) {
  if (GetParam() != "btrfs") GTEST_SKIP() << "the failure sweep runs on btrfs";
  SetUpProject("fail");
  for (auto& sc : Scenarios("fail")) {
    SCOPED_TRACE(sc.kind);
    Sweep(sc, "fail");
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Pools, CrashSweepTest, ::testing::Values("btrfs", "copy"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace pgb::e2e
