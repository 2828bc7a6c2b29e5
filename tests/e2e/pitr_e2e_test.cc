// WAL archiving and point-in-time recovery, end to end: the real pgbranch binary, real
// PostgreSQL 15 archiving into a real archive, recovery to a time and to an LSN. Run on a Btrfs
// image (atomic snapshots) and an XFS image (reflink copies bracketed by the backup API), the
// two ways a base snapshot is made.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <set>

#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

std::string One(const std::string& uri, const std::string& sql) {
  auto values = Column(uri, sql);
  return values.empty() ? "" : values[0];
}

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

class PitrTest : public BackendTest {
 protected:
  // Project `name`; returns main's URI.
  std::string NewProject(const std::string& name) {
    projects_.push_back(name);
    home().Ok({"project", "create", name});
    return Url(name + "/main");
  }
  std::string Url(const std::string& ref) {
    std::string out = home().Ok({"branch", "url", ref}).out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string ArchiveDir(const std::string& ref) {
    return home().Ok({"wal", "info", ref, "--json"}).Json()["archive_dir"];
  }
  // Fails unless `args` exits 1 with `message` on stderr and leaves the branches, volumes and
  // snapshots as they were.
  void Refused(const std::vector<std::string>& args, const std::string& message) {
    auto branches = home().Ok({"branch", "list", "--json"}).Json().size();
    auto volumes = home().Volumes();
    auto snapshots = home().Snapshots();
    CliResult r = home().Run(args);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(home().Ok({"branch", "list", "--json"}).Json().size(), branches);
    EXPECT_EQ(home().Volumes(), volumes);
    EXPECT_EQ(home().Snapshots(), snapshots);
  }
};

// Row A, then the server's clock and WAL position, then row B: a branch at that time and one
// at that LSN hold A and not B. The WAL of B is still in the current segment when the branch is
// asked for: pgbranch archives it itself. The new branch is writable, on a new timeline.
TEST_P(PitrTest, TimeAndLsnArePrecise) {
  std::string main = NewProject("p-precise");
  Sql(main, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
  std::string ts = One(main, "SELECT clock_timestamp()");
  std::string lsn = One(main, "SELECT pg_current_wal_lsn()");
  Sql(main, "INSERT INTO t VALUES ('B')");

  home().Ok({"branch", "create", "p-precise/at-time", "--pitr", ts});
  std::string at_time = Url("p-precise/at-time");
  EXPECT_EQ(Column(at_time, "SELECT v FROM t ORDER BY v"), std::vector<std::string>{"A"});
  home().Ok({"branch", "create", "p-precise/at-lsn", "--pitr", lsn});
  std::string at_lsn = Url("p-precise/at-lsn");
  EXPECT_EQ(Column(at_lsn, "SELECT v FROM t ORDER BY v"), std::vector<std::string>{"A"});

  Sql(at_time, "INSERT INTO t VALUES ('C')");
  EXPECT_EQ(One(at_time, "SELECT pg_is_in_recovery()"), "f");
  EXPECT_GT(std::stoi(One(at_time, "SELECT timeline_id FROM pg_control_checkpoint()")), 1);
  EXPECT_EQ(Column(main, "SELECT v FROM t ORDER BY v"), (std::vector<std::string>{"A", "B"}));
  auto info = home().Branch("p-precise/at-time");
  EXPECT_EQ(info["recovery_target"], ts);
  EXPECT_EQ(info["parent"], "p-precise/main");

  // The same moment as an offset time and the start of the same second are still A only.
  std::string offset = One(main, "SELECT to_char(timestamptz '" + ts +
                                     "' AT TIME ZONE '+02', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || "
                                     "'-02:00'");
  home().Ok({"branch", "create", "p-precise/offset", "--pitr", offset});
  EXPECT_EQ(Column(Url("p-precise/offset"), "SELECT v FROM t ORDER BY v"),
            std::vector<std::string>{"A"});
}

// A branch made by PITR is itself recoverable to a point, from its own base snapshot and its
// own archive, on a timeline of its own; the parent's archive never sees its WAL.
TEST_P(PitrTest, PitrOfAPitrBranch) {
  std::string main = NewProject("p-twice");
  Sql(main, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
  std::string ts1 = One(main, "SELECT clock_timestamp()");
  Sql(main, "INSERT INTO t VALUES ('B')");
  home().Ok({"branch", "create", "p-twice/x", "--pitr", ts1});
  std::set<std::string> main_archive = FilesIn(ArchiveDir("p-twice/main"));

  std::string x = Url("p-twice/x");
  Sql(x, "INSERT INTO t VALUES ('C')");
  std::string ts2 = One(x, "SELECT clock_timestamp()");
  Sql(x, "INSERT INTO t VALUES ('D')");
  home().Ok({"branch", "create", "p-twice/y", "--pitr", ts2, "--parent", "p-twice/x"});
  std::string y = Url("p-twice/y");
  EXPECT_EQ(Column(y, "SELECT v FROM t ORDER BY v"), (std::vector<std::string>{"A", "C"}));
  EXPECT_GT(std::stoi(One(y, "SELECT timeline_id FROM pg_control_checkpoint()")),
            std::stoi(One(x, "SELECT timeline_id FROM pg_control_checkpoint()")));

  for (const auto& name : FilesIn(ArchiveDir("p-twice/main"))) {
    EXPECT_EQ(name.rfind("00000001", 0), 0u) << "another timeline in main's archive: " << name;
  }
  EXPECT_TRUE(std::includes(FilesIn(ArchiveDir("p-twice/main")).begin(),
                            FilesIn(ArchiveDir("p-twice/main")).end(), main_archive.begin(),
                            main_archive.end()));
}

// A stopped parent: pgbranch archived its WAL when it stopped it, so a time just before the
// stop is reachable without starting it.
TEST_P(PitrTest, StoppedParent) {
  std::string main = NewProject("p-stopped");
  Sql(main, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
  std::string ts = One(main, "SELECT clock_timestamp()");
  Sql(main, "INSERT INTO t VALUES ('B')");
  home().Ok({"branch", "stop", "p-stopped/main"});
  home().Ok({"branch", "create", "p-stopped/then", "--pitr", ts});
  EXPECT_EQ(Column(Url("p-stopped/then"), "SELECT v FROM t"), std::vector<std::string>{"A"});
  EXPECT_EQ(home().Branch("p-stopped/main")["state"], "stopped");
}

// A reset gives the branch new data whose WAL reuses segment names of its old history: it
// archives into a directory of its own, archiving keeps working, and PITR after the reset works.
TEST_P(PitrTest, ResetKeepsArchiving) {
  std::string main = NewProject("p-reset");
  Sql(main, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
  home().Ok({"branch", "create", "p-reset/dev"});
  std::string dev = Url("p-reset/dev");
  Sql(dev, "INSERT INTO t SELECT 'dev' FROM generate_series(1, 1000); SELECT pg_switch_wal()");
  home().Ok({"snapshot", "create", "p-reset/dev"});
  home().Ok({"branch", "reset", "p-reset/dev"});
  Sql(dev, "INSERT INTO t VALUES ('E')");
  std::string ts = One(dev, "SELECT clock_timestamp()");
  Sql(dev, "INSERT INTO t VALUES ('F'); SELECT pg_switch_wal()");
  home().Ok({"branch", "create", "p-reset/back", "--pitr", ts, "--parent", "p-reset/dev"});
  EXPECT_EQ(Column(Url("p-reset/back"), "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"A", "E"}));
  EXPECT_EQ(One(dev, "SELECT failed_count FROM pg_stat_archiver"), "0");

  // Renaming the project changes only the catalog: the archives stay under wal/<project id>;
  // archiving and PITR go on.
  std::string archive = ArchiveDir("p-reset/dev");
  home().Ok({"project", "rename", "p-reset", "p-reset2"});
  projects_.push_back("p-reset2");
  EXPECT_EQ(ArchiveDir("p-reset2/dev"), archive);
  Sql(dev, "INSERT INTO t VALUES ('G')");
  std::string ts2 = One(dev, "SELECT clock_timestamp()");
  Sql(dev, "INSERT INTO t VALUES ('H')");
  home().Ok({"branch", "create", "p-reset2/later", "--pitr", ts2, "--parent", "p-reset2/dev"});
  EXPECT_EQ(Column(Url("p-reset2/later"), "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"A", "E", "F", "G"}));
}

// Every bad target is refused before anything is made, with what is possible instead.
TEST_P(PitrTest, BadTargets) {
  std::string main = NewProject("p-bad");
  Sql(main, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
  Refused({"branch", "create", "p-bad/x", "--pitr", "yesterday"}, "ago");
  Refused({"branch", "create", "p-bad/x", "--pitr", "2026-13-01T00:00:00Z"}, "2026-13-01");
  Refused({"branch", "create", "p-bad/x", "--pitr", "2200-01-01T00:00:00Z"}, "in the future");
  Refused({"branch", "create", "p-bad/x", "--pitr", "2001-01-01T00:00:00Z"},
          "before the oldest point p-bad/main can be recovered to");
  Refused({"branch", "create", "p-bad/x", "--pitr", "1000 weeks ago"}, "before the oldest point");
  Refused({"branch", "create", "p-bad/x", "--pitr", "FF/0"}, "beyond the archived WAL");
  Refused({"branch", "create", "p-bad/x", "--pitr", "1 minute ago", "--parent", "p-bad/nope"},
          "does not exist");

  // A gap: three finished segments, the middle one lost.
  for (int i = 0; i < 3; ++i) {
    Sql(main, "INSERT INTO t VALUES ('x'); SELECT pg_switch_wal()");
  }
  std::string ts = One(main, "SELECT clock_timestamp()");
  home().Ok({"wal", "info", "p-bad/main"});  // ok while complete
  std::string dir = ArchiveDir("p-bad/main");
  home().Ok({"branch", "create", "p-bad/ok", "--pitr", ts});  // archives the last one too
  ASSERT_GE(home().Ok({"wal", "info", "p-bad/main", "--json"}).Json()["segments"].get<int>(), 3);
  std::vector<std::string> names;
  for (const auto& n : FilesIn(dir)) {
    if (n.size() == 24) names.push_back(n);
  }
  // One after the base snapshot (the last but one), so recovery needs it.
  std::string lost = names[names.size() - 2];
  std::filesystem::remove(dir + "/" + lost);
  Refused({"branch", "create", "p-bad/x", "--pitr", ts}, "has a gap: segment " + lost);
}

// wal cleanup: --dry-run changes nothing; cleanup never removes what the window needs, and
// once old snapshots are gone it frees their WAL while recovery inside the window still works.
TEST_P(PitrTest, WalCleanup) {
  std::string main = NewProject("p-clean");
  Sql(main, "CREATE TABLE t (v text)");
  for (int i = 0; i < 3; ++i) Sql(main, "INSERT INTO t VALUES ('old'); SELECT pg_switch_wal()");
  std::string dir = ArchiveDir("p-clean/main");
  home().Ok({"branch", "stop", "p-clean/main"});  // archives the rest
  home().Ok({"branch", "start", "p-clean/main"});
  auto before = FilesIn(dir);
  ASSERT_GE(before.size(), 3u);

  std::string ts0 = One(main, "SELECT clock_timestamp()");
  Sql(main, "INSERT INTO t VALUES ('x')");
  home().Ok({"wal", "cleanup", "p-clean/main", "--days", "0", "--dry-run"});
  EXPECT_EQ(FilesIn(dir), before);
  // The base snapshot (made with the project) still needs what follows it: a recovery to a
  // point after it works after the cleanup.
  home().Ok({"wal", "cleanup", "p-clean/main", "--days", "0"});
  home().Ok({"branch", "create", "p-clean/early", "--pitr", ts0});
  EXPECT_EQ(Column(Url("p-clean/early"), "SELECT v FROM t"),
            (std::vector<std::string>{"old", "old", "old"}));
  home().Ok({"branch", "delete", "p-clean/early"});

  // A newer snapshot, the base deleted: the WAL before the new one can go.
  auto snap = home().Ok({"snapshot", "create", "p-clean/main", "--label", "new", "--json"}).Json();
  auto snaps = home().Ok({"snapshot", "list", "p-clean/main", "--json"}).Json();
  for (const auto& s : snaps) {
    if (s["label"] == "base") home().Ok({"snapshot", "delete", std::to_string(s["id"].get<int>())});
  }
  Sql(main, "INSERT INTO t VALUES ('new')");
  std::string ts = One(main, "SELECT clock_timestamp()");
  Sql(main, "INSERT INTO t VALUES ('newer')");
  before = FilesIn(dir);
  auto would = home().Ok({"wal", "cleanup", "p-clean/main", "--days", "0", "--dry-run", "--json"});
  EXPECT_EQ(FilesIn(dir), before);
  EXPECT_FALSE(would.Json()["removed"].empty()) << would.out;
  home().Ok({"wal", "cleanup", "p-clean/main", "--days", "0"});
  for (const auto& name : would.Json()["removed"]) EXPECT_EQ(FilesIn(dir).count(name), 0u);

  home().Ok({"branch", "create", "p-clean/after", "--pitr", ts});
  EXPECT_EQ(Column(Url("p-clean/after"), "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"new", "old", "old", "old", "x"}));
  // Before the new snapshot is out of the window now, and said so.
  Refused({"branch", "create", "p-clean/x", "--pitr", "1 hour ago"},
          "before the oldest point p-clean/main can be recovered to");
  EXPECT_EQ(home().Ok({"wal", "info", "p-clean/main", "--json"}).Json()["window"]["from_snapshot"],
            snap["id"]);
}

// A home whose projects an older pgbranch made keeps its archives by project name
// (storage.naming = names): a project rename moves them, and archiving and PITR go on.
TEST(NamingE2eTest, AHomeNamedByNamesKeepsItsLayout) {
  Home home("btrfs", "3G");
  home.Ok({"status"});  // decides: named by ids, as the home has no project yet
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((home.path() + "/state.db").c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  int rc = sqlite3_exec(db, "UPDATE settings SET value = 'names' WHERE key = 'storage.naming'",
                        nullptr, nullptr, &error);
  EXPECT_EQ(rc, SQLITE_OK) << (error ? error : "");
  EXPECT_EQ(sqlite3_changes(db), 1);
  sqlite3_free(error);
  sqlite3_close(db);

  home.Ok({"-q", "project", "create", "old"});
  auto url = [&](const std::string& ref) { return home.Branch(ref)["uri"].get<std::string>(); };
  auto archive = [&](const std::string& ref) {
    return home.Ok({"wal", "info", ref, "--json"}).Json()["archive_dir"].get<std::string>();
  };
  std::string main = url("old/main");
  Sql(main, "CREATE TABLE t (v text); INSERT INTO t VALUES ('A')");
  EXPECT_EQ(archive("old/main").rfind(home.path() + "/wal/old/", 0), 0u) << archive("old/main");
  home.Ok({"project", "rename", "old", "new"});
  EXPECT_EQ(archive("new/main").rfind(home.path() + "/wal/new/", 0), 0u) << archive("new/main");
  EXPECT_FALSE(std::filesystem::exists(home.path() + "/wal/old"));
  Sql(main, "INSERT INTO t VALUES ('B')");
  std::string ts = One(main, "SELECT clock_timestamp()");
  Sql(main, "INSERT INTO t VALUES ('C')");
  home.Ok({"-q", "branch", "create", "new/then", "--pitr", ts});
  EXPECT_EQ(Column(url("new/then"), "SELECT v FROM t ORDER BY v"),
            (std::vector<std::string>{"A", "B"}));
  CliResult doctor = home.Run({"doctor"});
  EXPECT_EQ(doctor.exit_code, 0) << doctor.out;
  home.Ok({"project", "delete", "new", "--force"});
  EXPECT_FALSE(std::filesystem::exists(home.path() + "/wal/new"));
}

INSTANTIATE_TEST_SUITE_P(Pools, PitrTest, ::testing::Values("btrfs", "xfs"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace pgb::e2e
