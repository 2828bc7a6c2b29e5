// TTL, idle TTL, protection and labels on the engine, with a fake clock and stopped branches on
// a copy pool (no server runs): what expiry deletes, what it keeps and says once, and what
// protection refuses.

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/engine_testutil.h"

namespace pgb {
namespace {

using engine_test::EngineFixture;
using engine_test::TestEpoch;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class LifetimeTest : public EngineFixture {
 protected:
  void Update(BranchRow& row) {
    Status s = Rows().UpdateBranch(row);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  std::vector<std::string> Names() {
    auto rows = Rows().ListBranches(std::nullopt);
    EXPECT_TRUE(rows.ok());
    std::vector<std::string> out;
    for (const auto& r : *rows) out.push_back(r.name);
    return out;
  }
  std::vector<std::string> KeptRows() {
    auto audit = engine_->Audit(100);
    EXPECT_TRUE(audit.ok());
    std::vector<std::string> out;
    for (const auto& a : *audit) {
      if (a.operation == "expire.kept") out.push_back(a.object + ": " + a.detail);
    }
    return out;
  }
};

// A TTL deletes at its time, not before; an idle TTL counts from the last session serve saw;
// a protected branch and one with children are kept, each said once in the audit trail; main
// is never deleted; the deletion is an operation whose command says why.
TEST_F(LifetimeTest, ExpiryDeletesWhatIsDueAndKeepsWhatIsGuarded) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  auto later = [](std::chrono::minutes m) { return FormatTimestamp(TestEpoch() + m); };
  BranchRow ttl = AddBranch(p, "ttl", 54401, MakeVolume(), kStateStopped, main.id);
  ttl.expires_at = later(std::chrono::minutes(60));
  Update(ttl);
  BranchRow idle = AddBranch(p, "idle", 54402, MakeVolume(), kStateStopped, main.id);
  idle.idle_ttl_s = 2 * 3600;
  idle.last_active_at = later(std::chrono::minutes(60));
  Update(idle);
  BranchRow guarded = AddBranch(p, "guarded", 54403, MakeVolume(), kStateStopped, main.id);
  guarded.expires_at = later(std::chrono::minutes(30));
  guarded.is_protected = true;
  Update(guarded);
  BranchRow parent = AddBranch(p, "parent", 54404, MakeVolume(), kStateStopped, main.id);
  parent.expires_at = later(std::chrono::minutes(30));
  Update(parent);
  AddBranch(p, "child", 54405, MakeVolume(), kStateStopped, parent.id);
  main.expires_at = later(std::chrono::minutes(1));
  Update(main);

  auto none = engine_->ExpireBranches();
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  clock_.Advance(std::chrono::minutes(60));
  auto first = engine_->ExpireBranches();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  std::vector<std::string> deleted, kept;
  for (const auto& e : *first) {
    (e.deleted ? deleted : kept)
        .push_back(e.branch + ": " + (e.deleted ? e.reason : e.kept_because));
  }
  EXPECT_THAT(deleted, ElementsAre("p/ttl: its TTL ended at 2026-11-21T13:00:00.000Z"));
  EXPECT_THAT(
      kept, UnorderedElementsAre("p/main: it is the project's main branch",
                                 "p/guarded: it is protected (pgbranch branch unprotect p/guarded)",
                                 "p/parent: it has child branches (p/child)"));
  EXPECT_THAT(Names(), UnorderedElementsAre("main", "idle", "guarded", "parent", "child"));

  // Looking again says nothing new in the audit trail.
  ASSERT_TRUE(engine_->ExpireBranches().ok());
  EXPECT_EQ(KeptRows().size(), 3u);

  // Idle since 13:00 (its last session), for 2 h: due at 15:00, not a minute before.
  clock_.Advance(std::chrono::minutes(119));
  ASSERT_TRUE(engine_->ExpireBranches().ok());
  EXPECT_THAT(Names(), ::testing::Contains("idle"));
  ASSERT_TRUE(engine_->MarkBranchActive(idle.id).ok());  // a session at 14:59
  clock_.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(engine_->ExpireBranches().ok());
  EXPECT_THAT(Names(), ::testing::Contains("idle"));
  clock_.Advance(std::chrono::minutes(119));
  auto idle_gone = engine_->ExpireBranches();
  ASSERT_TRUE(idle_gone.ok());
  EXPECT_THAT(Names(), UnorderedElementsAre("main", "guarded", "parent", "child"));

  auto ops = engine_->Operations(/*all=*/true, 10);
  ASSERT_TRUE(ops.ok());
  std::vector<std::string> commands;
  for (const auto& op : *ops) {
    if (op.kind == "branch.delete") commands.push_back(op.command);
  }
  EXPECT_THAT(commands,
              ElementsAre("serve: expire p/idle (no session for 2h00m (idle TTL 2h00m))",
                          "serve: expire p/ttl (its TTL ended at 2026-11-21T13:00:00.000Z)"));
}

TEST_F(LifetimeTest, ProtectionRefusesDeleteAndResetUnlessForced) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  BranchRow dev = AddBranch(p, "dev", 54401, MakeVolume(), kStateStopped, main.id);
  AddBranch(p, "leaf", 54402, MakeVolume(), kStateStopped, dev.id);

