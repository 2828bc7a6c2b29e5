#include "pg/cluster.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/fs.h"
#include "pg/client.h"
#include "runtime/test_instance.h"

namespace pgb {
namespace {

using test::MakeTempDir;
using test::OwnerOf;
using test::PgInstanceTest;
using test::ServerOsUser;
using test::TempDir;

CommandResult Exited(int code, std::string err = "") {
  CommandResult r;
  r.exit_code = code;
  r.err = std::move(err);
  return r;
}

// Records every Command and answers each with a canned result (ninja's FakeCommandRunner).
class FakeProcessRunner : public ProcessRunner {
 public:
  Result<CommandResult> Run(const Command& command) override {
    commands_ran_.push_back(command);
    return result_;
  }
  Result<pid_t> SpawnDaemon(const Command& command, const std::string& log_path) override {
    commands_ran_.push_back(command);
    return Status::NotSupported("fake");
  }

  std::vector<Command> commands_ran_;
  CommandResult result_ = Exited(0);
};

std::string MustRead(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? *text : "";
}

// On this machine PostgreSQL 15 is installed the Debian way: with no override, FindPgBinaries
// should find /usr/lib/postgresql/15/bin (via pg_config or the directory scan) and read the
// version from `postgres --version`; the same directory as an override gives the same answer.
TEST(PgClusterTest, FindPgBinariesFindsInstalledServer) {
  auto runner = NewRealProcessRunner();
  Result<PgBinaries> bins = FindPgBinaries(*runner);
  ASSERT_TRUE(bins.ok()) << bins.status().ToString();
  EXPECT_EQ(bins->major, 15);
  EXPECT_EQ(bins->bin_dir, "/usr/lib/postgresql/15/bin");
  EXPECT_TRUE(bins->version.starts_with("15.")) << bins->version;

  Result<PgBinaries> same = FindPgBinaries(*runner, "/usr/lib/postgresql/15/bin");
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->major, 15);
  EXPECT_EQ(same->version, bins->version);
}

// An override directory without postgres and initdb is NotFound, naming the directory, and no
// program is run.
TEST(PgClusterTest, FindPgBinariesBadOverrideIsNotFound) {
  FakeProcessRunner runner;
  Result<PgBinaries> bins = FindPgBinaries(runner, "/nonexistent/pg/bin");
  ASSERT_FALSE(bins.ok());
  EXPECT_EQ(bins.status().code(), StatusCode::kNotFound);
  EXPECT_NE(bins.status().message().find("/nonexistent/pg/bin"), std::string::npos);
  EXPECT_TRUE(runner.commands_ran_.empty());
}

// Given the version line of a development build, the major version is the leading number and
// the version is kept as printed; the argv is exactly `<dir>/postgres --version`.
TEST(PgClusterTest, FindPgBinariesParsesVersionLine) {
  FakeProcessRunner runner;
  runner.result_.out = "postgres (PostgreSQL) 17beta2\n";
  Result<PgBinaries> bins = FindPgBinaries(runner, "/usr/lib/postgresql/15/bin");
  ASSERT_TRUE(bins.ok()) << bins.status().ToString();
  EXPECT_EQ(bins->major, 17);
  EXPECT_EQ(bins->version, "17beta2");
  ASSERT_EQ(runner.commands_ran_.size(), 1u);
  EXPECT_EQ(runner.commands_ran_[0].argv,
            (std::vector<std::string>{"/usr/lib/postgresql/15/bin/postgres", "--version"}));

  runner.result_.out = "something else\n";
  EXPECT_EQ(FindPgBinaries(runner, "/usr/lib/postgresql/15/bin").status().code(),
            StatusCode::kInternal);
}

// With a fake runner standing in for initdb (and a stub postgresql.conf where initdb would
// write one), InitDataDir should run exactly the expected initdb argv as the server's account
// with a clean environment, then append the include line and write pg_hba.conf 0600.
TEST(PgClusterTest, InitDataDirRunsInitdbAndWritesConfigFiles) {
  TempDir dir;
  Result<std::optional<OsUser>> user = ServerOsUser();
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  const std::string data = JoinPath(dir.path(), "data");
  ASSERT_TRUE(EnsureDir(data, 0700).ok());
  ASSERT_TRUE(
      WriteFileAtomic(JoinPath(data, "postgresql.conf"), "max_connections = 100", 0600).ok());

  FakeProcessRunner runner;
  PgBinaries bins{"/opt/pg/bin", 15, "15.20"};
  ASSERT_TRUE(InitDataDir(runner, bins, data, "admin", *user).ok());

  ASSERT_EQ(runner.commands_ran_.size(), 1u);
  const Command& cmd = runner.commands_ran_[0];
  EXPECT_EQ(cmd.argv,
            (std::vector<std::string>{"/opt/pg/bin/initdb", "-D", data, "-U", "admin", "-E", "UTF8",
                                      "--locale=C.UTF-8", "--data-checksums", "--auth-local=trust",
                                      "--auth-host=scram-sha-256", "--no-instructions"}));
  EXPECT_TRUE(cmd.clean_env);
  EXPECT_EQ(cmd.cwd, "/");
  ASSERT_EQ(cmd.user.has_value(), user->has_value());
  if (cmd.user) {
    EXPECT_EQ(cmd.user->name, (*user)->name);
  }

  std::string conf = MustRead(JoinPath(data, "postgresql.conf"));
  EXPECT_TRUE(conf.starts_with("max_connections = 100\n")) << conf;
  EXPECT_TRUE(conf.ends_with("\ninclude = 'pgbranch.conf'\n")) << conf;

  std::string hba = MustRead(JoinPath(data, "pg_hba.conf"));
  EXPECT_NE(hba.find("\nlocal   all          all            trust\n"), std::string::npos);
  EXPECT_NE(hba.find("\nhost    all          all   all      scram-sha-256\n"), std::string::npos);
  EXPECT_NE(hba.find("\nhost    replication  all   all      scram-sha-256\n"), std::string::npos);
  EXPECT_NE(hba.find("private socket directory"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(JoinPath(data, "pg_hba.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  if (*user) {
    EXPECT_EQ(st.st_uid, (*user)->uid);
  }
}

// When initdb fails, InitDataDir returns CommandFailed with initdb's complaint and writes no
// configuration file.
TEST(PgClusterTest, InitDataDirReportsInitdbFailure) {
  TempDir dir;
  FakeProcessRunner runner;
  runner.result_ = Exited(1, "initdb: error: directory exists");
  Status s = InitDataDir(runner, PgBinaries{"/opt/pg/bin", 15, "15.20"}, dir.path(), "postgres",
                         std::nullopt);
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed);
  EXPECT_NE(s.message().find("directory exists"), std::string::npos) << s.message();
  EXPECT_FALSE(PathExists(JoinPath(dir.path(), "pg_hba.conf")));
}

// A real initdb (the shared template the fixture made) leaves PG_VERSION 15, the include as
// the last setting of postgresql.conf, our pg_hba.conf, and files owned by the server account.
TEST_F(PgInstanceTest, InitDataDirRealClusterHasIncludeAndHba) {
  Result<int> major = DataDirMajorVersion(pg_->data_dir);
  ASSERT_TRUE(major.ok()) << major.status().ToString();
  EXPECT_EQ(*major, 15);
  EXPECT_TRUE(MustRead(JoinPath(pg_->data_dir, "postgresql.conf"))
                  .ends_with("\ninclude = 'pgbranch.conf'\n"));
  EXPECT_TRUE(
      MustRead(JoinPath(pg_->data_dir, "pg_hba.conf")).starts_with("# pg_hba.conf written by"));
  struct stat st {};
  ASSERT_EQ(::stat(JoinPath(pg_->data_dir, "PG_VERSION").c_str(), &st), 0);
  if (pg_->os_user) {
    EXPECT_EQ(st.st_uid, pg_->os_user->uid);
  }
  EXPECT_EQ(DataDirMajorVersion(pg_->dir).status().code(), StatusCode::kNotFound);
}

// Without pgbranch.conf (WriteInstanceConfig never ran) the strict include makes the server
// refuse to start instead of starting on the default port: the wait fails fast, and the log
// names the missing file.
TEST_F(PgInstanceTest, MissingPgbranchConfRefusesToStart) {
  ASSERT_TRUE(RemoveFile(JoinPath(pg_->data_dir, "pgbranch.conf")).ok());
  ASSERT_TRUE(pg_->runtime->Start(pg_->spec).ok());
  Status ready = pg_->WaitReady(std::chrono::seconds(30));
  EXPECT_EQ(ready.code(), StatusCode::kFailedPrecondition) << ready.ToString();
  EXPECT_NE(pg_->Log().find("pgbranch.conf"), std::string::npos) << pg_->Log();
}

// pgbranch.conf gets every per-branch setting, with a quote doubled and a backslash escaped;
// a line break, a port out of range or a socket path past the kernel's limit is refused.
// What pgbranch adds to an adopted data directory (FinishCopiedDataDir, pgbranch.conf, its own
// certificate) comes out again byte for byte, with and without a postgresql.conf of its own;
// a second call changes nothing.
TEST(PgClusterTest, RestoreAdoptedDataDirUndoesFinishCopiedDataDir) {
  for (bool own_conf : {true, false}) {
    TempDir dir;
    const std::string conf = JoinPath(dir.path(), "postgresql.conf");
    const std::string hba = JoinPath(dir.path(), "pg_hba.conf");
    if (own_conf) ASSERT_TRUE(WriteFileAtomic(conf, "work_mem = '7MB'\n", 0600).ok());
    ASSERT_TRUE(WriteFileAtomic(hba, "local all all peer\n", 0600).ok());
    // With its own configuration it also has its own certificate; without, none.
    if (own_conf) {
      ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "server.crt"), "theirs", 0600).ok());
    }
    ASSERT_TRUE(SetAsideServerCertificate(dir.path()).ok());
    ASSERT_TRUE(FinishCopiedDataDir(dir.path(), {}, std::nullopt).ok());
    InstanceConfig config;
    config.port = 6543;
    ASSERT_TRUE(WriteInstanceConfig(dir.path(), config, std::nullopt).ok());
    ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "server.crt"), "ours", 0600).ok());
    EXPECT_NE(MustRead(conf).find("include = 'pgbranch.conf'"), std::string::npos);

    for (int pass = 0; pass < 2; ++pass) {
      ASSERT_TRUE(RestoreAdoptedDataDir(dir.path()).ok());
      if (own_conf) {
        EXPECT_EQ(MustRead(conf), "work_mem = '7MB'\n");
        EXPECT_EQ(MustRead(JoinPath(dir.path(), "server.crt")), "theirs");
      } else {
        EXPECT_FALSE(PathExists(conf));
        EXPECT_FALSE(PathExists(JoinPath(dir.path(), "server.crt")));
      }
      EXPECT_EQ(MustRead(hba), "local all all peer\n");
      EXPECT_FALSE(PathExists(JoinPath(dir.path(), "pgbranch.conf")));
      EXPECT_FALSE(PathExists(hba + ".source"));
    }
  }
}

