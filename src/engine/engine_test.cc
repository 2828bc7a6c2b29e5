// Unit tests of the engine: a real Engine on a real catalog and a real "copy" pool in a
// temporary home, with the process runner, clock and port probe faked (engine_testutil.h).
// Nothing here starts a server or needs PostgreSQL: what is tested is what the engine decides
// and records around the pool and the catalog (init and its settings, snapshot cleanup by whole
// days, snapshots of a stopped branch, the operations record, doctor's repairs and refusals,
// catalog loss and backups). The lock hierarchy has its own tests (locks_test.cc), and so has
// one engine driven by several threads (engine_threads_test.cc).

#include "engine/engine.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "common/fs.h"
#include "engine/engine_testutil.h"
#include "engine/operation.h"
#include "storage/image.h"

namespace pgb {
namespace {

using engine_test::Argv;
using engine_test::EngineFixture;
using engine_test::TestEpoch;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class EngineTest : public EngineFixture {
 protected:
  // The findings of `check`, as "status: detail".
  static std::vector<std::string> Findings(const std::vector<DoctorFinding>& all,
                                           const std::string& check) {
    std::vector<std::string> out;
    for (const auto& f : all) {
      if (f.check == check) out.push_back(f.status + ": " + f.detail);
    }
    return out;
  }

  Result<std::vector<DoctorFinding>> Doctor(bool fix) {
    DoctorOptions options;
    options.fix = fix;
    return engine_->Doctor(options);
  }

  // An operations row as a process would have written it before it died (or while it runs).
  int64_t AddOperation(const std::string& owner, const std::string& kind, const std::string& target,
                       std::optional<int64_t> project_id, std::optional<int64_t> branch_id,
                       const std::vector<Action>& journal) {
    OperationRow op;
    op.kind = kind;
    op.target = target;
    op.project_id = project_id;
    op.branch_id = branch_id;
    op.owner = owner;
    op.pid = 4242;
    op.command = kind + " " + target;
    op.state = kOpRunning;
    op.step = "clone";
    op.steps = R"([{"name":"clone","started_at":"2026-11-21T11:59:00.000Z","ended_at":""}])";
    op.journal = ToJsonText(journal);
    op.started_at = op.updated_at = "2026-11-21T11:59:00.000Z";
    Result<int64_t> id = Rows().InsertOperation(op);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  static std::vector<std::string> SnapshotNames(const std::vector<SnapshotInfo>& infos) {
    std::vector<std::string> names;
    for (const auto& i : infos) names.push_back(i.name);
    return names;
  }
};

// An owner on another boot: dead, whatever pid it names.
constexpr const char* kDeadOwner = "00000000-0000-0000-0000-000000000000/4242/1";

// Given an empty home, `init --copy DIR --port-range 60000-60010` configures that directory as
// the pool and stores the range exactly; a copy pool needs no external program, so the runner
// runs nothing, and the pool marker that lets a lost catalog be noticed is written.
TEST_F(EngineTest, InitCopyPoolStoresSettingsAndRunsNothing) {
  InitOptions options;
  options.copy_dir = pool_root_;
  options.port_range = "60000-60010";
  Result<StatusInfo> status = engine_->Init(options);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_TRUE(status->pool.configured);
  EXPECT_EQ(status->pool.kind, "copy");
  EXPECT_EQ(status->pool.why, "chosen: pgbranch init --copy " + pool_root_);
  EXPECT_FALSE(status->pool.capabilities.atomic_snapshots);
  EXPECT_EQ(status->ports.first, 60000);
  EXPECT_EQ(status->ports.last, 60010);
  EXPECT_EQ(Rows().GetSetting("ports.range").value(), std::optional<std::string>("60000-60010"));
  EXPECT_EQ(Rows().GetSetting("pool.root").value(), std::optional<std::string>(pool_root_));
  EXPECT_TRUE(IsDirectory(pool_root_ + "/volumes"));
  EXPECT_TRUE(IsDirectory(pool_root_ + "/snapshots"));
  EXPECT_TRUE(PathExists(home_ + "/pool.json"));
  EXPECT_THAT(runner_.commands_ran(), IsEmpty());
}

// A home that exists keeps its mode when pgbranch opens it (issue 11): a 0777 directory stays
// 0777 and a sticky 01777 one keeps its sticky bit. A new home is made 0711 as root (the
// servers' account traverses it), 0700 otherwise; as root, an existing 0700 home gains only the
// traverse bits.
TEST_F(EngineTest, OpenKeepsAnExistingHomesMode) {
  engine_.reset();
  auto mode_after_open = [&](mode_t before) -> mode_t {
    EXPECT_TRUE(SetMode(home_, before).ok());
    auto engine = Open();
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    struct stat st {};
    EXPECT_EQ(::stat(home_.c_str(), &st), 0);
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode_after_open(0777), 0777u);
  EXPECT_EQ(mode_after_open(01777), 01777u);
  EXPECT_EQ(mode_after_open(0700), ::geteuid() == 0 ? 0711u : 0700u);

  std::string fresh = dir_ + "/fresh";
  EngineEnv env = Env();
  env.home = fresh;
  auto engine = Engine::Open(env);
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, ::geteuid() == 0 ? 0711u : 0700u);
}

// Given an empty home, an init whose port range is malformed, reversed or outside 1024-65535
// is InvalidArgument naming the text, and changes nothing: no pool, no setting, no marker.
TEST_F(EngineTest, InitRefusesBadPortRangesAndChangesNothing) {
  for (const char* range :
       {"60010-60000", "80-90", "60000", "60000-70000", "0x1f90-60000", "60000-60010 ", "-"}) {
    InitOptions options;
    options.copy_dir = pool_root_;
    options.port_range = range;
    Status s = engine_->Init(options).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << range;
    EXPECT_EQ(s.message(), fmt::format("invalid port range \"{}\": write FIRST-LAST with 1024 <= "
                                       "FIRST <= LAST <= 65535",
                                       range));
  }
  Result<StatusInfo> status = engine_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_FALSE(status->pool.configured);
  EXPECT_EQ(status->ports.first, 54320);  // the default range
  EXPECT_EQ(status->ports.last, 54999);
  EXPECT_EQ(Rows().GetSetting("ports.range").value(), std::nullopt);
  EXPECT_FALSE(PathExists(home_ + "/pool.json"));
  EXPECT_FALSE(PathExists(pool_root_ + "/volumes"));
}

// Given a configured copy pool, a second init with only a port range keeps the pool and takes
// the new range; choosing another pool is refused while a project lives in this one, naming
// the pool and the count, and leaves the pool as it was.
TEST_F(EngineTest, InitAgainKeepsThePoolAndRefusesAnotherWhileProjectsExist) {
  InitCopyPool();
  InitOptions range;
  range.port_range = "61000-61005";
  Result<StatusInfo> again = engine_->Init(range);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->pool.kind, "copy");
  EXPECT_EQ(again->pool.why, "chosen: pgbranch init --copy " + pool_root_);
  EXPECT_EQ(again->ports.first, 61000);
  EXPECT_EQ(again->ports.last, 61005);

