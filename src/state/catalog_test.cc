#include "state/catalog.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace pgb {
namespace {

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-catalog-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/state.db";
    auto c = Catalog::Open(path_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    catalog_ = std::move(c).value();
  }
  void TearDown() override {
    catalog_.reset();
    std::filesystem::remove_all(dir_);
  }

  int64_t AddProject(const std::string& name) {
    ProjectRow p;
    p.name = name;
    p.pg_bin = "/usr/lib/postgresql/15/bin";
    p.pg_version = "15.20";
    p.pg_major = 15;
    p.created_at = "2026-11-21T10:00:00.000Z";
    auto id = catalog_->InsertProject(p);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  int64_t AddBranch(int64_t project, const std::string& name, int port,
                    std::optional<int64_t> parent = std::nullopt) {
    BranchRow b;
    b.project_id = project;
    b.name = name;
    b.parent_id = parent;
    b.port = port;
    b.password = "pw";
    b.volume = "v" + std::to_string(port);
    b.created_at = "2026-11-21T10:00:00.000Z";
    auto id = catalog_->InsertBranch(b);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  std::string dir_, path_;
  std::unique_ptr<Catalog> catalog_;
};

// A new catalog file is private to its owner and carries the current schema version.
TEST_F(CatalogTest, NewFileIsOwnerOnlyAndMigrated) {
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  catalog_.reset();
  auto again = Catalog::Open(path_);  // reopening runs no migration twice
  ASSERT_TRUE(again.ok()) << again.status().ToString();
}

// A catalog written by a newer pgbranch is refused rather than misread.
TEST_F(CatalogTest, NewerSchemaIsRefused) {
  catalog_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  std::string sql = "PRAGMA user_version = " + std::to_string(Catalog::SchemaVersion() + 1);
  ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto c = Catalog::Open(path_);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
}

// Given a project, a second one with the same name is AlreadyExists and lookups find the first.
TEST_F(CatalogTest, ProjectNamesAreUnique) {
  int64_t id = AddProject("demo");
  ProjectRow dup;
  dup.name = "demo";
  auto r = catalog_->InsertProject(dup);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
  auto found = catalog_->FindProject("demo");
  ASSERT_TRUE(found.ok());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, id);
  EXPECT_EQ((*found)->pg_major, 15);
  auto missing = catalog_->FindProject("nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
}

// Two branches may not share a port, nor a name within a project; UsedPorts sees all ports.
TEST_F(CatalogTest, BranchPortAndNameAreUnique) {
  int64_t p = AddProject("demo");
  int64_t main_id = AddBranch(p, "main", 54320);
  AddBranch(p, "dev", 54321, main_id);
  BranchRow clash;
  clash.project_id = p;
  clash.name = "other";
  clash.port = 54321;
  clash.volume = "vx";
  EXPECT_EQ(catalog_->InsertBranch(clash).status().code(), StatusCode::kAlreadyExists);
  clash.name = "dev";
  clash.port = 54399;
  EXPECT_EQ(catalog_->InsertBranch(clash).status().code(), StatusCode::kAlreadyExists);
  auto ports = catalog_->UsedPorts();
  ASSERT_TRUE(ports.ok());
  EXPECT_EQ(*ports, (std::set<int>{54320, 54321}));
}

// Children are found by parent; updates write every column; deletes report missing rows.
TEST_F(CatalogTest, BranchLifecycle) {
  int64_t p = AddProject("demo");
  int64_t main_id = AddBranch(p, "main", 54320);
  int64_t dev = AddBranch(p, "dev", 54321, main_id);
  auto kids = catalog_->ChildBranches(main_id);
  ASSERT_TRUE(kids.ok());
  ASSERT_EQ(kids->size(), 1u);
  EXPECT_EQ((*kids)[0].name, "dev");

  auto row = catalog_->GetBranch(dev);
  ASSERT_TRUE(row.ok());
  row->state = kStateRunning;
  row->volume = "vnew";
  ASSERT_TRUE(catalog_->UpdateBranch(*row).ok());
  auto again = catalog_->GetBranch(dev);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, kStateRunning);
  EXPECT_EQ(again->volume, "vnew");
  EXPECT_EQ(again->parent_id, main_id);

  ASSERT_TRUE(catalog_->DeleteBranch(dev).ok());
  EXPECT_EQ(catalog_->DeleteBranch(dev).code(), StatusCode::kNotFound);
  EXPECT_EQ(catalog_->GetBranch(dev).status().code(), StatusCode::kNotFound);
}

// A volume's measured size is replaced by the next measurement, and pruned once no branch holds
// the volume.
TEST_F(CatalogTest, VolumeSizesAreReplacedAndPruned) {
  int64_t p = AddProject("demo");
  int64_t main_id = AddBranch(p, "main", 54320);
  auto main_row = catalog_->GetBranch(main_id);
  ASSERT_TRUE(main_row.ok());
  ASSERT_TRUE(catalog_->PutVolumeSize({main_row->volume, 100, 10, "2026-12-03T10:00:00Z"}).ok());
  ASSERT_TRUE(catalog_->PutVolumeSize({main_row->volume, 200, 20, "2026-12-03T10:01:00Z"}).ok());
  ASSERT_TRUE(catalog_->PutVolumeSize({"vgone", 5, 5, "2026-12-03T10:00:00Z"}).ok());
  auto got = catalog_->GetVolumeSize(main_row->volume);
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->logical_bytes, 200u);
  EXPECT_EQ((*got)->exclusive_bytes, 20u);
  EXPECT_EQ((*got)->measured_at, "2026-12-03T10:01:00Z");
  auto all = catalog_->ListVolumeSizes();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 2u);
  ASSERT_TRUE(catalog_->PruneVolumeSizes().ok());
  all = catalog_->ListVolumeSizes();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ(all->begin()->first, main_row->volume);
  auto none = catalog_->GetVolumeSize("vgone");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// A failing transaction body leaves no trace of what it wrote.
