// For the engine's unit tests: fakes of the OS effects EngineEnv injects, and a fixture that
// opens a real Engine on a real catalog in a temporary home.
//
// The fakes are thread-safe, because the concurrency tests share one engine (and so one runner,
// clock and port probe) between threads:
//   FakeProcessRunner  records the argv of every command (compare them exactly, ninja's
//                      FakeCommandRunner habit) and answers from a table by argv[0]; anything
//                      unscripted exits 127 and no daemon ever starts.
//   FakeClock          a fixed time that moves only when a test advances it.
//   FakePortProbe      every port free except those a test marks taken; records what was asked.
// The fixture's pool is a "copy" pool in the temporary directory (no root, no loop device, no
// server), and a second Catalog on the same state.db writes the rows a test starts from behind
// the engine's back, as another process would.

#ifndef PGBRANCH_ENGINE_ENGINE_TESTUTIL_H_
#define PGBRANCH_ENGINE_ENGINE_TESTUTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/mutex.h"
#include "common/subprocess.h"
#include "common/thread_annotations.h"
#include "common/time.h"
#include "engine/engine.h"
#include "engine/ports.h"
#include "state/catalog.h"
#include "storage/pool.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
namespace engine_test {

using Argv = std::vector<std::string>;

class FakeProcessRunner : public ProcessRunner {
 public:
  // What a command whose argv[0] is `program` gets from now on.
  void Answer(const std::string& program, CommandResult result) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    answers_[program] = std::move(result);
  }

  Result<CommandResult> Run(const Command& command) override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    commands_ran_.push_back(command.argv);
    auto it = command.argv.empty() ? answers_.end() : answers_.find(command.argv[0]);
    if (it != answers_.end()) return it->second;
    CommandResult r;
    r.exit_code = 127;
    r.err = "fake runner: not scripted";
    return r;
  }

  Result<pid_t> SpawnDaemon(const Command& command, const std::string& log_path) override
      EXCLUDES(mu_) {
    MutexLock lock(mu_);
    commands_ran_.push_back(command.argv);
    return Status::NotSupported("fake runner: starts no servers");
  }

  std::vector<Argv> commands_ran() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return commands_ran_;
  }

 private:
  Mutex mu_;
  std::vector<Argv> commands_ran_ GUARDED_BY(mu_);
  std::map<std::string, CommandResult> answers_ GUARDED_BY(mu_);
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(TimePoint now) : now_(now) {}
  TimePoint Now() const override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return now_;
  }
  void Set(TimePoint now) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    now_ = now;
  }
  void Advance(std::chrono::milliseconds by) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    now_ += by;
  }

 private:
  mutable Mutex mu_;
  TimePoint now_ GUARDED_BY(mu_);
};

class FakePortProbe : public PortProbe {
 public:
  void Take(int port) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    taken_.insert(port);
  }
  bool IsFree(const std::string& address, int port) override EXCLUDES(mu_) {
    MutexLock lock(mu_);
    asked_.emplace_back(address, port);
    return !taken_.count(port);
  }
  std::vector<std::pair<std::string, int>> asked() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return asked_;
  }

 private:
  Mutex mu_;
  std::set<int> taken_ GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int>> asked_ GUARDED_BY(mu_);
};

// "2026-11-21T12:00:00.000Z" as a TimePoint: where every FakeClock of these tests starts.
inline TimePoint TestEpoch() { return ParseTimestamp("2026-11-21T12:00:00Z").value(); }

class EngineFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-engine-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    home_ = dir_ + "/home";
    pool_root_ = dir_ + "/copy";
    ASSERT_TRUE(EnsureDir(pool_root_, 0711).ok());
    Result<std::unique_ptr<Engine>> engine = Open();
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
  }

  void TearDown() override {
    engine_.reset();
    rows_.reset();
    pool_.reset();
    // Snapshots of the copy pool carry the immutable flag (as root): RemoveTree clears it.
    Status removed = RemoveTree(dir_);
    EXPECT_TRUE(removed.ok()) << removed.ToString();
  }

  EngineEnv Env() {
    EngineEnv env;
    env.home = home_;
    env.runner = &runner_;
    env.clock = &clock_;
    env.ports = &ports_;
    return env;
  }
  Result<std::unique_ptr<Engine>> Open() { return Engine::Open(Env()); }

  // `pgbranch init --copy <dir>/copy` on the engine under test.
  void InitCopyPool() {
    InitOptions options;
    options.copy_dir = pool_root_;
    Result<StatusInfo> status = engine_->Init(options);
    ASSERT_TRUE(status.ok()) << status.status().ToString();
    ASSERT_TRUE(status->pool.configured);
  }

  // The same pool as the engine's, opened separately (as doctor in another process would).
  Pool& PoolHere() {
    if (!pool_) {
      PoolConfig config;
      config.kind = "copy";
      config.root = pool_root_;
      Result<std::unique_ptr<Pool>> pool = OpenPool(config, runner_);
      EXPECT_TRUE(pool.ok()) << pool.status().ToString();
      if (pool.ok()) pool_ = std::move(pool).value();
    }
    return *pool_;
  }

  // A second connection to the engine's catalog, for the rows a test starts from.
  Catalog& Rows() {
    if (!rows_) {
      Result<std::unique_ptr<Catalog>> catalog = Catalog::Open(home_ + "/state.db");
      EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
      if (catalog.ok()) rows_ = std::move(catalog).value();
    }
    return *rows_;
  }

  int64_t AddProject(const std::string& name) {
    ProjectRow p;
    p.name = name;
    p.pg_bin = "/usr/lib/postgresql/15/bin";
    p.pg_version = "15.0";
    p.pg_major = 15;
    p.created_at = FormatTimestamp(TestEpoch());
    Result<int64_t> id = Rows().InsertProject(p);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : 0;
  }

  BranchRow AddBranch(int64_t project, const std::string& name, int port, const std::string& volume,
                      const std::string& state = kStateStopped,
                      std::optional<int64_t> parent = std::nullopt,
                      std::optional<int64_t> snapshot = std::nullopt) {
    BranchRow b;
    b.project_id = project;
    b.name = name;
    b.parent_id = parent;
    b.snapshot_id = snapshot;
    b.state = state;
    b.port = port;
    b.password = "secret";
    b.volume = volume;
    b.created_at = FormatTimestamp(TestEpoch());
    Result<int64_t> id = Rows().InsertBranch(b);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    b.id = id.ok() ? *id : 0;
    return b;
  }

  SnapshotRow AddSnapshot(const BranchRow& branch, const std::string& name, TimePoint created,
                          bool implicit = false) {
    SnapshotRow s;
    s.branch_id = branch.id;
    s.volume = branch.volume;
    s.name = name;
    s.label = implicit ? "" : "by the test";
    s.implicit = implicit;
    s.created_at = FormatTimestamp(created);
    Result<int64_t> id = Rows().InsertSnapshot(s);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    s.id = id.ok() ? *id : 0;
    return s;
  }

  // A new volume in the pool holding a file, as a data directory would.
  std::string MakeVolume() {
    std::string volume = NewVolumeName();
    Status made = PoolHere().CreateVolume(volume, std::nullopt);
    EXPECT_TRUE(made.ok()) << made.ToString();
    Status wrote = WriteFileAtomic(PoolHere().VolumePath(volume) + "/PG_VERSION", "15\n", 0600);
    EXPECT_TRUE(wrote.ok()) << wrote.ToString();
    return volume;
  }
  // A new snapshot of `volume` in the pool.
  std::string MakeSnapshot(const std::string& volume) {
    std::string snapshot = NewSnapshotName();
    Status made = PoolHere().CreateSnapshot(volume, snapshot);
    EXPECT_TRUE(made.ok()) << made.ToString();
    return snapshot;
  }

  std::vector<std::string> Volumes() {
    Result<std::vector<std::string>> v = PoolHere().ListVolumes();
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : std::vector<std::string>{};
  }
  std::vector<std::string> Snapshots() {
    Result<std::vector<std::string>> s = PoolHere().ListSnapshots();
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : std::vector<std::string>{};
  }

  std::string dir_, home_, pool_root_;
  FakeProcessRunner runner_;
  FakeClock clock_{TestEpoch()};
  FakePortProbe ports_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<Catalog> rows_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace engine_test
}  // namespace pgb

#endif  // PGBRANCH_ENGINE_ENGINE_TESTUTIL_H_