  AddProject("p");
  std::string other = dir_ + "/other";
  ASSERT_TRUE(EnsureDir(other, 0700).ok());
  InitOptions move;
  move.copy_dir = other;
  Status refused = engine_->Init(move).status();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.message(),
            fmt::format("a pool is already configured ({}) and holds 1 project(s); delete them "
                        "before choosing another pool",
                        pool_root_));
  EXPECT_EQ(Rows().GetSetting("pool.root").value(), std::optional<std::string>(pool_root_));
  EXPECT_FALSE(PathExists(other + "/volumes"));
  EXPECT_THAT(runner_.commands_ran(), IsEmpty());
}

// Given an image pool whose mkfs fails (the fake runner says so), init runs exactly that one
// mkfs argv, returns its failure, and leaves no image file and no pool behind, so a corrected
// retry starts clean. Both filesystems: Btrfs and XFS (reflink=1).
TEST_F(EngineTest, FailedImageInitRunsMkfsOnceAndLeavesNoImage) {
  CommandResult failed;
  failed.exit_code = 1;
  failed.err = "mkfs: the fake refuses";
  runner_.Answer("mkfs.btrfs", failed);
  runner_.Answer("mkfs.xfs", failed);
  std::string image = dir_ + "/pool.img";
  InitOptions options;
  options.image = image;
  options.size_bytes = kMinImagePoolSize;
  Status s = engine_->Init(options).status();
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed) << s.ToString();
  EXPECT_EQ(s.message(), fmt::format("`mkfs.btrfs -q -L pgbranch {}` exited with status 1: mkfs: "
                                     "the fake refuses",
                                     image));
  options.fs = "xfs";
  EXPECT_EQ(engine_->Init(options).status().code(), StatusCode::kCommandFailed);
  EXPECT_THAT(runner_.commands_ran(),
              ElementsAre(Argv{"mkfs.btrfs", "-q", "-L", "pgbranch", image},
                          Argv{"mkfs.xfs", "-q", "-L", "pgbranch", "-m", "reflink=1", image}));
  EXPECT_FALSE(PathExists(image));
  EXPECT_FALSE(PathExists(image + ".mnt"));
  EXPECT_FALSE(PathExists(home_ + "/pool.json"));
  Result<StatusInfo> status = engine_->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_FALSE(status->pool.configured);
  // The audit trail has both attempts, failed.
  Result<std::vector<AuditRow>> audit = engine_->Audit(10);
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  std::vector<std::string> execs;
  for (const auto& row : *audit) {
    if (row.operation == "exec") execs.push_back(row.object + (row.ok ? " ok" : " failed"));
  }
  EXPECT_THAT(execs, ElementsAre("mkfs.btrfs failed", "mkfs.xfs failed"));
}