TEST(PgClusterTest, WriteInstanceConfigQuotesValues) {
  TempDir dir;
  InstanceConfig config;
  config.port = 6543;
  config.socket_dir = "/run/pgbranch/sockets";
  config.cluster_name = R"(it's a \ test)";
  ASSERT_TRUE(WriteInstanceConfig(dir.path(), config, std::nullopt).ok());
  std::string text = MustRead(JoinPath(dir.path(), "pgbranch.conf"));
  EXPECT_NE(text.find("\nport = 6543\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nlisten_addresses = '127.0.0.1'\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nunix_socket_directories = '/run/pgbranch/sockets'\n"), std::string::npos);
  EXPECT_NE(text.find(R"(cluster_name = 'it''s a \\ test')"), std::string::npos) << text;
  EXPECT_NE(text.find("\npassword_encryption = 'scram-sha-256'\n"), std::string::npos);

  InstanceConfig bad = config;
  bad.cluster_name = "two\nlines";
  EXPECT_EQ(WriteInstanceConfig(dir.path(), bad, std::nullopt).code(),
            StatusCode::kInvalidArgument);
  bad = config;
  bad.port = 0;
  EXPECT_EQ(WriteInstanceConfig(dir.path(), bad, std::nullopt).code(),
            StatusCode::kInvalidArgument);
  bad = config;
  bad.socket_dir = "/run/a,b";  // libpq would read two hosts
  EXPECT_EQ(WriteInstanceConfig(dir.path(), bad, std::nullopt).code(),
            StatusCode::kInvalidArgument);
  bad = config;
  bad.socket_dir = "/" + std::string(100, 's');
  EXPECT_EQ(WriteInstanceConfig(dir.path(), bad, std::nullopt).code(),
            StatusCode::kInvalidArgument);
  // The file on disk is still the good one.
  EXPECT_EQ(MustRead(JoinPath(dir.path(), "pgbranch.conf")), text);
  EXPECT_EQ(text.find("ssl"), std::string::npos) << text;
}

