// Isolation between projects (issue 11): as root, each native project's servers run as its own
// OS account, so project a's superuser, who may read files and run programs as its server
// (pg_read_server_files, pg_execute_server_program), reaches nothing of project b's: not its
// data, its WAL archive, its socket, pgbranch's catalog, password files or CA key. Every attack
// is run twice, on a's own things first, so a test whose attack never reached anything fails.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "common/os_user.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

struct Target {
  std::string uri;
  std::string data_dir;
  std::string archive_dir;
  std::string socket_dir;
  int port = 0;
  std::string passfile;
  std::string pg_bin;
};

// What `shell` (run by /bin/sh as the server account of the branch at `uri`, through COPY FROM
// PROGRAM) printed, then "rc=<its exit code>".
std::string RunAsServer(const std::string& uri, const std::string& shell) {
  std::string program = "(" + shell + ") 2>&1; echo rc=$?";
  std::string quoted;
  for (char c : program) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  auto conn = Connect(uri);
  EXPECT_TRUE(conn->Exec("CREATE TEMP TABLE out (line text)").ok());
  Status s =
      conn->Exec(fmt::format("COPY out FROM PROGRAM '{}' WITH (DELIMITER E'\\x1f')", quoted));
  EXPECT_TRUE(s.ok()) << s.ToString();
  auto text = conn->QueryValue("SELECT coalesce(string_agg(line || E'\\n', ''), '') FROM out");
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : "";
}

class IsolationE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "the per-project OS accounts are made as root";
    home_ = std::make_unique<Home>("btrfs", "3G");
    a_ = Make("a");
    b_ = Make("b");
  }
  void TearDown() override {
    for (const char* p : {"a", "b"}) home_->Run({"project", "delete", p, "--force"});
  }

  Target Make(const std::string& project) {
    home_->Ok({"-q", "project", "create", project});
    Target t;
    nlohmann::json branch = home_->Branch(project + "/main");
    t.uri = branch["uri"];
    t.data_dir = branch["data_dir"];
    t.port = branch["port"];
    t.passfile = home_->Ok({"branch", "env", project + "/main", "--json"}).Json()["PGPASSFILE"];
    t.archive_dir = home_->Ok({"wal", "info", project + "/main", "--json"})
                        .Json()["archive_dir"]
                        .get<std::string>();
    t.pg_bin = home_->Ok({"project", "get", project, "--json"}).Json()["pg_bin"];
    t.socket_dir = Column(t.uri, "SHOW unix_socket_directories").at(0);
    return t;
  }

  std::string RunAsA(const std::string& shell) { return RunAsServer(a_.uri, shell); }

  // pg_read_file(path) by a's superuser: the first line, or the error.
  std::string ReadAsA(const std::string& path) {
    auto conn = Connect(a_.uri);
    auto v =
        conn->QueryValue(fmt::format("SELECT split_part(pg_read_file('{}'), E'\\n', 1)", path));
    return v.ok() ? *v : "error: " + v.status().ToString();
  }

  std::unique_ptr<Home> home_;
  Target a_, b_;
};

std::string OwnerName(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return "?";
  auto user = LookupOsUserById(st.st_uid);
  return user.ok() ? user->name : std::to_string(st.st_uid);
}

// Each project's data directory, archive and socket directory belong to its own account
// (pgb-<tag>-<project id>), 0700; a's server runs as a's account.
TEST_F(IsolationE2eTest, EachProjectRunsAsItsOwnAccount) {
  std::regex account("pgb-[0-9a-f]{8}-[0-9]+");
  std::string a_user = OwnerName(a_.data_dir), b_user = OwnerName(b_.data_dir);
  EXPECT_TRUE(std::regex_match(a_user, account)) << a_user;
  EXPECT_TRUE(std::regex_match(b_user, account)) << b_user;
  EXPECT_NE(a_user, b_user);
  for (const auto& [t, user] : {std::pair{a_, a_user}, std::pair{b_, b_user}}) {
    for (const auto& dir : {t.data_dir, t.archive_dir, t.socket_dir}) {
      struct stat st {};
      ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
      EXPECT_EQ(OwnerName(dir), user) << dir;
      EXPECT_EQ(st.st_mode & 0777, 0700u) << dir;
    }
  }
  EXPECT_EQ(RunAsA("id -un"), a_user + "\nrc=0\n");
  EXPECT_NE(home_->Ok({"status"}).out.find("(one per project)"), std::string::npos);
}

// pg_read_file reaches a's own files and none of b's, nor pgbranch's catalog, CA key or b's
// password file.
TEST_F(IsolationE2eTest, ReadingAnotherProjectsFilesIsDenied) {
  EXPECT_EQ(ReadAsA(a_.data_dir + "/PG_VERSION"), "15");
  for (const auto& path : {b_.data_dir + "/PG_VERSION", home_->path() + "/state.db",
                           home_->path() + "/tls/ca.key", b_.passfile}) {
    std::string got = ReadAsA(path);
    EXPECT_NE(got.find("Permission denied"), std::string::npos) << path << ": " << got;
  }
}