// Given snapshots made 3 days and 1 ms, exactly 3 days, and 1 hour before the fake clock's
// now, and one 10 days old that a branch was made from: a 3-day cleanup removes only the first
// (a snapshot exactly `days` old stays), keeps the used one saying why, and a dry run changes
// nothing. One millisecond later the 3-day-old one goes too. Each cleanup is an operation in
// the record, and its destroys are in the audit trail under the command that did them.
TEST_F(EngineTest, CleanupSnapshotsCountsWholeDaysOnTheClock) {
  InitCopyPool();
  const TimePoint now = TestEpoch();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  std::string old_name = MakeSnapshot(main.volume);
  std::string edge_name = MakeSnapshot(main.volume);
  std::string young_name = MakeSnapshot(main.volume);
  std::string used_name = MakeSnapshot(main.volume);
  SnapshotRow old =
      AddSnapshot(main, old_name, now - std::chrono::hours(72) - std::chrono::milliseconds(1));
  SnapshotRow edge = AddSnapshot(main, edge_name, now - std::chrono::hours(72));
  AddSnapshot(main, young_name, now - std::chrono::hours(1));
  SnapshotRow used = AddSnapshot(main, used_name, now - std::chrono::hours(240));
  AddBranch(p, "dev", 54401, MakeVolume(), kStateStopped, main.id, used.id);

  engine_->SetCommand("snapshot cleanup --days 3");
  Result<CleanupReport> dry = engine_->CleanupSnapshots(std::nullopt, 3, /*dry_run=*/true);
  ASSERT_TRUE(dry.ok()) << dry.status().ToString();
  EXPECT_THAT(SnapshotNames(dry->removed), ElementsAre(old_name));
  ASSERT_EQ(dry->kept.size(), 1u);
  EXPECT_EQ(dry->kept[0].first.id, used.id);
  EXPECT_EQ(dry->kept[0].second, "branch p/dev made from it");
  EXPECT_THAT(Snapshots(), UnorderedElementsAre(old_name, edge_name, young_name, used_name));

  Result<CleanupReport> real = engine_->CleanupSnapshots(std::nullopt, 3, /*dry_run=*/false);
  ASSERT_TRUE(real.ok()) << real.status().ToString();
  EXPECT_THAT(SnapshotNames(real->removed), ElementsAre(old_name));
  EXPECT_THAT(Snapshots(), UnorderedElementsAre(edge_name, young_name, used_name));
  EXPECT_EQ(Rows().GetSnapshot(old.id).status().code(), StatusCode::kNotFound);

  clock_.Advance(std::chrono::milliseconds(1));
  Result<CleanupReport> later = engine_->CleanupSnapshots(BranchRef{"p", "main"}, 3, false);
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  EXPECT_THAT(SnapshotNames(later->removed), ElementsAre(edge_name));
  EXPECT_THAT(Snapshots(), UnorderedElementsAre(young_name, used_name));
  EXPECT_EQ(Rows().GetSnapshot(edge.id).status().code(), StatusCode::kNotFound);

  // The record: three cleanups of project p, newest first, all done, by this command.
  Result<std::vector<OperationInfo>> ops = engine_->Operations(/*all=*/true, 10);
  ASSERT_TRUE(ops.ok()) << ops.status().ToString();
  ASSERT_EQ(ops->size(), 3u);
  for (const auto& op : *ops) {
    EXPECT_EQ(op.kind, "snapshot.cleanup");
    EXPECT_EQ(op.target, "p");
    EXPECT_EQ(op.state, "done");
    EXPECT_FALSE(op.owner_alive);
    EXPECT_EQ(op.command, "snapshot cleanup --days 3");
    EXPECT_EQ(op.journal_left, 0u);
    EXPECT_EQ(op.started_at,
              FormatTimestamp(op.id == (*ops)[0].id ? now + std::chrono::milliseconds(1) : now));
  }
  EXPECT_THAT((*ops)[2].steps, IsEmpty());  // the dry run committed nothing
  ASSERT_EQ((*ops)[1].steps.size(), 2u);
  EXPECT_EQ((*ops)[1].steps[0].name, "commit");
  EXPECT_EQ((*ops)[1].steps[1].name, "finish");

  Result<std::vector<AuditRow>> audit = engine_->Audit(20);
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  std::vector<std::string> destroyed;
  for (const auto& row : *audit) {
    if (row.operation != "pool.DestroySnapshot") continue;
    destroyed.push_back(row.object);
    EXPECT_EQ(row.command, "snapshot cleanup --days 3");
    EXPECT_TRUE(row.ok) << row.error;
    EXPECT_EQ(row.step, "finish");
    EXPECT_EQ(row.at,
              FormatTimestamp(row.object == old_name ? now : now + std::chrono::milliseconds(1)));
  }
  EXPECT_THAT(destroyed, ElementsAre(old_name, edge_name));
  EXPECT_THAT(runner_.commands_ran(), IsEmpty());
}