// With ssl, pgbranch.conf turns TLS on with the data directory's server.crt and server.key
// (relative names) and nothing older than TLS 1.2.
TEST(PgClusterTest, WriteInstanceConfigTurnsTlsOn) {
  TempDir dir;
  InstanceConfig config;
  config.port = 6543;
  config.socket_dir = "/run/pgbranch/sockets";
  config.ssl = true;
  ASSERT_TRUE(WriteInstanceConfig(dir.path(), config, std::nullopt).ok());
  std::string text = MustRead(JoinPath(dir.path(), "pgbranch.conf"));
  EXPECT_NE(text.find("\nssl = on\n"
                      "ssl_cert_file = 'server.crt'\n"
                      "ssl_key_file = 'server.key'\n"
                      "ssl_min_protocol_version = 'TLSv1.2'\n"),
            std::string::npos)
      << text;
}

// A cluster_name with a quote and a backslash, and a socket directory with a blank and a quote,
// survive the trip through PostgreSQL's configuration parser: the started server reports the
// name unchanged and listens in that directory.
TEST_F(PgInstanceTest, WriteInstanceConfigValuesReadBackByServer) {
  pg_->config.cluster_name = R"(o'brien\dev)";
  std::string odd_socket_dir = JoinPath(pg_->dir, "so 'ck");
  ASSERT_TRUE(EnsureDir(odd_socket_dir, 0700, OwnerOf(pg_->os_user)).ok());
  pg_->config.socket_dir = pg_->socket_dir = odd_socket_dir;
  ASSERT_TRUE(WriteInstanceConfig(pg_->data_dir, pg_->config, OwnerOf(pg_->os_user)).ok());
  ASSERT_TRUE(pg_->StartAndWait().ok()) << pg_->Log();
  auto conn = Connection::Open(pg_->AdminParams());
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  Result<std::string> name = (*conn)->QueryValue("SHOW cluster_name");
  ASSERT_TRUE(name.ok()) << name.status().ToString();
  EXPECT_EQ(*name, R"(o'brien\dev)");
}