  auto on = engine_->ProtectBranch(BranchRef{"p", "leaf"}, true);
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_TRUE(on->is_protected);

  Status del = engine_->DeleteBranch(BranchRef{"p", "leaf"}, false);
  EXPECT_EQ(del.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(del.message(), HasSubstr("p/leaf is protected"));
  // Recursive delete of its parent is refused for the protected child too: nothing goes.
  Status rec = engine_->DeleteBranch(BranchRef{"p", "dev"}, true);
  EXPECT_EQ(rec.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(Names(), UnorderedElementsAre("main", "dev", "leaf"));
  ResetOptions reset;
  auto refused = engine_->ResetBranch(BranchRef{"p", "leaf"}, reset);
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("or reset with --force"));

  // Project delete: refused while a branch is protected, even main alone.
  ASSERT_TRUE(engine_->DeleteBranch(BranchRef{"p", "dev"}, true, /*force=*/true).ok());
  EXPECT_THAT(Names(), ElementsAre("main"));
  ASSERT_TRUE(engine_->ProtectBranch(BranchRef{"p", "main"}, true).ok());
  Status project = engine_->DeleteProject("p", false);
  EXPECT_THAT(project.message(), HasSubstr("p/main is protected"));
  ASSERT_TRUE(engine_->ProtectBranch(BranchRef{"p", "main"}, false).ok());
}

TEST_F(LifetimeTest, SetChangesTtlAndLabelsOrNothing) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  AddBranch(p, "dev", 54401, MakeVolume(), kStateStopped, main.id);
  BranchRef dev{"p", "dev"};

  BranchChanges set;
  set.ttl_s = 3600;
  set.idle_ttl_s = 600;
  set.add_labels = {{"pr", "42"}, {"team", "web"}};
  auto b = engine_->SetBranch(dev, set);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->expires_at, "2026-11-21T13:00:00.000Z");
  EXPECT_EQ(b->idle_ttl_s, 600);
  EXPECT_EQ(b->idle_expires_at, "2026-11-21T12:10:00.000Z");  // from created_at
  EXPECT_EQ(b->labels, (std::map<std::string, std::string>{{"pr", "42"}, {"team", "web"}}));

  BranchChanges bad;
  bad.ttl_s = 60;
  bad.add_labels = {{"bad key", "x"}};
  auto refused = engine_->SetBranch(dev, bad);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("label \"bad key=x\""));
  auto same = engine_->GetBranch(dev);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->expires_at, "2026-11-21T13:00:00.000Z");

  BranchChanges both;
  both.clear_ttl = true;
  both.ttl_s = 5;
  EXPECT_EQ(engine_->SetBranch(dev, both).status().code(), StatusCode::kInvalidArgument);
  BranchChanges negative;
  negative.idle_ttl_s = -5;
  EXPECT_EQ(engine_->SetBranch(dev, negative).status().code(), StatusCode::kInvalidArgument);

  BranchChanges clear;
  clear.clear_ttl = true;
  clear.remove_labels = {"team"};
  auto cleared = engine_->SetBranch(dev, clear);
  ASSERT_TRUE(cleared.ok());
  EXPECT_FALSE(cleared->expires_at);
  EXPECT_FALSE(cleared->idle_ttl_s);
  EXPECT_EQ(cleared->labels, (std::map<std::string, std::string>{{"pr", "42"}}));

  auto filter = ParseLabelFilter({"pr=42"});
  ASSERT_TRUE(filter.ok());
  EXPECT_TRUE(filter->Matches(cleared->labels));
  EXPECT_FALSE(ParseLabelFilter({"pr=43"})->Matches(cleared->labels));
  EXPECT_TRUE(ParseLabelFilter({"pr"})->Matches(cleared->labels));
  EXPECT_FALSE(ParseLabelFilter({"pr", "team"})->Matches(cleared->labels));
  EXPECT_FALSE(ParseLabelFilter({"-x"}).ok());
}

TEST(LabelTest, KeysAndValuesFollowTheRule) {
  EXPECT_TRUE(ValidateLabel("app.kubernetes.io/name", "web-1").ok());
  EXPECT_TRUE(ValidateLabel("pr", "").ok());
  EXPECT_FALSE(ValidateLabel("", "x").ok());
  EXPECT_FALSE(ValidateLabel("-a", "x").ok());
  EXPECT_FALSE(ValidateLabel(std::string(64, 'a'), "x").ok());
  EXPECT_FALSE(ValidateLabel("a", std::string(64, 'b')).ok());
  EXPECT_FALSE(ValidateLabel("a\nb", "x").ok());
  EXPECT_FALSE(ValidateLabel("a", "x=y").ok());
  EXPECT_EQ(ParseLabel("a=b=c").status().message(),
            "label \"a=b=c\": use only letters, digits, '-', '_', '.' and '/'");
  EXPECT_EQ(ParseLabel("novalue").status().message(), "label \"novalue\": write key=value");
  auto kv = ParseLabel("team=web");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->first, "team");
  EXPECT_EQ(kv->second, "web");
}

}  // namespace
}  // namespace pgb