// Given a stopped branch, a snapshot of it is a copy in the pool taken with no server (no
// backup bracket needed), whose WAL position comes from the project's own pg_controldata, run
// with exactly the data directory as argument: a clean shutdown's checkpoint location becomes
// the snapshot's LSN, stamped with the fake clock's time. Deleting it removes copy and row.
// When pg_controldata fails, the snapshot is still made, without a WAL position.
TEST_F(EngineTest, SnapshotOfAStoppedBranchReadsItsWalPositionFromPgControldata) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  const std::string controldata = "/usr/lib/postgresql/15/bin/pg_controldata";
  CommandResult shut_down;
  shut_down.exit_code = 0;
  shut_down.out =
      "pg_control version number:            1300\n"
      "Database cluster state:               shut down\n"
      "Latest checkpoint location:           0/3000060\n";
  runner_.Answer(controldata, shut_down);

  Result<SnapshotInfo> made = engine_->CreateSnapshot({"p", "main"}, "before the migration", false);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ(made->branch, "p/main");
  EXPECT_EQ(made->label, "before the migration");
  EXPECT_FALSE(made->implicit);
  EXPECT_EQ(made->created_at, FormatTimestamp(TestEpoch()));
  EXPECT_THAT(Snapshots(), ElementsAre(made->name));
  EXPECT_EQ(ReadFile(PoolHere().SnapshotPath(main.volume, made->name) + "/PG_VERSION").value(),
            "15\n");
  Result<SnapshotRow> row = Rows().GetSnapshot(made->id);
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->wal_lsn, "0/3000060");
  EXPECT_EQ(row->wal_time_us,
            std::chrono::duration_cast<std::chrono::microseconds>(TestEpoch().time_since_epoch())
                .count());
  EXPECT_THAT(runner_.commands_ran(),
              ElementsAre(Argv{controldata, PoolHere().VolumePath(main.volume)}));

  ASSERT_TRUE(engine_->DeleteSnapshot(made->id, /*recursive=*/false).ok());
  EXPECT_THAT(Snapshots(), IsEmpty());
  EXPECT_EQ(Rows().GetSnapshot(made->id).status().code(), StatusCode::kNotFound);

  CommandResult failed;
  failed.exit_code = 1;
  failed.err = "pg_controldata: could not open file";
  runner_.Answer(controldata, failed);
  Result<SnapshotInfo> unknown = engine_->CreateSnapshot({"p", "main"}, "", false);
  ASSERT_TRUE(unknown.ok()) << unknown.status().ToString();
  Result<SnapshotRow> unknown_row = Rows().GetSnapshot(unknown->id);
  ASSERT_TRUE(unknown_row.ok());
  EXPECT_EQ(unknown_row->wal_lsn, "");
  EXPECT_EQ(unknown_row->wal_time_us, std::nullopt);
}