// PrepareClonedDataDir removes the parent's postmaster.pid, postmaster.opts, TLS key and
// certificate, and writes the clone's pgbranch.conf.
TEST(PgClusterTest, PrepareClonedDataDirRemovesParentFiles) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "postmaster.pid"), "123\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "postmaster.opts"), "postgres\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "server.crt"), "parent's\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(JoinPath(dir.path(), "server.key"), "parent's\n", 0600).ok());
  InstanceConfig config;
  config.port = 7000;
  config.socket_dir = "/tmp";
  config.cluster_name = "demo/dev";
  ASSERT_TRUE(PrepareClonedDataDir(dir.path(), config, std::nullopt).ok());
  EXPECT_FALSE(PathExists(JoinPath(dir.path(), "postmaster.pid")));
  EXPECT_FALSE(PathExists(JoinPath(dir.path(), "postmaster.opts")));
  EXPECT_FALSE(PathExists(JoinPath(dir.path(), "server.crt")));
  EXPECT_FALSE(PathExists(JoinPath(dir.path(), "server.key")));
  EXPECT_NE(MustRead(JoinPath(dir.path(), "pgbranch.conf")).find("port = 7000"), std::string::npos);
  // Again, with nothing to remove, is fine too.
  EXPECT_TRUE(PrepareClonedDataDir(dir.path(), config, std::nullopt).ok());
}

// ReadPostmasterPid: no file is nullopt; a hand-written PostgreSQL 15 file is parsed field by
// field; an empty file is Unavailable (being written) and garbage FailedPrecondition.
TEST(PgClusterTest, ReadPostmasterPidParsesLines) {
  TempDir dir;
  Result<std::optional<PostmasterPid>> none = ReadPostmasterPid(dir.path());
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->has_value());

  const std::string path = JoinPath(dir.path(), "postmaster.pid");
  ASSERT_TRUE(WriteFileAtomic(path,
                              "4242\n/var/lib/pg/data\n1700000000\n5433\n/run/pgb\n127.0.0.1\n"
                              "  5433001    524288\nready   \n",
                              0600)
                  .ok());
  Result<std::optional<PostmasterPid>> pp = ReadPostmasterPid(dir.path());
  ASSERT_TRUE(pp.ok() && pp->has_value()) << pp.status().ToString();
  EXPECT_EQ((*pp)->pid, 4242);
  EXPECT_EQ((*pp)->start_epoch_seconds, 1700000000);
  EXPECT_EQ((*pp)->port, 5433);
  EXPECT_EQ((*pp)->status, "ready");

  ASSERT_TRUE(WriteFileAtomic(path, "", 0600).ok());
  EXPECT_EQ(ReadPostmasterPid(dir.path()).status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(WriteFileAtomic(path, "pid\n", 0600).ok());
  EXPECT_EQ(ReadPostmasterPid(dir.path()).status().code(), StatusCode::kFailedPrecondition);
}

// The postmaster.pid of a real running server names the postmaster the runtime reports, our
// port, a start time within the last minute, and status "ready".
TEST_F(PgInstanceTest, ReadPostmasterPidParsesRealFile) {
  ASSERT_TRUE(pg_->StartAndWait().ok()) << pg_->Log();
  Result<std::optional<PostmasterPid>> pp = ReadPostmasterPid(pg_->data_dir);
  ASSERT_TRUE(pp.ok() && pp->has_value()) << pp.status().ToString();
  Result<InstanceStatus> st = pg_->runtime->Inspect(pg_->spec);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ((*pp)->pid, st->pid);
  EXPECT_EQ((*pp)->port, pg_->port);
  EXPECT_EQ((*pp)->status, "ready");
  long long now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  EXPECT_LE(now - (*pp)->start_epoch_seconds, 60);
  EXPECT_GE(now - (*pp)->start_epoch_seconds, 0);
}

}  // namespace
}  // namespace pgb