namespace pgb {
namespace {

using engine_test::EngineFixture;
using engine_test::TestEpoch;

class ScheduleTest : public EngineFixture {};

// A schedule runs at its slots, once after downtime however many slots it missed, keeps its
// newest N snapshots but never one a branch was made from, and touches no other snapshot.
TEST_F(ScheduleTest, RunsOncePerDueSlotAndKeepsWhatBranchesNeed) {
  InitCopyPool();
  int64_t p = AddProject("p");
  BranchRow main = AddBranch(p, "main", 54400, MakeVolume());
  BranchRef ref{"p", "main"};

  ScheduleOptions bad;
  bad.snapshot_cron = "61 * * * *";
  auto refused = engine_->AddSchedule(ref, bad);
  EXPECT_EQ(refused.status().message(),
            "parse schedule \"61 * * * *\": minute 61 is out of range 0-59");
  bad.snapshot_cron = "0 0 30 2 *";
  EXPECT_EQ(engine_->AddSchedule(ref, bad).status().code(), StatusCode::kInvalidArgument);
  ScheduleOptions o;
  o.snapshot_cron = "0 */6 * * *";
  o.keep = 2;
  EXPECT_EQ(engine_->AddSchedule(BranchRef{"p", "nope"}, o).status().code(), StatusCode::kNotFound);
  auto manual = engine_->CreateSnapshot(ref, "by hand", false);  // not the schedule's
  ASSERT_TRUE(manual.ok()) << manual.status().ToString();

  auto added = engine_->AddSchedule(ref, o);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->next_run, "2026-11-21T18:00:00.000Z");
  auto runs = engine_->RunDueSchedules();
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());  // 12:00 is when it was made, not a slot after it

  clock_.Advance(std::chrono::minutes(6 * 60 + 1));  // 18:01
  runs = engine_->RunDueSchedules();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].slot, "2026-11-21T18:00:00.000Z");
  EXPECT_TRUE((*runs)[0].ok) << (*runs)[0].result;
  EXPECT_TRUE(engine_->RunDueSchedules()->empty());  // the slot ran: not again

  // A branch made from the first scheduled snapshot.
  auto first = engine_->ListSnapshots(ref);
  ASSERT_TRUE(first.ok());
  int64_t first_id = first->back().id;
  AddBranch(p, "dev", 54401, MakeVolume(), kStateStopped, main.id, first_id);

  // Three days down: one run, for the latest slot (2026-11-24T18:00), not twelve.
  clock_.Advance(std::chrono::hours(72));
  runs = engine_->RunDueSchedules();
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].slot, "2026-11-24T18:00:00.000Z");
  clock_.Advance(std::chrono::hours(6));
  runs = engine_->RunDueSchedules();
  ASSERT_EQ(runs->size(), 1u);
  // Three of its snapshots, keep 2: the oldest has a branch, so it stays and is said.
  EXPECT_TRUE((*runs)[0].removed.empty());
  ASSERT_EQ((*runs)[0].kept.size(), 1u);
  EXPECT_EQ((*runs)[0].kept[0], fmt::format("snapshot {}: p/dev made from it", first_id));
  clock_.Advance(std::chrono::hours(6));
  runs = engine_->RunDueSchedules();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].removed.size(), 1u);  // the second one, without dependents

  auto left = engine_->ListSnapshots(ref);
  ASSERT_TRUE(left.ok());
  std::vector<std::string> labels;
  for (const auto& s : *left) labels.push_back(s.label);
  ASSERT_EQ(labels.size(), 4u);
  EXPECT_EQ(labels[0], "by hand");
  EXPECT_EQ(labels[1], "schedule 1 at 2026-11-21T18:00:00.000Z");

  auto listed = engine_->ListSchedules("p");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].last_run, "2026-11-25T06:00:00.000Z");
  EXPECT_EQ((*listed)[0].next_run, "2026-11-25T12:00:00.000Z");
  EXPECT_EQ(engine_->RemoveSchedule(99).code(), StatusCode::kNotFound);
  ASSERT_TRUE(engine_->RemoveSchedule(added->id).ok());
  EXPECT_TRUE(engine_->ListSchedules("")->empty());
  EXPECT_EQ(engine_->ListSnapshots(ref)->size(), 4u);  // its snapshots stay
}

}  // namespace
}  // namespace pgb