// Given one operation in flight (owned by this process) and one left by a process on another
// boot, `Operations(false)` lists both as open with their owner's liveness, steps and journal;
// `Operations(true)` lists ended ones as well, newest first; a limit below 1 is refused.
TEST_F(EngineTest, OperationsShowsOpenAndEndedWithTheirOwners) {
  InitCopyPool();
  Action undo;
  undo.kind = "destroy-volume";
  undo.volume = NewVolumeName();
  int64_t dead =
      AddOperation(kDeadOwner, "branch.create", "p/x", std::nullopt, std::nullopt, {undo});
  int64_t alive = AddOperation(SelfOwner(), "branch.reset", "p/y", std::nullopt, std::nullopt, {});
  ASSERT_TRUE(engine_->CleanupSnapshots(std::nullopt, 1, true).ok());  // no project: no op

  Result<std::vector<OperationInfo>> open = engine_->Operations(/*all=*/false, 10);
  ASSERT_TRUE(open.ok()) << open.status().ToString();
  ASSERT_EQ(open->size(), 2u);
  EXPECT_EQ((*open)[0].id, dead);  // oldest first
  EXPECT_FALSE((*open)[0].owner_alive);
  EXPECT_EQ((*open)[0].journal_left, 1u);
  EXPECT_EQ((*open)[0].step, "clone");
  ASSERT_EQ((*open)[0].steps.size(), 1u);
  EXPECT_EQ((*open)[0].steps[0].name, "clone");
  EXPECT_EQ((*open)[1].id, alive);
  EXPECT_TRUE((*open)[1].owner_alive);
  EXPECT_EQ((*open)[1].state, "running");

  Status limit = engine_->Operations(true, 0).status();
  EXPECT_EQ(limit.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(limit.message(), "--limit must be 1 or more");
  Result<std::vector<OperationInfo>> one = engine_->Operations(true, 1);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].id, alive);  // newest first
}

// Given a create interrupted by a crash (its owner on another boot): a branch row still
// `creating` and a clone holding files, both named in its journal. `doctor` reports it and
// touches nothing; `doctor --fix` runs the journal newest first under the operation's locks:
// the volume and the row are gone, the record says `undone` by doctor, and main is untouched.
TEST_F(EngineTest, DoctorUndoesAnInterruptedOperation) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  BranchRow x = AddBranch(p, "x", 54401, MakeVolume(), kStateCreating, main.id);
  Action remove_row;
  remove_row.kind = "remove-branch-row";
  remove_row.branch_id = x.id;
  Action destroy;
  destroy.kind = "destroy-volume";
  destroy.volume = x.volume;
  int64_t op = AddOperation(kDeadOwner, "branch.create", "p/x", p, x.id, {remove_row, destroy});
  const std::string what = fmt::format("create (operation {}, pid 4242, at step clone)", op);

  Result<std::vector<DoctorFinding>> report = Doctor(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_THAT(Findings(*report, "interrupted"),
              ElementsAre(fmt::format("fail: p/x was left by an interrupted {}; 'pgbranch doctor "
                                      "--fix' will undo it",
                                      what)));
  EXPECT_THAT(Volumes(), UnorderedElementsAre(main.volume, x.volume));

  Result<std::vector<DoctorFinding>> fixed = Doctor(true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_THAT(Findings(*fixed, "interrupted"),
              ElementsAre(fmt::format("fixed: p/x: undid the interrupted {}", what)));
  EXPECT_THAT(Findings(*fixed, "orphan volume"), IsEmpty());
  EXPECT_THAT(Volumes(), ElementsAre(main.volume));
  EXPECT_FALSE(PathExists(PoolHere().VolumePath(x.volume)));
  EXPECT_EQ(Rows().FindBranch(p, "x").value(), std::nullopt);
  Result<OperationRow> row = Rows().GetOperation(op);
  ASSERT_TRUE(row.ok()) << row.status().ToString();
  EXPECT_EQ(row->state, kOpUndone);
  EXPECT_EQ(row->journal, "[]");
  EXPECT_EQ(row->error, "repaired by pgbranch doctor");
  EXPECT_EQ(row->ended_at, FormatTimestamp(TestEpoch()));
  EXPECT_EQ(Rows().GetBranch(main.id).value().state, kStateStopped);
  EXPECT_TRUE(PathExists(PoolHere().VolumePath(main.volume) + "/PG_VERSION"));
}

// Given an operation of this very process (its owner alive) whose journal names a volume no row
// refers to yet, and whose branch row is still `creating`: `doctor --fix` says it is in
// progress and leaves it entirely alone: the volume stays live (not quarantined), the row stays
// `creating`, and the record stays open.
TEST_F(EngineTest, DoctorNeverTouchesTheWorkOfALiveOperation) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  BranchRow y = AddBranch(p, "y", 54401, NewVolumeName(), kStateCreating, main.id);
  std::string clone = MakeVolume();  // not y's volume yet: the clone in progress
  Action destroy;
  destroy.kind = "destroy-volume";
  destroy.volume = clone;
  int64_t op = AddOperation(SelfOwner(), "branch.create", "p/y", p, y.id, {destroy});

  Result<std::vector<DoctorFinding>> fixed = Doctor(true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_THAT(Findings(*fixed, "operation"),
              ElementsAre(fmt::format("ok: create (operation {}, pid 4242, at step clone) of p/y "
                                      "is in progress",
                                      op)));
  EXPECT_THAT(Findings(*fixed, "orphan volume"), IsEmpty());
  EXPECT_THAT(Findings(*fixed, "interrupted"), IsEmpty());
  EXPECT_THAT(Volumes(), UnorderedElementsAre(main.volume, clone));
  EXPECT_THAT(PoolHere().ListQuarantined().value(), IsEmpty());
  EXPECT_EQ(Rows().GetBranch(y.id).value().state, kStateCreating);
  Result<OperationRow> row = Rows().GetOperation(op);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->state, kOpRunning);
  EXPECT_EQ(row->ended_at, "");
}

