// Test support (header-only, for *_test.cc): a throwaway PostgreSQL instance per test.
//
// PostgreSQL refuses to run as root, so when the tests run as root the servers run as the OS
// account `postgres`. One data directory is initdb'd per test process (InitDataDir, ~1 s) and
// copied for every test, as a branch clone would be (PrepareClonedDataDir). Every test gets its
// own temporary directory with the data directory, a private socket directory and the log, and
// a free TCP port on 127.0.0.1. TearDown stops the server whatever happened, kills anything
// left in the data directory, reaps, and removes the directory.
//
// The test process makes itself a child subreaper: a server started detached is re-parented to
// us instead of PID 1, which on this kind of host never reaps, so the servers a test stops or
// kills leave no zombies behind.

#ifndef PGBRANCH_RUNTIME_TEST_INSTANCE_H_
#define PGBRANCH_RUNTIME_TEST_INSTANCE_H_

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/os_user.h"
#include "common/subprocess.h"
#include "pg/client.h"
#include "pg/cluster.h"
#include "runtime/runtime.h"

namespace pgb::test {

// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel picks it).
inline Result<int> FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return PosixError("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (rc == 0) rc = ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int err = errno;
  ::close(fd);
  if (rc != 0) return PosixError("bind 127.0.0.1:0", err);
  return static_cast<int>(ntohs(addr.sin_port));
}

// The account servers run as: `postgres` when we are root, else ourselves (nullopt).
inline Result<std::optional<OsUser>> ServerOsUser() {
  if (!RunningAsRoot()) return std::optional<OsUser>();
  PGB_ASSIGN_OR_RETURN(OsUser user, LookupOsUser("postgres"));
  return std::optional<OsUser>(user);
}

inline std::optional<FileOwner> OwnerOf(const std::optional<OsUser>& user) {
  if (!user) return std::nullopt;
  return FileOwner{user->uid, user->gid};
}

// A fresh directory under /tmp owned by `user`, mode 0700.
inline Result<std::string> MakeTempDir(const std::optional<OsUser>& user) {
  std::string tmpl = "/tmp/pgb-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return PosixError("mkdtemp", errno);
  PGB_RETURN_IF_ERROR(SetMode(tmpl, 0700, OwnerOf(user)));
  return tmpl;
}

// A temporary directory (MakeTempDir, owned by the caller) removed when the test ends.
class TempDir {
 public:
  TempDir() {
    Result<std::string> d = MakeTempDir(std::nullopt);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (d.ok()) path_ = *d;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Live postgres processes working in `data_dir` (every process of an instance chdirs there).
inline std::vector<pid_t> PostgresProcessesIn(const std::string& data_dir) {
  std::vector<pid_t> pids;
  struct stat want {};
  if (::stat(data_dir.c_str(), &want) != 0) return pids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    pid_t pid = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (err != std::errc() || end != name.data() + name.size()) continue;
    Result<std::string> comm = ReadFile(entry.path().string() + "/comm");
    if (!comm.ok() || *comm != "postgres\n") continue;
    struct stat cwd {};
    if (::stat((entry.path().string() + "/cwd").c_str(), &cwd) != 0) continue;
    if (cwd.st_dev == want.st_dev && cwd.st_ino == want.st_ino) pids.push_back(pid);
  }
  return pids;
}

// The state letter of /proc/<pid>/stat ('Z' for a zombie), or 0 if there is no such process.
inline char ProcessState(pid_t pid) {
  Result<std::string> stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return 0;
  size_t close = stat->rfind(')');
  return close != std::string::npos && close + 2 < stat->size() ? (*stat)[close + 2] : 0;
}

// Reaps every zombie child (servers re-parented to us as subreaper).
inline void ReapZombieChildren() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// An initdb'd data directory shared by the tests of this process, made on first use and
// removed at exit. Copies of it are what tests start.
struct TemplateDataDir {
  std::string dir;
  std::string data_dir;
  Status status;
};

inline const TemplateDataDir& SharedTemplateDataDir(ProcessRunner& runner, const PgBinaries& bins,
                                                    const std::optional<OsUser>& user) {
  static const TemplateDataDir t = [&] {
    TemplateDataDir t;
    Result<std::string> dir = MakeTempDir(user);
    if (!dir.ok()) {
      t.status = dir.status();
      return t;
    }
    t.dir = *dir;
    t.data_dir = JoinPath(t.dir, "data");
    t.status = EnsureDir(t.data_dir, 0700, OwnerOf(user));
    if (t.status.ok()) t.status = InitDataDir(runner, bins, t.data_dir, "postgres", user);
    return t;
  }();
  static const int cleanup = std::atexit([] {
    std::error_code ec;
    if (!t.dir.empty()) std::filesystem::remove_all(t.dir, ec);
  });
  (void)cleanup;
  return t;
}

// One throwaway instance: a configured, stopped copy of the template data directory in its own
// directory, with a free port. Destroying it stops the server whatever state it is in, kills
// anything left in the data directory, reaps, and removes the directory.
struct TestInstance {
  // NotFound when this machine has no PostgreSQL server (callers skip the test then).
  static Result<std::unique_ptr<TestInstance>> Create(const std::string& name) {
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    auto t = std::make_unique<TestInstance>();
    t->runner = NewRealProcessRunner();
    t->runtime = NewNativeRuntime(*t->runner);
    PGB_ASSIGN_OR_RETURN(t->bins, FindPgBinaries(*t->runner));
    PGB_ASSIGN_OR_RETURN(t->os_user, ServerOsUser());
    const TemplateDataDir& tmpl = SharedTemplateDataDir(*t->runner, t->bins, t->os_user);
    PGB_RETURN_IF_ERROR(tmpl.status.WithContext("initdb template"));

    PGB_ASSIGN_OR_RETURN(t->dir, MakeTempDir(t->os_user));
    t->data_dir = JoinPath(t->dir, "data");
    t->socket_dir = JoinPath(t->dir, "sock");
    PGB_RETURN_IF_ERROR(EnsureDir(t->socket_dir, 0700, OwnerOf(t->os_user)));
    Command copy;
    copy.argv = {"cp", "-a", tmpl.data_dir, t->data_dir};
    PGB_RETURN_IF_ERROR(RunChecked(*t->runner, copy).status());

    PGB_ASSIGN_OR_RETURN(t->port, FreePort());
    t->config.port = t->port;
    t->config.socket_dir = t->socket_dir;
    t->config.cluster_name = "test/" + name;
    PGB_RETURN_IF_ERROR(PrepareClonedDataDir(t->data_dir, t->config, OwnerOf(t->os_user)));

    t->spec.name = t->config.cluster_name;
    t->spec.data_dir = t->data_dir;
    t->spec.bin_dir = t->bins.bin_dir;
    t->spec.log_path = JoinPath(t->dir, "postgres.log");
    t->spec.os_user = t->os_user;
    return t;
  }