TEST_F(CatalogTest, TransactionRollsBackOnError) {
  Status s = catalog_->Transaction([&]() -> Status {
    ProjectRow p;
    p.name = "ghost";
    PGB_RETURN_IF_ERROR(catalog_->InsertProject(p).status());
    return Status::Internal("boom");
  });
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  auto found = catalog_->FindProject("ghost");
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(found->has_value());
}

// Snapshots link to the branch they copy and to the branches cloned from them; a snapshot a
// branch still points at cannot be deleted (foreign key).
TEST_F(CatalogTest, SnapshotsAndDependents) {
  int64_t p = AddProject("demo");
  int64_t main_id = AddBranch(p, "main", 54320);
  SnapshotRow snap;
  snap.branch_id = main_id;
  snap.volume = "v54320";
  snap.name = "s1";
  snap.implicit = true;
  snap.created_at = "2026-11-21T10:00:00.000Z";
  auto sid = catalog_->InsertSnapshot(snap);
  ASSERT_TRUE(sid.ok()) << sid.status().ToString();
  int64_t dev = AddBranch(p, "dev", 54321, main_id);
  auto row = catalog_->GetBranch(dev);
  ASSERT_TRUE(row.ok());
  row->snapshot_id = *sid;
  ASSERT_TRUE(catalog_->UpdateBranch(*row).ok());

  auto users = catalog_->BranchesFromSnapshot(*sid);
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ((*users)[0].id, dev);
  EXPECT_FALSE(catalog_->DeleteSnapshot(*sid).ok());
  ASSERT_TRUE(catalog_->DeleteBranch(dev).ok());
  EXPECT_TRUE(catalog_->DeleteSnapshot(*sid).ok());
}

TEST_F(CatalogTest, SettingsOverwrite) {
  ASSERT_TRUE(catalog_->SetSetting("pool.kind", "image").ok());
  ASSERT_TRUE(catalog_->SetSetting("pool.kind", "btrfs").ok());
  auto v = catalog_->GetSetting("pool.kind");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->value_or(""), "btrfs");
  auto none = catalog_->GetSetting("nope");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// Given one Catalog shared by four writer threads and two reader threads: each writer makes 25
// transactions, each inserting a project and its main branch and checking, by the ids
// last_insert_rowid gave it, that it reads back its own rows (every fifth one then fails and
// must leave nothing); readers see, in each read transaction, as many branches as projects
// (never half a transaction). Afterwards exactly the committed rows exist, each under the id
// its thread was given. Run under ThreadSanitizer by scripts/check-threads.sh.
TEST_F(CatalogTest, ThreadsHaveTheirOwnTransactionsAndInsertIds) {
  constexpr int kWriters = 4;
  constexpr int kRounds = 25;
  std::vector<std::map<int64_t, std::string>> committed(kWriters);  // per thread: id -> name
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string name = "t" + std::to_string(t) + "-" + std::to_string(i);
        const bool fail = i % 5 == 4;
        int64_t project_id = 0;
        Status s = catalog_->Transaction([&]() -> Status {
          EXPECT_TRUE(catalog_->InTransaction());
          ProjectRow p;
          p.name = name;
          p.created_at = "2026-11-21T10:00:00.000Z";
          PGB_ASSIGN_OR_RETURN(project_id, catalog_->InsertProject(p));
          PGB_ASSIGN_OR_RETURN(ProjectRow back, catalog_->GetProject(project_id));
          EXPECT_EQ(back.name, name);
          BranchRow b;
          b.project_id = project_id;
          b.name = "main";
          b.port = 20000 + t * 100 + i;
          b.volume = "v" + name;
          b.created_at = p.created_at;
          PGB_ASSIGN_OR_RETURN(int64_t branch_id, catalog_->InsertBranch(b));
          PGB_ASSIGN_OR_RETURN(BranchRow branch, catalog_->GetBranch(branch_id));
          EXPECT_EQ(branch.project_id, project_id);
          EXPECT_EQ(branch.volume, b.volume);
          if (fail) return Status::Internal("rolled back on purpose");
          return Status::OK();
        });
        EXPECT_FALSE(catalog_->InTransaction());
        if (fail) {
          EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
        } else {
          EXPECT_TRUE(s.ok()) << s.ToString();
          committed[t][project_id] = name;
        }
        AuditRow row;
        row.command = name;
        row.operation = "test";
        EXPECT_TRUE(catalog_->InsertAudit({row}).ok());
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      for (int i = 0; i < 40; ++i) {
        Status s = catalog_->ReadTransaction([&]() -> Status {
          PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
          PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches());
          EXPECT_EQ(projects.size(), branches.size());
          return Status::OK();
        });
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& t : threads) t.join();

  std::map<int64_t, std::string> expected;
  for (const auto& mine : committed) {
    EXPECT_EQ(mine.size(), static_cast<size_t>(kRounds - kRounds / 5));
    for (const auto& [id, name] : mine) {
      EXPECT_TRUE(expected.emplace(id, name).second) << "id " << id << " given twice";
    }
  }
  auto projects = catalog_->ListProjects();
  ASSERT_TRUE(projects.ok()) << projects.status().ToString();
  std::map<int64_t, std::string> found;
  for (const auto& p : *projects) found[p.id] = p.name;
  EXPECT_EQ(found, expected);
  auto audit = catalog_->ListAudit(1000);
  ASSERT_TRUE(audit.ok()) << audit.status().ToString();
  EXPECT_EQ(audit->size(), static_cast<size_t>(kWriters * kRounds));
}

}  // namespace
}  // namespace pgb