// Programs run by a's server can list and read a's archive and connect to a's socket, and do
// none of that to b's.
TEST_F(IsolationE2eTest, ProgramsRunByOneProjectCannotReachAnother) {
  auto psql = [](const Target& t) {
    return fmt::format("{}/psql -w -h {} -p {} -U postgres -d postgres -Atc 'SELECT 42'", t.pg_bin,
                       t.socket_dir, t.port);
  };
  EXPECT_EQ(RunAsA(psql(a_)), "42\nrc=0\n");
  std::string to_b = RunAsA(psql(b_));
  EXPECT_NE(to_b.find("Permission denied"), std::string::npos) << to_b;
  EXPECT_EQ(to_b.find("42"), std::string::npos) << to_b;

  EXPECT_EQ(RunAsA("ls -d " + a_.archive_dir + " >/dev/null"), "rc=0\n");
  std::string list_b = RunAsA("ls " + b_.archive_dir);
  EXPECT_NE(list_b.find("Permission denied"), std::string::npos) << list_b;
  std::string cat_b = RunAsA("cat " + b_.data_dir + "/PG_VERSION");
  EXPECT_NE(cat_b.find("Permission denied"), std::string::npos) << cat_b;

  // Over TCP, b asks for its password, which a's account has no way to read.
  std::string tcp =
      RunAsA(fmt::format("{}/psql -w -h 127.0.0.1 -p {} -U postgres -d postgres "
                         "-Atc 'SELECT 42'",
                         b_.pg_bin, b_.port));
  EXPECT_NE(tcp.find("password"), std::string::npos) << tcp;
  EXPECT_EQ(tcp.find("42"), std::string::npos) << tcp;
}

// Deleting a project removes its account; doctor reports an account of this home that belongs
// to no project, and --fix removes it.
TEST_F(IsolationE2eTest, AccountsGoWithTheirProjects) {
  std::string b_user = OwnerName(b_.data_dir);
  ASSERT_TRUE(LookupOsUser(b_user).ok());
  home_->Ok({"-q", "project", "delete", "b", "--force"});
  EXPECT_FALSE(LookupOsUser(b_user).ok()) << b_user << " outlived its project";

  std::string stray = OwnerName(a_.data_dir) + "0";  // this home's prefix, no project's id
  MustRun({"useradd", "--system", "--no-create-home", stray});
  CliResult check = home_->Run({"doctor"});
  EXPECT_EQ(check.exit_code, 1) << check.out;
  EXPECT_NE(check.out.find(stray), std::string::npos) << check.out;
  home_->Ok({"doctor", "--fix"});
  EXPECT_FALSE(LookupOsUser(stray).ok()) << "doctor --fix left " << stray;
  EXPECT_TRUE(LookupOsUser(OwnerName(a_.data_dir)).ok());
  home_->Ok({"doctor"});
}

// Container projects: each container mounts its own volume, its project's socket directory and
// its project's archives (wal/<id>) only, so a's superuser finds nothing of b's in there.
TEST(ContainerIsolationE2eTest, AContainerSeesOnlyItsOwnProject) {
  Home home("btrfs", "3G");
  struct Seen {
    std::string uri, data_dir, archive_dir, socket_dir;
  };
  auto make = [&](const std::string& project) {
    home.Ok({"-q", "project", "create", project, "--runtime", "docker", "--pg-version", "15"});
    nlohmann::json main = home.Branch(project + "/main");
    Seen s;
    s.uri = main["uri"];
    s.data_dir = main["data_dir"];
    s.archive_dir = home.Ok({"wal", "info", project + "/main", "--json"})
                        .Json()["archive_dir"]
                        .get<std::string>();
    s.socket_dir = Column(s.uri, "SHOW unix_socket_directories").at(0);
    return s;
  };
  Seen a = make("a"), b = make("b");
  std::string a_root = std::filesystem::path(a.archive_dir).parent_path().parent_path();
  EXPECT_EQ(RunAsServer(a.uri, "ls -d " + a.archive_dir + " " + a.socket_dir + " >/dev/null"),
            "rc=0\n");
  EXPECT_EQ(RunAsServer(a.uri, "cat " + a.data_dir + "/PG_VERSION"), "15\nrc=0\n");
  // Of wal/, the container holds a's directory alone.
  EXPECT_EQ(RunAsServer(a.uri, "ls " + home.path() + "/wal"),
            std::filesystem::path(a_root).filename().string() + "\nrc=0\n");
  for (const auto& path :
       {b.archive_dir, b.data_dir + "/PG_VERSION", b.socket_dir, home.path() + "/state.db"}) {
    std::string got = RunAsServer(a.uri, "ls " + path);
    EXPECT_NE(got.find("No such file"), std::string::npos) << path << ": " << got;
  }
  for (const char* p : {"a", "b"}) home.Ok({"-q", "project", "delete", p, "--force"});
}

}  // namespace
}  // namespace pgb::e2e
