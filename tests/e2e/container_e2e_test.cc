// Container runtimes, end to end: the real pgbranch binary driving a real Docker engine and
// real Podman, running PostgreSQL 13, 15 and 17 from images `pgbranch image build` made
// (scripts/test.sh builds them and starts dockerd). Every case runs on a Btrfs image pool.

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <fstream>
#include <regex>

#include "runtime/container.h"
#include "tests/e2e/harness.h"

namespace pgb::e2e {
namespace {

struct Engine {
  std::string name;  // "docker" or "podman"
  int major = 0;
};

std::string PrintCase(const ::testing::TestParamInfo<Engine>& info) {
  return info.param.name + std::to_string(info.param.major);
}

// `engine args...` as argv (never a shell); the test fails unless it exits 0.
CommandResult Cli(const std::string& engine, std::vector<std::string> args) {
  std::vector<std::string> argv = EngineArgv(engine);
  argv.insert(argv.end(), args.begin(), args.end());
  return MustRun(argv);
}

// Names of the containers carrying `home`'s label, whatever their state.
std::vector<std::string> ContainersOf(const std::string& engine, const std::string& home) {
  return SplitLines(Cli(engine, {"ps", "--all", "--format", "{{.Names}}", "--filter",
                                 "label=io.pgbranch.home=" + home})
                        .out);
}

std::string One(const std::string& uri, const std::string& sql) {
  auto values = Column(uri, sql);
  return values.empty() ? "" : values[0];
}

class ContainerTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override { home_ = std::make_unique<Home>("btrfs"); }
  void TearDown() override { home_.reset(); }