  ~TestInstance() {
    if (runtime && !data_dir.empty()) {
      Status stopped = runtime->Stop(spec, StopMode::kImmediate, std::chrono::seconds(10));
      EXPECT_TRUE(stopped.ok()) << stopped.ToString();
      std::vector<pid_t> left = PostgresProcessesIn(data_dir);
      EXPECT_TRUE(left.empty()) << left.size() << " postgres processes left in " << data_dir;
      for (pid_t pid : left) ::kill(pid, SIGKILL);
      for (int i = 0; i < 1000 && !PostgresProcessesIn(data_dir).empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    ReapZombieChildren();
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  }

  // Over the private socket: trusted, as pgbranch's own administrative connections are.
  ConnParams AdminParams() const {
    ConnParams p;
    p.host = socket_dir;
    p.port = port;
    p.connect_timeout_seconds = 5;
    return p;
  }

  ConnParams TcpParams(const std::string& user, const std::string& password) const {
    ConnParams p;
    p.host = "127.0.0.1";
    p.port = port;
    p.user = user;
    p.password = password;
    p.connect_timeout_seconds = 5;
    return p;
  }

  // WaitUntilReady over the socket, polling every 5 ms, failing fast if the server dies.
  Status WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return WaitUntilReady(AdminParams(), timeout, std::chrono::milliseconds(5),
                          StillRunningCheck(*runtime, spec));
  }

  Status StartAndWait() {
    PGB_RETURN_IF_ERROR(runtime->Start(spec));
    return WaitReady();
  }

  // Appends `line` to `file` in the data directory (to postgresql.conf: after the include, so
  // it wins over pgbranch.conf).
  Status AppendConf(const std::string& file, const std::string& line) {
    std::string path = JoinPath(data_dir, file);
    PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    return WriteFileAtomic(path, text + line + "\n", 0600, OwnerOf(os_user));
  }

  // The server log so far ("" if none).
  std::string Log() const {
    Result<std::string> text = ReadFile(spec.log_path);
    return text.ok() ? *text : "";
  }

  std::unique_ptr<ProcessRunner> runner;
  std::unique_ptr<Runtime> runtime;
  PgBinaries bins;
  std::optional<OsUser> os_user;
  std::string dir, data_dir, socket_dir;
  int port = 0;
  InstanceConfig config;
  InstanceSpec spec;
};

// Fixture: every test gets its own stopped TestInstance, `pg_`; tests start it.
class PgInstanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<TestInstance>> pg =
        TestInstance::Create(::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (!pg.ok() && pg.status().Is(StatusCode::kNotFound)) {
      GTEST_SKIP() << "no PostgreSQL server to test with: " << pg.status().ToString();
    }
    ASSERT_TRUE(pg.ok()) << pg.status().ToString();
    pg_ = std::move(pg).value();
  }
  void TearDown() override { pg_.reset(); }

  std::unique_ptr<TestInstance> pg_;
};

}  // namespace pgb::test

#endif  // PGBRANCH_RUNTIME_TEST_INSTANCE_H_
