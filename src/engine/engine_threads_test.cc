// One Engine driven by several threads at once, as the daemon will: the read paths and the
// mutating paths that need no server, on a real catalog and a real copy pool in a temporary
// home (fakes for the runner, clock and port probe: engine_testutil.h). Every call must succeed
// and the home must end as a serial run would leave it. Meant for ThreadSanitizer
// (scripts/check-threads.sh runs these in build/tsan), which reports any data race the calls
// make; on their own they check that nothing fails or deadlocks under contention.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/engine_testutil.h"

namespace pgb {
namespace {

using engine_test::EngineFixture;
using engine_test::TestEpoch;

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class EngineThreadsTest : public EngineFixture {
 protected:
  // Runs `body(thread, round)` on `threads` threads, `rounds` times each, all at once.
  static void RunThreads(int threads, int rounds, const std::function<void(int, int)>& body) {
    std::atomic<int> ready{0};
    std::vector<std::thread> running;
    for (int t = 0; t < threads; ++t) {
      running.emplace_back([&, t] {
        // Start together, so the calls overlap from the first round on.
        ready.fetch_add(1);
        while (ready.load() < threads) std::this_thread::yield();
        for (int r = 0; r < rounds; ++r) body(t, r);
      });
    }
    for (auto& t : running) t.join();
  }
};

// Given a copy pool with project p (main, and dev made from a snapshot of main, both stopped),
// one old unused snapshot, one young one, and an orphan-free pool: six threads call, in turns,
// every read path (ListProjects, ListBranches with sizes, GetBranch, GetStatus, ListSnapshots,
// Operations, Audit, ListCatalogBackups), doctor with and without --fix, snapshot cleanup (dry
// run and real), catalog backups, SetCommand, init with the same pool, snapshot create and
// delete, and branch stop. Everything succeeds; at the end only the old snapshot is gone (each
// cleanup after the first finds nothing, each snapshot made was deleted), doctor finds nothing
// to repair, every backup is a readable catalog, and every operation has ended done.
TEST_F(EngineThreadsTest, ReadAndSafeMutatingPathsAtOnce) {
  InitCopyPool();
  const TimePoint now = TestEpoch();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  std::string origin = MakeSnapshot(main.volume);
  std::string old_snapshot = MakeSnapshot(main.volume);
  std::string young_snapshot = MakeSnapshot(main.volume);
  SnapshotRow used = AddSnapshot(main, origin, now - std::chrono::hours(24 * 30), true);
  AddSnapshot(main, old_snapshot, now - std::chrono::hours(24 * 10));
  AddSnapshot(main, young_snapshot, now - std::chrono::hours(1));
  AddBranch(p, "dev", 54401, MakeVolume(), kStateStopped, main.id, used.id);

  constexpr int kThreads = 6;
  constexpr int kRounds = 12;
  std::atomic<int> failures{0};
  auto check = [&](const Status& s, const char* what) {
    if (s.ok()) return;
    failures.fetch_add(1);
    ADD_FAILURE() << what << ": " << s.ToString();
  };
  RunThreads(kThreads, kRounds, [&](int t, int r) {
    switch ((t + r) % 12) {
      case 0:
        check(engine_->ListProjects().status(), "ListProjects");
        check(engine_->GetBranch({"p", "dev"}).status(), "GetBranch");
        break;
      case 1:
        check(engine_->ListBranches("", SizeMode::kCached).status(), "ListBranches");
        break;
      case 2:
        check(engine_->GetStatus().status(), "GetStatus");
        break;
      case 3:
        check(engine_->Operations(/*all=*/true, 50).status(), "Operations");
        check(engine_->Audit(50).status(), "Audit");
        break;
      case 4:
        check(engine_->Doctor(/*fix=*/false).status(), "Doctor");
        break;
      case 5:
        check(engine_->Doctor(/*fix=*/true).status(), "Doctor --fix");
        break;
      case 6:
        check(engine_->CleanupSnapshots(std::nullopt, 7, /*dry_run=*/true).status(),
              "CleanupSnapshots --dry-run");
        break;
      case 7:
        check(engine_->CleanupSnapshots(std::nullopt, 7, /*dry_run=*/false).status(),
              "CleanupSnapshots");
        break;
      case 8: {
        // The same fake second and reason for every thread: one file name for all of them.
        Result<CatalogBackup> backup = engine_->BackupCatalog("threads");
        check(backup.status(), "BackupCatalog");
        if (backup.ok()) check(Catalog::FileSchemaVersion(backup->path).status(), "the backup");
        check(engine_->ListCatalogBackups().status(), "ListCatalogBackups");
        break;
      }
      case 9:
        engine_->SetCommand("threads " + std::to_string(t));
        check(engine_->ListSnapshots(std::nullopt).status(), "ListSnapshots");
        break;
      case 10: {
        InitOptions same;
        same.copy_dir = pool_root_;
        check(engine_->Init(same).status(), "Init");
        break;
      }
      case 11: {
        // A snapshot of the stopped main (a copy, no server) and its delete; dev stopped again.
        Result<SnapshotInfo> made =
            engine_->CreateSnapshot({"p", "main"}, "t" + std::to_string(t), /*fast=*/false);
        check(made.status(), "CreateSnapshot");
        if (made.ok()) check(engine_->DeleteSnapshot(made->id, false), "DeleteSnapshot");
        check(engine_->StopBranch({"p", "dev"}).status(), "StopBranch");
        check(engine_->FlushAudit(), "FlushAudit");
        break;
      }
    }
  });
  EXPECT_EQ(failures.load(), 0);

  EXPECT_THAT(Snapshots(), UnorderedElementsAre(origin, young_snapshot));
  Result<std::vector<DoctorFinding>> doctor = engine_->Doctor(false);
  ASSERT_TRUE(doctor.ok()) << doctor.status().ToString();
  for (const auto& f : *doctor) {
    if (f.check == "orphans") {
      EXPECT_EQ(f.status, "ok") << f.detail;
    }
    EXPECT_NE(f.check, "orphan volume") << f.detail;
    EXPECT_NE(f.check, "orphan snapshot") << f.detail;
    EXPECT_NE(f.check, "interrupted") << f.detail;
    EXPECT_NE(f.check, "quarantine") << f.detail;
  }
  Result<std::vector<OperationInfo>> open = engine_->Operations(/*all=*/false, 100);
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  EXPECT_THAT(*open, IsEmpty());
  Result<std::vector<OperationInfo>> all = engine_->Operations(/*all=*/true, 1000);
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  for (const auto& op : *all) EXPECT_EQ(op.state, "done") << op.id << " " << op.kind;
  Result<std::vector<CatalogBackup>> backups = engine_->ListCatalogBackups();
  ASSERT_TRUE(backups.ok()) << backups.status().ToString();
  for (const auto& b : *backups) {
    EXPECT_EQ(b.schema_version, Catalog::SchemaVersion()) << b.path;
  }
  // Only reads ran: pg_controldata of main for each snapshot, and doctor's image listings.
  for (const auto& argv : runner_.commands_ran()) {
    bool controldata = argv.size() == 2 && argv[0] == "/usr/lib/postgresql/15/bin/pg_controldata";
    bool images = std::find(argv.begin(), argv.end(), "ls") != argv.end();
    EXPECT_TRUE(controldata || images) << testing::PrintToString(argv);
  }
}

// Given a home with a copy pool and no project, one thread switches the pool between two
// directories (allowed while no project exists) while three threads read the status, which
// describes the pool and measures its usage. Every call succeeds: a reader never uses a pool
// the switch has already let go of.
TEST_F(EngineThreadsTest, InitToAnotherPoolWhileReadersRun) {
  InitCopyPool();
  std::string other = dir_ + "/other";
  ASSERT_TRUE(EnsureDir(other, 0711).ok());
  std::atomic<int> failures{0};
  RunThreads(4, 15, [&](int t, int r) {
    Status s;
    if (t == 0) {
      InitOptions options;
      options.copy_dir = r % 2 == 0 ? other : pool_root_;
      s = engine_->Init(options).status();
    } else {
      Result<StatusInfo> status = engine_->GetStatus();
      s = status.status();
      if (status.ok()) {
        EXPECT_TRUE(status->pool.configured);
        EXPECT_EQ(status->pool.kind, "copy");
      }
    }
    if (!s.ok()) {
      failures.fetch_add(1);
      ADD_FAILURE() << (t == 0 ? "Init: " : "GetStatus: ") << s.ToString();
    }
  });
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace pgb