  const Home& home() const { return *home_; }
  const std::string& engine() const { return GetParam().name; }
  std::string Url(const std::string& ref) const {
    std::string out = home().Ok({"branch", "url", ref}).out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  // The branch's container as pgbranch reports it: pgbranch-<home tag>.<project id>.<branch id>.
  std::string Container(const std::string& ref) const {
    std::string name = home().Branch(ref)["container"];
    EXPECT_TRUE(std::regex_match(name, std::regex("pgbranch-[0-9a-f]{8}\\.[0-9]+\\.[0-9]+")))
        << name;
    return name;
  }
  void CreateProject(const std::string& name) const {
    home().Ok({"project", "create", name, "--runtime", engine(), "--pg-version",
               std::to_string(GetParam().major)});
  }

  std::unique_ptr<Home> home_;
};

// The whole life of a project in containers: create, branch, isolation, TLS, stop/start, reset,
// a container killed from outside, logs, delete; nothing secret in the container's description.
TEST_P(ContainerTest, BranchLifecycle) {
  const int major = GetParam().major;
  CreateProject("app");
  std::string main_uri = Url("app/main");
  EXPECT_EQ(One(main_uri, "SELECT current_setting('server_version_num')::int / 10000"),
            std::to_string(major));
  Sql(main_uri, "CREATE TABLE t (v text); INSERT INTO t VALUES ('main')");
  auto project = home().Ok({"project", "get", "app", "--json"}).Json();
  EXPECT_EQ(project["runtime"], engine());
  EXPECT_EQ(project["image"], DefaultImageName(major));

  home().Ok({"branch", "create", "app/dev"});
  std::string dev_uri = Url("app/dev");
  EXPECT_EQ(ContainersOf(engine(), home().path()).size(), 2u);
  Sql(dev_uri, "INSERT INTO t VALUES ('dev')");
  EXPECT_EQ(One(main_uri, "SELECT string_agg(v, ',' ORDER BY v) FROM t"), "main");
  EXPECT_EQ(One(dev_uri, "SELECT string_agg(v, ',' ORDER BY v) FROM t"), "dev,main");
  // TLS in the container too: verified against pgbranch's CA by host name.
  std::string verified = home().Ok({"branch", "url", "app/dev", "--verify"}).out;
  verified.pop_back();
  // libpq as a client uses the URI (the harness's Column drops its query).
  PGconn* conn = PQconnectdb(verified.c_str());
  ASSERT_NE(conn, nullptr);
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  EXPECT_EQ(PQsslInUse(conn), 1);
  PQfinish(conn);

  // Nothing secret in what the engine shows about the container.
  std::string password = dev_uri.substr(dev_uri.find(':', 13) + 1);
  password = password.substr(0, password.find('@'));
  ASSERT_GE(password.size(), 16u);
  std::string inspected = Cli(engine(), {"container", "inspect", Container("app/dev")}).out;
  EXPECT_EQ(inspected.find(password), std::string::npos);
  EXPECT_NE(inspected.find("io.pgbranch.branch-id"), std::string::npos);

  // Stop and start keep the data.
  home().Ok({"branch", "stop", "app/dev"});
  EXPECT_EQ(home().Branch("app/dev")["state"], "stopped");
  home().Ok({"branch", "start", "app/dev"});
  EXPECT_EQ(One(dev_uri, "SELECT count(*) FROM t"), "2");

  // Killed from outside: the runtime says so, and start brings it back.
  Cli(engine(), {"kill", Container("app/dev")});
  auto killed = home().Branch("app/dev");
  EXPECT_EQ(killed["state"], "exited") << killed.dump();
  EXPECT_NE(killed["runtime_detail"].get<std::string>().find("exited (code 137)"),
            std::string::npos)
      << killed.dump();
  EXPECT_NE(home().Ok({"status"}).out.find("exited (code 137)"), std::string::npos);
  home().Ok({"branch", "start", "app/dev"});
  EXPECT_EQ(home().Branch("app/dev")["state"], "running");
  EXPECT_EQ(One(dev_uri, "SELECT count(*) FROM t"), "2");  // crash recovery kept the commit

  // The engine's log of the container.
  std::string logs = home().Ok({"branch", "logs", "app/dev", "--tail", "20"}).out;
  EXPECT_NE(logs.find("database system is ready to accept connections"), std::string::npos) << logs;

  // Reset to the parent: dev's row is gone, the server runs again.
  home().Ok({"branch", "reset", "app/dev"});
  EXPECT_EQ(One(dev_uri, "SELECT string_agg(v, ',' ORDER BY v) FROM t"), "main");

  // A point-in-time branch of a container branch: archiving (basic_archive from 15, an
  // archive_command before) and restore_command run in the image.
  std::string lsn = One(dev_uri, "SELECT pg_current_wal_insert_lsn()");
  Sql(dev_uri, "INSERT INTO t VALUES ('later')");
  home().Ok({"branch", "create", "app/then", "--parent", "app/dev", "--pitr", lsn});
  EXPECT_EQ(One(Url("app/then"), "SELECT string_agg(v, ',' ORDER BY v) FROM t"), "main");
  EXPECT_EQ(One(dev_uri, "SELECT string_agg(v, ',' ORDER BY v) FROM t"), "later,main");

  std::string dev_container = Container("app/dev");
  home().Ok({"branch", "delete", "app/then"});
  home().Ok({"branch", "delete", "app/dev"});
  for (const auto& name : ContainersOf(engine(), home().path())) EXPECT_NE(name, dev_container);
  home().Ok({"project", "delete", "app", "--force"});
  EXPECT_TRUE(ContainersOf(engine(), home().path()).empty());
  EXPECT_TRUE(home().Volumes().empty());
}

// A container with this home's label and no branch row is found by doctor and removed by
// doctor --fix; the project's own containers are left alone.
TEST_P(ContainerTest, DoctorFindsStrayContainer) {
  CreateProject("app");
  std::string stray = "pgbranch-e2e-stray-" + std::to_string(::getpid());
  std::vector<std::string> run = {"run", "--detach", "--name", stray};
  // Podman's default limits fail where pgbranch lacks CAP_SYS_RESOURCE; see EngineRunFlags.
  for (const auto& flag : EngineRunFlags(engine())) run.push_back(flag);
  run.insert(run.end(), {"--label", "io.pgbranch.home=" + home().path(), "--label",
                         "io.pgbranch.branch-id=99999", "--network", "none", "--entrypoint",
                         "sleep", DefaultImageName(GetParam().major), "600"});
  Cli(engine(), run);
  CliResult found = home().Run({"doctor"});
  EXPECT_NE(found.exit_code, 0);
  EXPECT_NE(found.out.find("orphan container"), std::string::npos) << found.out;
  EXPECT_NE(found.out.find(stray), std::string::npos) << found.out;
  CliResult fixed = home().Run({"doctor", "--fix"});
  EXPECT_NE(fixed.out.find("removed " + engine() + " container " + stray), std::string::npos)
      << fixed.out;
  auto left = ContainersOf(engine(), home().path());
  EXPECT_EQ(left, std::vector<std::string>{Container("app/main")});
  EXPECT_EQ(home().Branch("app/main")["state"], "running");
  EXPECT_EQ(home().Run({"doctor"}).exit_code, 0);
  home().Ok({"project", "delete", "app"});
}

// Bad input: an image that is not there, or no image at all, is refused before anything is
// made.
TEST_P(ContainerTest, MissingImageIsRefused) {
  CliResult r = home().Run({"project", "create", "app", "--runtime", engine(), "--image",
                            "pgbranch-e2e/no-such-image:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not in " + engine() + "'s image store"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pgbranch image build"), std::string::npos) << r.err;
  r = home().Run({"project", "create", "app", "--runtime", engine()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--image IMG or --pg-version N"), std::string::npos) << r.err;
  EXPECT_TRUE(home().Ok({"project", "list", "--json"}).Json().empty());
  EXPECT_TRUE(home().Volumes().empty());
  EXPECT_TRUE(ContainersOf(engine(), home().path()).empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, ContainerTest,
                         ::testing::Values(Engine{"docker", 13}, Engine{"docker", 15},
                                           Engine{"docker", 17}, Engine{"podman", 13},
                                           Engine{"podman", 15}, Engine{"podman", 17}),
                         PrintCase);

// A branch of a PostgreSQL 17 project cannot be started by PostgreSQL 15 binaries: the image
// the project names now holds 15 (a retag), and start says which versions clash; the data is
// untouched, and with the right image back it starts.
TEST(ContainerVersionTest, SeventeenDataRefusesFifteenBinaries) {
  Home home("btrfs");
  const std::string tag = "pgbranch-e2e/retagged:" + std::to_string(::getpid());
  Cli("docker", {"tag", DefaultImageName(17), tag});
  home.Ok({"project", "create", "app", "--runtime", "docker", "--image", tag});
  std::string uri = home.Ok({"branch", "url", "app/main"}).out;
  while (!uri.empty() && uri.back() == '\n') uri.pop_back();
  Sql(uri, "CREATE TABLE t AS SELECT 17 AS v");
  home.Ok({"branch", "stop", "app/main"});

  Cli("docker", {"tag", DefaultImageName(15), tag});
  CliResult r = home.Run({"branch", "start", "app/main"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the data directory of app/main was made by PostgreSQL 17, but image " +
                       tag + " now holds PostgreSQL 15"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("pg_upgrade"), std::string::npos) << r.err;
  EXPECT_EQ(home.Branch("app/main")["state"], "stopped");

  Cli("docker", {"tag", DefaultImageName(17), tag});
  home.Ok({"branch", "start", "app/main"});
  EXPECT_EQ(One(uri, "SELECT v FROM t"), "17");
  home.Ok({"project", "delete", "app"});
  Cli("docker", {"rmi", tag});
}

// A source newer than the project's PostgreSQL, for real: a PostgreSQL 17 server (a docker
// project's main) is refused as --from-server by a native PostgreSQL 15 project, physically and
// with --logical, and so is a custom-format dump its own pg_dump 17 wrote; each refusal says
// which versions clash, and nothing is made (no project, no volume, no scratch files).
TEST(ContainerVersionTest, NewerSourceIsRefusedBeforeAnythingIsMade) {
  Home home("btrfs");
  home.Ok({"project", "create", "prod", "--runtime", "docker", "--pg-version", "17"});
  std::string uri = home.Ok({"branch", "url", "prod/main"}).out;
  while (!uri.empty() && uri.back() == '\n') uri.pop_back();
  Sql(uri, "CREATE TABLE t AS SELECT 17 AS v");
  const std::set<std::string> volumes = home.Volumes();
  const std::set<std::string> snapshots = home.Snapshots();
  auto nothing_made = [&](const std::string& what) {
    nlohmann::json projects = home.Ok({"project", "list", "--json"}).Json();
    ASSERT_EQ(projects.size(), 1u) << what << ": " << projects.dump();
    EXPECT_EQ(projects[0]["name"], "prod") << what;
    EXPECT_EQ(home.Volumes(), volumes) << what;
    EXPECT_EQ(home.Snapshots(), snapshots) << what;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(home.path() + "/sources", ec)) {
      ADD_FAILURE() << what << " left " << e.path();
    }
  };

  CliResult r = home.Run({"project", "create", "copy", "--from-server", uri});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("project create copy: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("runs PostgreSQL 17, the project PostgreSQL 15"), std::string::npos)
      << r.err;
  nothing_made("--from-server");

  r = home.Run({"project", "create", "copy", "--from-server", uri, "--logical"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("runs PostgreSQL 17, newer than the project's 15; pg_dump 15 cannot"),
            std::string::npos)
      << r.err;
  nothing_made("--from-server --logical");

  // The dump pg_dump 17 writes inside the container: an archive format pg_restore 15 predates.
  std::string dump_file = home.path() + "/prod17.dump";
  {
    std::string container = home.Branch("prod/main")["container"];
    CommandResult dump =
        Cli("docker", {"exec", container, "pg_dump", "--format=custom", "--dbname", uri});
    std::ofstream(dump_file, std::ios::binary) << dump.out;
  }
  r = home.Run({"project", "create", "copy", "--from-dump", dump_file});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("project create copy: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unsupported version"), std::string::npos) << r.err;
  nothing_made("--from-dump");

  EXPECT_EQ(One(uri, "SELECT v FROM t"), "17");
  home.Ok({"project", "delete", "prod"});
}

}  // namespace
}  // namespace pgb::e2e
