// End-to-end test harness: runs the real `pgbranch` binary against real PostgreSQL on a real
// Btrfs image pool, and talks to the branches over TCP with libpq.
//
// Each Home is a private $PGBRANCH_HOME in /tmp with its own image pool and port range, torn
// down completely (projects deleted, servers stopped, pool unmounted, loop device released,
// files removed) even when a test fails.

#ifndef PGBRANCH_TESTS_E2E_HARNESS_H_
#define PGBRANCH_TESTS_E2E_HARNESS_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "pg/client.h"

namespace pgb::e2e {

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  nlohmann::json Json() const;  // stdout parsed as JSON (test fails if it is not)
};

class Home {
 public:
  // Creates the home and, unless `pool_size` is empty, runs
  // `pgbranch init --image <home>/pool.img --size <pool_size> --port-range <ports>`.
  Home(const std::string& pool_size = "3G", const std::string& ports = "");
  ~Home();

  // Runs pgbranch with `args`, PGBRANCH_HOME set, and extra environment `env`.
  CliResult Run(const std::vector<std::string>& args,
                const std::vector<std::pair<std::string, std::string>>& env = {}) const;
  // Runs and fails the test (ADD_FAILURE) unless it exits 0.
  CliResult Ok(const std::vector<std::string>& args) const;
  // `branch get ref --json`.
  nlohmann::json Branch(const std::string& ref) const;

  // The names in <pool>/volumes and <pool>/snapshots, to prove nothing was left behind.
  std::set<std::string> Volumes() const;
  std::set<std::string> Snapshots() const;

  const std::string& path() const { return path_; }
  std::string pool_root() const { return path_ + "/pool"; }

 private:
  std::string path_;
  int first_port_ = 0;
};

// A connection to a branch's URI (over TCP, with its password).
std::unique_ptr<Connection> Connect(const std::string& uri);
// Runs `sql` on the branch at `uri`; the test fails on error.
void Sql(const std::string& uri, const std::string& sql);
// The first column of every row of `sql`, as text.
std::vector<std::string> Column(const std::string& uri, const std::string& sql);

// True if nothing listens on 127.0.0.1:port.
bool PortIsFree(int port);

// Pids of running postgres postmasters whose command line mentions `data_dir`.
std::vector<int> PostmastersOf(const std::string& data_dir);

}  // namespace pgb::e2e

#endif  // PGBRANCH_TESTS_E2E_HARNESS_H_
