// End-to-end test harness: runs the real `pgbranch` binary against real PostgreSQL on real
// pools, and talks to the branches over TCP with libpq.
//
// A Home is a private $PGBRANCH_HOME under /tmp with its own pool of one backend and its own
// port range. Every backend lives on something sized and disposable, so a "pool full" test
// never fills the host's disk:
//   btrfs  a Btrfs image pgbranch makes (init --image --fs btrfs)
//   xfs    an XFS (reflink=1) image pgbranch makes (init --image --fs xfs): a reflink pool
//   zfs    a zpool on a sparse file, in Debian's zfs-fuse (init --zfs POOL/pgbranch)
//   copy   a directory on a small ext4 image the harness mounts (init --copy)
// The destructor tears everything down (projects deleted, servers stopped, pools unmounted or
// destroyed, loop devices released, files removed), even when a test failed.

#ifndef PGBRANCH_TESTS_E2E_HARNESS_H_
#define PGBRANCH_TESTS_E2E_HARNESS_H_

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "pg/client.h"
#include "storage/pool.h"

namespace pgb::e2e {

// The backends of the conformance suite.
inline const std::vector<std::string>& AllBackends() {
  static const std::vector<std::string> kBackends = {"btrfs", "xfs", "zfs", "copy"};
  return kBackends;
}

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  nlohmann::json Json() const;  // stdout parsed as JSON (test fails if it is not)
};

class Home {
 public:
  // A home with a `backend` pool of `size` bytes ("3G"); backend "" makes no pool (the test
  // runs `init` itself). `ports` overrides the port range ("56990-56990").
  explicit Home(const std::string& backend, const std::string& size = "3G",
                const std::string& ports = "");
  ~Home();
  Home(const Home&) = delete;
  Home& operator=(const Home&) = delete;

  // Runs pgbranch with `args`, PGBRANCH_HOME set, and extra environment `env` (which may set
  // PGBRANCH_HOME to another directory).
  CliResult Run(const std::vector<std::string>& args,
                const std::vector<std::pair<std::string, std::string>>& env = {}) const;
  // Runs and fails the test (ADD_FAILURE) unless it exits 0.
  CliResult Ok(const std::vector<std::string>& args) const;
  // `branch get ref --json`.
  nlohmann::json Branch(const std::string& ref) const;

  // Volume and snapshot names the pool holds, listed by the pool library itself, to prove
  // nothing was left behind.
  std::set<std::string> Volumes() const;
  std::set<std::string> Snapshots() const;

  const std::string& path() const { return path_; }
  const std::string& backend() const { return backend_; }
  // The directory volumes live under: where a test can put a filler file to fill the pool.
  std::string pool_root() const { return config_.root; }
  // Whether `pgbranch init` succeeded (always, for a home without a pool); a test that writes
  // into the pool checks this first, so it never fills the host's /tmp instead.
  bool ready() const { return ready_; }
  const PoolConfig& pool_config() const { return config_; }

 private:
  std::string path_;
  std::string backend_;
  bool ready_ = false;
  PoolConfig config_;
  std::string ext4_mount_;  // copy: the ext4 image the harness mounted
  std::string zpool_;       // zfs: the zpool the harness created
};

// A test parameterized by backend name, with one Home per backend shared by every test of the
// binary (mkfs or zpool create once per backend, not per test; torn down after the last
// test). Each test registers the projects it makes in projects_; they are deleted after it.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void TearDown() override;
  const Home& home();
  std::vector<std::string> projects_;
};

// Runs a program (argv, no shell) and fails the test unless it exits 0.
CommandResult MustRun(const std::vector<std::string>& argv);

// A connection to a branch's URI (over TCP, with its password).
std::unique_ptr<Connection> Connect(const std::string& uri);
// Runs `sql` on the branch at `uri`; the test fails on error.
void Sql(const std::string& uri, const std::string& sql);
// The first column of every row of `sql`, as text.
std::vector<std::string> Column(const std::string& uri, const std::string& sql);

// One value from `pgbranch psql REF -- -XAtc SQL` in `home`, trailing newlines dropped; the
// test fails unless psql exits 0.
std::string PsqlValue(const Home& home, const std::string& ref, const std::string& sql);

// pg_dump of database postgres of branch `ref` in `format` ("c" custom, "p" plain) into `file`,
// connected as `branch env --json` says (the password from its passfile); returns `file`.
std::string DumpBranch(const Home& home, const std::string& ref, const std::string& format,
                       const std::string& file);

// Calls `done` every 250 ms until it returns true or `timeout` passes; returns its last answer.
bool Eventually(const std::function<bool()>& done,
                std::chrono::seconds timeout = std::chrono::seconds(30));

// True if nothing listens on 127.0.0.1:port.
bool PortIsFree(int port);

// The first of a block of 40 ports no other home of this test binary gets (from
// PGB_E2E_PORT_BASE, 56000 by default). Not thread-safe.
int NextPortBlock();

// `pgbranch --home HOME serve ARGS` as a child, its stdout and stderr in `log`, with
// $NOTIFY_SOCKET set to `notify_socket` unless it is empty. Returns its pid (-1 if fork failed).
pid_t SpawnServe(const std::string& home, const std::vector<std::string>& args,
                 const std::string& log, const std::string& notify_socket);

// Pids of running (not zombie) postgres processes whose command line mentions `data_dir`.
std::vector<int> PostmastersOf(const std::string& data_dir);

}  // namespace pgb::e2e

#endif  // PGBRANCH_TESTS_E2E_HARNESS_H_