// Given a volume holding files and a snapshot that no row and no operation refers to: `doctor`
// reports both and changes nothing; `doctor --fix` quarantines them (moved aside at the fake
// clock's time, files intact), never destroys them; `--purge` leaves them alone for a week
// (the grace) and destroys them once the clock has moved past it.
TEST_F(EngineTest, DoctorQuarantinesOrphansAndPurgesOnlyAfterTheGrace) {
  InitCopyPool();
  std::string orphan = MakeVolume();
  std::string orphan_snapshot = MakeSnapshot(orphan);

  Result<std::vector<DoctorFinding>> report = Doctor(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_THAT(Findings(*report, "orphan volume"),
              ElementsAre(fmt::format("fail: {} ({}) belongs to no branch; 'pgbranch doctor "
                                      "--adopt' brings it back, 'pgbranch doctor --fix' "
                                      "quarantines it",
                                      orphan, PoolHere().VolumePath(orphan))));
  EXPECT_THAT(Findings(*report, "orphan snapshot"), ElementsAre(HasSubstr(orphan_snapshot)));
  EXPECT_THAT(Volumes(), ElementsAre(orphan));

  Result<std::vector<DoctorFinding>> fixed = Doctor(true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_THAT(Findings(*fixed, "orphan volume"),
              ElementsAre(fmt::format("fixed: quarantined {}: nothing refers to it; 'pgbranch "
                                      "doctor --adopt' brings it back as a branch",
                                      orphan)));
  EXPECT_THAT(Volumes(), IsEmpty());
  EXPECT_THAT(Snapshots(), IsEmpty());
  Result<std::vector<QuarantinedObject>> quarantined = PoolHere().ListQuarantined();
  ASSERT_TRUE(quarantined.ok()) << quarantined.status().ToString();
  ASSERT_EQ(quarantined->size(), 2u);
  for (const auto& q : *quarantined) {
    EXPECT_EQ(q.since, TestEpoch()) << q.name;
    EXPECT_EQ(ReadFile(q.path + "/PG_VERSION").value(), "15\n") << q.name;
  }

  DoctorOptions purge;
  purge.purge = true;
  clock_.Advance(std::chrono::hours(24 * 7) - std::chrono::milliseconds(1));
  Result<std::vector<DoctorFinding>> early = engine_->Doctor(purge);
  ASSERT_TRUE(early.ok()) << early.status().ToString();
  EXPECT_EQ(PoolHere().ListQuarantined().value().size(), 2u);
  clock_.Advance(std::chrono::milliseconds(1));
  Result<std::vector<DoctorFinding>> due = engine_->Doctor(purge);
  ASSERT_TRUE(due.ok()) << due.status().ToString();
  EXPECT_THAT(Findings(*due, "quarantine"),
              UnorderedElementsAre(HasSubstr("purged volume " + orphan),
                                   HasSubstr("purged snapshot " + orphan_snapshot)));
  EXPECT_THAT(PoolHere().ListQuarantined().value(), IsEmpty());
}

// MeasureSizes measures the volumes of settled branches whose last measurement is older than
// asked (or missing), skips one being made, and drops the figures of a volume no branch holds;
// lists read the kept figures until then, and SizeMode::kMeasure measures at once.
TEST_F(EngineTest, MeasureSizesRenewsOnlyOldFiguresAndPrunesVolumesGone) {
  InitCopyPool();
  int64_t project = AddProject("demo");
  BranchRow a = AddBranch(project, "main", 60001, MakeVolume());
  BranchRow b = AddBranch(project, "b", 60002, MakeVolume(), kStateStopped, a.id);
  AddBranch(project, "c", 60003, MakeVolume(), kStateCreating, a.id);
  const std::string a_dir = PoolHere().VolumePath(a.volume);
  ASSERT_TRUE(WriteFileAtomic(a_dir + "/one", std::string(1 << 20, 'x'), 0600).ok());

  Result<int> measured = engine_->MeasureSizes(std::chrono::seconds(60));
  ASSERT_TRUE(measured.ok()) << measured.status().ToString();
  EXPECT_EQ(*measured, 2);  // not c, which is being made
  const std::string first_at = FormatTimestamp(TestEpoch());
  Result<BranchInfo> got = engine_->GetBranch({"demo", "main"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->sizes_measured_at, std::optional<std::string>(first_at));
  ASSERT_TRUE(got->size_bytes.has_value());
  const uint64_t first_size = *got->size_bytes;
  EXPECT_GE(first_size, 1u << 20);

  // New data is not seen until the figures are renewed, which is not before they are 60 s old.
  ASSERT_TRUE(WriteFileAtomic(a_dir + "/two", std::string(1 << 20, 'y'), 0600).ok());
  clock_.Advance(std::chrono::seconds(30));
  EXPECT_EQ(engine_->MeasureSizes(std::chrono::seconds(60)).value(), 0);
  got = engine_->GetBranch({"demo", "main"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->size_bytes, std::optional<uint64_t>(first_size));
  Result<std::vector<BranchInfo>> listed = engine_->ListBranches("demo", SizeMode::kCached);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].size_bytes, std::optional<uint64_t>(first_size));

  // Measured now on demand, and kept.
  got = engine_->GetBranch({"demo", "main"}, SizeMode::kMeasure);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_GE(got->size_bytes.value_or(0), first_size + (1u << 20));
  const std::string now_at = FormatTimestamp(TestEpoch() + std::chrono::seconds(30));
  EXPECT_EQ(got->sizes_measured_at, std::optional<std::string>(now_at));
  EXPECT_EQ(Rows().GetVolumeSize(a.volume).value()->measured_at, now_at);

  // Older than 60 s: renewed; a branch gone: its figures go too.
  clock_.Advance(std::chrono::seconds(31));
  ASSERT_TRUE(Rows().DeleteBranch(b.id).ok());
  EXPECT_EQ(engine_->MeasureSizes(std::chrono::seconds(60)).value(), 0);
  EXPECT_FALSE(Rows().GetVolumeSize(b.volume).value().has_value());
  clock_.Advance(std::chrono::seconds(30));
  EXPECT_EQ(engine_->MeasureSizes(std::chrono::seconds(60)).value(), 1);
}

// A WAL archive directory of a project that is gone is reported once (not each directory under
// it) and removed by --fix; one an open operation's journal names is left to that operation.
TEST_F(EngineTest, DoctorRemovesOnlyArchivesOfWhatIsGone) {
  InitCopyPool();
  std::string gone = home_ + "/wal/gone", busy = home_ + "/wal/busy";
  ASSERT_TRUE(EnsureDir(gone + "/3/v1", 0700).ok());
  ASSERT_TRUE(EnsureDir(busy + "/4/v2", 0700).ok());
  Action remove;
  remove.kind = "remove-dir";
  remove.path = busy;
  AddOperation(SelfOwner(), "project.delete", "busy", std::nullopt, std::nullopt, {remove});

  Result<std::vector<DoctorFinding>> report = Doctor(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_THAT(Findings(*report, "stale archive"),
              ElementsAre("fail: " + gone + " is the WAL archive of something that is gone"));
  Result<std::vector<DoctorFinding>> fixed = Doctor(true);
  ASSERT_TRUE(fixed.ok()) << fixed.status().ToString();
  EXPECT_THAT(Findings(*fixed, "stale archive"),
              ElementsAre("fixed: removed " + gone + ": the WAL archive of something gone"));
  EXPECT_FALSE(std::filesystem::exists(gone));
  EXPECT_TRUE(std::filesystem::exists(busy + "/4/v2"));
}

// Given a stopped branch whose port a stranger holds (the fake probe says so), doctor says the
// branch could not start there, having asked the probe about exactly that address and port.
TEST_F(EngineTest, DoctorReportsAPortAnotherProgramHolds) {
  InitCopyPool();
  int64_t p = AddProject("p");
  AddBranch(p, "main", 54400, MakeVolume());
  AddBranch(p, "free", 54401, MakeVolume());
  ports_.Take(54400);
  Result<std::vector<DoctorFinding>> report = Doctor(false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_THAT(Findings(*report, "port"),
              ElementsAre("fail: port 54400 of p/main is held by another program; stop it before "
                          "'pgbranch branch start p/main'"));
  EXPECT_THAT(ports_.asked(),
              UnorderedElementsAre(std::pair<std::string, int>("127.0.0.1", 54400),
                                   std::pair<std::string, int>("127.0.0.1", 54401)));
}

// Given a home with a pool (pool.json) whose catalog was deleted, or truncated to 0 bytes,
// opening it is refused with what to do ('catalog restore', 'doctor --adopt'); the lost
// catalog is not replaced by an empty one (nothing is created, the empty file stays empty).
TEST_F(EngineTest, ALostCatalogIsRefusedNotReplaced) {
  InitCopyPool();
  engine_.reset();
  const std::string db = home_ + "/state.db";
  for (const char* suffix : {"", "-wal", "-shm"}) ASSERT_TRUE(RemoveFile(db + suffix).ok());

  Result<std::unique_ptr<Engine>> missing = Open();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("the catalog " + db + " is missing"));
  EXPECT_THAT(missing.status().message(), HasSubstr("pool.json"));
  EXPECT_THAT(missing.status().message(), HasSubstr("'pgbranch catalog restore --latest'"));
  EXPECT_THAT(missing.status().message(), HasSubstr("'pgbranch doctor --adopt'"));
  EXPECT_FALSE(PathExists(db));

  ASSERT_TRUE(WriteFileAtomic(db, "", 0600).ok());
  Result<std::unique_ptr<Engine>> empty = Open();
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(empty.status().message(), HasSubstr("is empty (0 bytes)"));
  EXPECT_THAT(empty.status().message(), HasSubstr("catalog restore"));
  EXPECT_THAT(empty.status().message(), HasSubstr("doctor --adopt"));
  struct stat st {};
  ASSERT_EQ(::stat(db.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 0);
}

// Given a catalog with project a, a backup, then project b: the backup is listed with the
// schema version; restoring it brings back exactly {a} and keeps what it replaced as a
// "before-restore" backup; a file that is not a catalog is refused and changes nothing; and
// after the catalog is lost, an engine opened for recovery restores {a} from the same backup.
TEST_F(EngineTest, CatalogBackupAndRestoreRoundTrip) {
  InitCopyPool();
  AddProject("a");
  Result<CatalogBackup> backup = engine_->BackupCatalog("test");
  ASSERT_TRUE(backup.ok()) << backup.status().ToString();
  EXPECT_EQ(backup->path, home_ + "/backups/state-20261121T120000Z-test.db");
  EXPECT_EQ(backup->at, FormatTimestamp(TestEpoch()));
  EXPECT_EQ(backup->schema_version, Catalog::SchemaVersion());
  EXPECT_GT(backup->bytes, 0u);
  AddProject("b");

  auto project_names = [&](Engine& engine) {
    std::vector<std::string> names;
    Result<std::vector<ProjectInfo>> projects = engine.ListProjects();
    EXPECT_TRUE(projects.ok()) << projects.status().ToString();
    if (projects.ok()) {
      for (const auto& p : *projects) names.push_back(p.name);
    }
    return names;
  };
  ASSERT_THAT(project_names(*engine_), ElementsAre("a", "b"));

  std::string junk = dir_ + "/junk.db";
  ASSERT_TRUE(WriteFileAtomic(junk, "not a database", 0600).ok());
  EXPECT_EQ(engine_->RestoreCatalog(junk).code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(project_names(*engine_), ElementsAre("a", "b"));

  clock_.Advance(std::chrono::seconds(1));
  ASSERT_TRUE(engine_->RestoreCatalog(backup->path).ok());
  EXPECT_THAT(project_names(*engine_), ElementsAre("a"));
  Result<std::vector<CatalogBackup>> backups = engine_->ListCatalogBackups();
  ASSERT_TRUE(backups.ok()) << backups.status().ToString();
  std::vector<std::string> paths;
  for (const auto& b : *backups) paths.push_back(b.path);
  EXPECT_THAT(paths, ElementsAre(home_ + "/backups/state-20261121T120001Z-before-restore.db",
                                 backup->path));

  engine_.reset();
  rows_.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    ASSERT_TRUE(RemoveFile(home_ + "/state.db" + suffix).ok());
  }
  EngineEnv env = Env();
  env.allow_lost_catalog = true;
  Result<std::unique_ptr<Engine>> recovery = Engine::Open(env);
  ASSERT_TRUE(recovery.ok()) << recovery.status().ToString();
  EXPECT_THAT(project_names(**recovery), IsEmpty());
  ASSERT_TRUE((*recovery)->RestoreCatalog(backup->path).ok());
  EXPECT_THAT(project_names(**recovery), ElementsAre("a"));
}

}  // namespace
}  // namespace pgb
