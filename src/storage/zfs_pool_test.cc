#include "storage/zfs_pool.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/mutex.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"
#include "storage/volume_name.h"
#include "storage/zfs_testutil.h"

namespace pgb {
namespace {

using storage_test::kMiB;
using storage_test::Slurp;
using storage_test::WriteOutcome;
using storage_test::WriteRandom;
using storage_test::WriteUntilError;
using zfs_test::TempZpool;
using zfs_test::ZfsFuseDaemon;

using Argv = std::vector<std::string>;

// Forwards every command to a target runner and records its argv (the real runner in the
// zfs-fuse tests, so a test can check which commands a call ran, or that it ran none).
class RecordingRunner : public ProcessRunner {
 public:
  explicit RecordingRunner(ProcessRunner& target) : target_(target) {}
  Result<CommandResult> Run(const Command& command) override {
    commands_ran_.push_back(command.argv);
    return target_.Run(command);
  }
  Result<pid_t> SpawnDaemon(const Command& command, const std::string& log_path) override {
    commands_ran_.push_back(command.argv);
    return target_.SpawnDaemon(command, log_path);
  }
  std::vector<Argv> commands_ran_;

 private:
  ProcessRunner& target_;
};

// What ZfsPool asks of a volume or snapshot before it quarantines, releases, purges or destroys it.
constexpr const char* kStateProperties =
    "pgbranch:quarantined,pgbranch:retired,canmount,mountpoint,mounted";

CommandResult Exited(int code, std::string out = "", std::string err = "") {
  CommandResult r;
  r.exit_code = code;
  r.out = std::move(out);
  r.err = std::move(err);
  return r;
}

// Records every argv and answers with `respond` (exit 0, no output by default), without
// running anything (ninja's FakeCommandRunner). Run may be called from several threads (with a
// `respond` that is thread-safe); read commands_ran_ once they are done.
class FakeProcessRunner : public ProcessRunner {
 public:
  Result<CommandResult> Run(const Command& command) override {
    {
      MutexLock lock(mu_);
      commands_ran_.push_back(command.argv);
    }
    return respond_ ? respond_(command.argv) : Result<CommandResult>(Exited(0));
  }
  Result<pid_t> SpawnDaemon(const Command& command, const std::string&) override {
    commands_ran_.push_back(command.argv);
    return Status::NotSupported("no daemons here");
  }
  Mutex mu_;
  std::vector<Argv> commands_ran_;
  std::function<Result<CommandResult>(const Argv&)> respond_;
};

// ---- Tests against a real ZFS (zfs-fuse) ---------------------------------------------------

// Given root and zfs-fuse (started for the suite if no ZFS answers, stopped after it if so):
// SetUp makes a 256 MiB file-backed zpool in a temporary directory and a pgbranch pool on its
// dataset <zpool>/pgb mounted at <dir>/root, opened through a RecordingRunner; TearDown
// destroys the zpool and the directory, leaving nothing mounted.
class ZfsPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    real_runner_ = NewRealProcessRunner().release();
    daemon_ = new ZfsFuseDaemon();
    daemon_status_ = new Status(daemon_->Ensure(*real_runner_));
    std::cerr << "zfs: " << (daemon_->started() ? "started zfs-fuse for these tests" : "already up")
              << "\n";
  }
  static void TearDownTestSuite() {
    Status stopped = daemon_->StopIfStarted();
    EXPECT_TRUE(stopped.ok()) << stopped.ToString();
    delete daemon_;
    delete daemon_status_;
    delete real_runner_;
  }

  void SetUp() override {
    ASSERT_TRUE(daemon_status_->ok()) << daemon_status_->ToString();
    Status created = zpool_.Create(*real_runner_, 256 * kMiB);
    ASSERT_TRUE(created.ok()) << created.ToString();
    runner_ = std::make_unique<RecordingRunner>(*real_runner_);
    config_.kind = "zfs";
    config_.dataset = zpool_.name() + "/pgb";
    config_.root = zpool_.dir() + "/root";
    Result<PoolConfig> effective = CreatePool(config_, *runner_);
    ASSERT_TRUE(effective.ok()) << effective.status().ToString();
    config_ = *effective;
    Result<std::unique_ptr<Pool>> pool = OpenPool(config_, *runner_);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    pool_ = std::move(pool).value();
  }

  void TearDown() override {
    pool_.reset();
    Status destroyed = zpool_.Destroy();
    EXPECT_TRUE(destroyed.ok()) << destroyed.ToString();
  }

  // Runs `zfs args...` for real and returns its stdout without the trailing newline.
  std::string Zfs(Argv args) {
    Command command;
    command.argv = {"zfs"};
    command.argv.insert(command.argv.end(), args.begin(), args.end());
    command.timeout = std::chrono::seconds(60);
    Result<CommandResult> result = RunChecked(*real_runner_, command);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok()) return "";
    std::string out = result->out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }
  std::string Get(const std::string& prop, const std::string& name) {
    return Zfs({"get", "-H", "-p", "-o", "value", prop, name});
  }
  bool DatasetExists(const std::string& name) {
    Command command;
    command.argv = {"zfs", "list", "-H", "-o", "name", "-t", "all", name};
    Result<CommandResult> result = real_runner_->Run(command);
    return result.ok() && result->Succeeded();
  }
  // Makes ZFS commit its open transaction group, so `used` & co. count recent writes (a
  // snapshot syncs the pool; zfs-fuse otherwise commits every ~30 s).
  void SyncPool() {
    std::string name = zpool_.name() + "@sync" + RandomHex(4);
    Zfs({"snapshot", name});
    Zfs({"destroy", name});
  }

  std::string NewVolumeWithData(uint64_t bytes) {
    std::string volume = NewVolumeName();
    Status s = pool_->CreateVolume(volume, std::nullopt);
    EXPECT_TRUE(s.ok()) << s.ToString();
    WriteRandom(pool_->VolumePath(volume) + "/data", 0, bytes);
    return volume;
  }
  // A clone of a new snapshot of `source`.
  std::string NewCloneOf(const std::string& source) {
    std::string snapshot = NewSnapshotName(), clone = NewVolumeName();
    EXPECT_TRUE(pool_->CreateSnapshot(source, snapshot).ok());
    EXPECT_TRUE(pool_->CloneSnapshot(source, snapshot, clone).ok());
    return clone;
  }

  static ProcessRunner* real_runner_;
  static ZfsFuseDaemon* daemon_;
  static Status* daemon_status_;

  TempZpool zpool_;
  std::unique_ptr<RecordingRunner> runner_;
  PoolConfig config_;
  std::unique_ptr<Pool> pool_;
};

ProcessRunner* ZfsPoolTest::real_runner_ = nullptr;
ZfsFuseDaemon* ZfsPoolTest::daemon_ = nullptr;
Status* ZfsPoolTest::daemon_status_ = nullptr;

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Given a zpool without the dataset, CreatePool creates <zpool>/pgb mounted at the root (made
// absolute, mode 0711) with recordsize 8k and lz4 compression (lzjb where lz4 is refused, as on
// zfs-fuse); the opened pool says what it is and promises atomic, pinning snapshots.
TEST_F(ZfsPoolTest, CreatePoolMakesDatasetWith8kRecordsAndCompression) {
  EXPECT_EQ(config_.kind, "zfs");
  EXPECT_EQ(config_.root, zpool_.dir() + "/root");
  EXPECT_EQ(Get("mountpoint", config_.dataset), config_.root);
  EXPECT_EQ(Get("mounted", config_.dataset), "yes");
  EXPECT_EQ(Get("recordsize", config_.dataset), "8192");
  std::string compression = Get("compression", config_.dataset);
  EXPECT_TRUE(compression == "lz4" || compression == "lzjb") << compression;
  RecordProperty("compression", compression);
  EXPECT_EQ(ModeOf(config_.root), 0711u);

  EXPECT_EQ(pool_->Kind(), "zfs");
  EXPECT_EQ(pool_->Describe().rfind("zfs dataset " + config_.dataset + " at " + config_.root, 0),
            0u)
      << pool_->Describe();
  PoolCapabilities caps = pool_->Capabilities();
  EXPECT_TRUE(caps.atomic_snapshots);
  EXPECT_TRUE(caps.copy_on_write);
  EXPECT_TRUE(caps.clones_pin_snapshots);
  EXPECT_TRUE(ClosePool(config_).ok());
}

// Given an existing, unmounted dataset with a mountpoint of its own, CreatePool adopts it:
// it mounts it and returns its mountpoint as the root, whatever root was asked for; OpenPool
// then works there. A dataset without a mountpoint is refused.
TEST_F(ZfsPoolTest, CreatePoolAdoptsExistingDataset) {
  std::string dataset = zpool_.name() + "/mine";
  std::string mountpoint = zpool_.dir() + "/elsewhere";
  Zfs({"create", "-o", "mountpoint=" + mountpoint, dataset});
  Zfs({"umount", dataset});
  ASSERT_EQ(Get("mounted", dataset), "no");

  PoolConfig config;
  config.kind = "zfs";
  config.dataset = dataset;
  config.root = zpool_.dir() + "/asked-for";
  Result<PoolConfig> adopted = CreatePool(config, *runner_);
  ASSERT_TRUE(adopted.ok()) << adopted.status().ToString();
  EXPECT_EQ(adopted->root, mountpoint);
  EXPECT_EQ(adopted->dataset, dataset);
  EXPECT_EQ(Get("mounted", dataset), "yes");
  EXPECT_FALSE(PathExists(config.root));
  Result<std::unique_ptr<Pool>> pool = OpenPool(*adopted, *runner_);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  std::string volume = NewVolumeName();
  ASSERT_TRUE((*pool)->CreateVolume(volume, std::nullopt).ok());
  EXPECT_EQ((*pool)->VolumePath(volume), mountpoint + "/" + volume);
  EXPECT_TRUE(IsDirectory(mountpoint + "/" + volume));

  // The root dataset of the zpool was made with mountpoint=none: not adoptable.
  Zfs({"create", zpool_.name() + "/nomount"});
  config.dataset = zpool_.name() + "/nomount";
  Status refused = CreatePool(config, *runner_).status();
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find("mountpoint"), std::string::npos) << refused.message();
}

// Given a dataset several levels below missing parents, CreatePool creates the parents too;
// when it fails after that (the root cannot be a directory: its parent is a file), it destroys
// the dataset and the parents it made, and leaves the parents that existed.
TEST_F(ZfsPoolTest, CreatePoolMakesParentsAndUndoesThemOnFailure) {
  PoolConfig config;
  config.kind = "zfs";
  config.dataset = zpool_.name() + "/a/b/c";
  config.root = zpool_.dir() + "/deep";
  Result<PoolConfig> created = CreatePool(config, *runner_);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(Get("mountpoint", config.dataset), config.root);
  EXPECT_EQ(Get("recordsize", config.dataset), "8192");

  ASSERT_TRUE(WriteFileAtomic(zpool_.dir() + "/file", "x", 0600).ok());
  config.dataset = zpool_.name() + "/a/x/y";
  config.root = zpool_.dir() + "/file/root";
  Status failed = CreatePool(config, *runner_).status();
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(DatasetExists(zpool_.name() + "/a/x/y"));
  EXPECT_FALSE(DatasetExists(zpool_.name() + "/a/x"));
  EXPECT_TRUE(DatasetExists(zpool_.name() + "/a"));
}

// Given a zpool that does not exist, an invalid dataset name, or a missing dataset with no
// root, CreatePool fails (FailedPrecondition / InvalidArgument) and creates nothing; OpenPool
// of a missing dataset, or of one mounted elsewhere than the root, is FailedPrecondition.
TEST_F(ZfsPoolTest, CreateAndOpenPoolRefuseWhatTheyCannotUse) {
  PoolConfig config;
  config.kind = "zfs";
  config.root = zpool_.dir() + "/r";
  config.dataset = "pgbnosuchpool" + RandomHex(2) + "/pgb";
  Status status = CreatePool(config, *runner_).status();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_NE(status.message().find("zpool create"), std::string::npos) << status.message();

  config.dataset = zpool_.name() + "/fresh";
  config.root = "";
  EXPECT_EQ(CreatePool(config, *runner_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(DatasetExists(config.dataset));

  config.root = zpool_.dir() + "/r";
  EXPECT_EQ(OpenPool(config, *runner_).status().code(), StatusCode::kFailedPrecondition);

  PoolConfig moved = config_;
  moved.root = zpool_.dir() + "/not-there";
  status = OpenPool(moved, *runner_).status();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition) << status.ToString();
  EXPECT_NE(status.message().find("mountpoint"), std::string::npos) << status.message();
}

// Given the pool dataset and a volume unmounted (as after a restart of zfs-fuse without
// `zfs mount -a`), OpenPool mounts both, and the volume's files are back.
TEST_F(ZfsPoolTest, OpenPoolMountsWhatIsNotMounted) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(volume) + "/f", "kept", 0600).ok());
  pool_.reset();
  Zfs({"umount", config_.dataset + "/" + volume});
  Zfs({"umount", config_.dataset});
  ASSERT_EQ(Get("mounted", config_.dataset), "no");

  Result<std::unique_ptr<Pool>> pool = OpenPool(config_, *runner_);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  EXPECT_EQ(Get("mounted", config_.dataset), "yes");
  EXPECT_EQ(Get("mounted", config_.dataset + "/" + volume), "yes");
  EXPECT_EQ(Slurp((*pool)->VolumePath(volume) + "/f"), "kept");
}

// Given a fresh pool, CreateVolume makes a child dataset mounted at <root>/<volume> whose root
// directory has mode 0700 and the requested owner, with 8k records; it is listed, and creating
// it again is AlreadyExists.
TEST_F(ZfsPoolTest, CreateVolumeMakesPrivateDataset) {
  std::string volume = NewVolumeName();
  Status created = pool_->CreateVolume(volume, FileOwner{65534, 65534});
  ASSERT_TRUE(created.ok()) << created.ToString();

  std::string path = pool_->VolumePath(volume);
  EXPECT_EQ(path, config_.root + "/" + volume);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  std::string dataset = config_.dataset + "/" + volume;
  EXPECT_EQ(Get("mounted", dataset), "yes");
  EXPECT_EQ(Get("mountpoint", dataset), path);
  EXPECT_EQ(Get("recordsize", dataset), "8192");

  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{volume});
  Status again = pool_->CreateVolume(volume, std::nullopt);
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
}

// Given a volume with a file, a snapshot and a clone of it: the clone starts with the
// snapshot's content, and later writes to the clone or to the source show up only there.
// Snapshot and clone of missing things are NotFound; onto existing names AlreadyExists.
TEST_F(ZfsPoolTest, CloneHasSnapshotContentAndWritesStayApart) {
  std::string source = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(source, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(source) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(source, snapshot).ok());
  Status cloned = pool_->CloneSnapshot(source, snapshot, clone);
  ASSERT_TRUE(cloned.ok()) << cloned.ToString();
  EXPECT_EQ(Get("origin", config_.dataset + "/" + clone),
            config_.dataset + "/" + source + "@" + snapshot);
  EXPECT_EQ(Slurp(pool_->VolumePath(clone) + "/f"), "one");

  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(clone) + "/f", "two", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(source) + "/f", "three", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(clone) + "/new", "x", 0600).ok());
  EXPECT_EQ(Slurp(pool_->VolumePath(clone) + "/f"), "two");
  EXPECT_EQ(Slurp(pool_->VolumePath(source) + "/f"), "three");
  EXPECT_FALSE(PathExists(pool_->VolumePath(source) + "/new"));

  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{snapshot});
  std::vector<std::string> expected{source, clone};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*pool_->ListVolumes(), expected);

  std::string missing = NewVolumeName();
  EXPECT_EQ(pool_->CreateSnapshot(missing, NewSnapshotName()).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->CloneSnapshot(source, NewSnapshotName(), NewVolumeName()).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(pool_->CreateSnapshot(source, snapshot).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(pool_->CloneSnapshot(source, snapshot, source).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(pool_->ListVolumes()->size(), 2u);
  EXPECT_EQ(pool_->ListSnapshots()->size(), 1u);
}

// Given a snapshot, it cannot be changed: nothing can be written under its path (zfs-fuse has
// no .zfs directory, OpenZFS's is read-only), ZFS reports it as a snapshot, and after the
// volume changes a new clone of the snapshot still shows the old content.
TEST_F(ZfsPoolTest, SnapshotIsReadOnly) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(volume) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());

  std::string dir = pool_->SnapshotPath(volume, snapshot);
  EXPECT_EQ(dir, config_.root + "/" + volume + "/.zfs/snapshot/" + snapshot);
  int fd = ::open((dir + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  EXPECT_LT(fd, 0);
  if (fd >= 0) ::close(fd);
  EXPECT_FALSE(WriteFileAtomic(dir + "/f", "two", 0600).ok());
  EXPECT_EQ(Get("type", config_.dataset + "/" + volume + "@" + snapshot), "snapshot");

  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(volume) + "/f", "changed", 0600).ok());
  std::string clone = NewVolumeName();
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());
  EXPECT_EQ(Slurp(pool_->VolumePath(clone) + "/f"), "one");
}

// Given a snapshot with a clone, DestroySnapshot is FailedPrecondition naming the clone and
// keeps the snapshot; once the clone is gone it succeeds, and again (missing) is OK.
TEST_F(ZfsPoolTest, DestroySnapshotWithCloneIsFailedPrecondition) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());

  Status refused = pool_->DestroySnapshot(volume, snapshot);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find(clone), std::string::npos) << refused.message();
  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{snapshot});

  ASSERT_TRUE(pool_->DestroyVolume(clone).ok());
  Status destroyed = pool_->DestroySnapshot(volume, snapshot);
  EXPECT_TRUE(destroyed.ok()) << destroyed.ToString();
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
  EXPECT_TRUE(pool_->DestroySnapshot(volume, snapshot).ok());
  EXPECT_TRUE(pool_->DestroyVolume(clone).ok());
  EXPECT_TRUE(pool_->DestroyVolume(NewVolumeName()).ok());
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{volume});
}

// Given volume A with 4 MiB, its snapshot S and a clone B that wrote a file of its own,
// DestroyVolume(A) retires A (unmounted, hidden from ListVolumes) because S is still there: B
// keeps its data, S still serves SnapshotSpace and CloneSnapshot (C gets A's old data, also with
// no volume hint), and DestroySnapshot is refused while clones depend on it. Once they are gone,
// destroying S takes the retired A with it.
TEST_F(ZfsPoolTest, DestroyVolumeRetiresItWhileSnapshotsRemain) {
  std::string a = NewVolumeWithData(4 * kMiB);
  std::string s = NewSnapshotName(), b = NewVolumeName(), c = NewVolumeName();
  ASSERT_TRUE(pool_->CreateSnapshot(a, s).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(a, s, b).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(b) + "/own", "b", 0600).ok());

  Status destroyed = pool_->DestroyVolume(a);
  ASSERT_TRUE(destroyed.ok()) << destroyed.ToString();
  EXPECT_TRUE(DatasetExists(config_.dataset + "/" + a)) << "retired, not destroyed";
  EXPECT_FALSE(PathExists(pool_->VolumePath(a)));
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{b});
  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{s});
  EXPECT_EQ(Slurp(pool_->VolumePath(b) + "/own"), "b");
  EXPECT_EQ(Slurp(pool_->VolumePath(b) + "/data").size(), 4 * kMiB);

  Result<SpaceUsage> space = pool_->SnapshotSpace(a, s);
  ASSERT_TRUE(space.ok()) << space.status().ToString();
  EXPECT_GE(space->logical_bytes, 4 * kMiB);
  Status cloned = pool_->CloneSnapshot("", s, c);
  ASSERT_TRUE(cloned.ok()) << cloned.ToString();
  EXPECT_EQ(Slurp(pool_->VolumePath(c) + "/data"), Slurp(pool_->VolumePath(b) + "/data"));
  EXPECT_FALSE(PathExists(pool_->VolumePath(c) + "/own"));

  Status refused = pool_->DestroySnapshot(a, s);
  EXPECT_EQ(refused.code(), StatusCode::kFailedPrecondition) << refused.ToString();
  EXPECT_NE(refused.message().find(c), std::string::npos) << refused.message();
  ASSERT_TRUE(pool_->DestroyVolume(b).ok());
  ASSERT_TRUE(pool_->DestroyVolume(c).ok());
  Status gone = pool_->DestroySnapshot("", s);
  EXPECT_TRUE(gone.ok()) << gone.ToString();
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
  EXPECT_FALSE(DatasetExists(config_.dataset + "/" + a)) << "collected with its last snapshot";
  EXPECT_TRUE(pool_->ListVolumes()->empty());
}

// Given volume A with snapshots S1 (cloned to B), S2 (cloned to C) and S3 (no clone),
// DestroyVolume(A) keeps every snapshot and both clones with their data; A goes only when the
// last of its snapshots is destroyed, and not before.
TEST_F(ZfsPoolTest, RetiredVolumeGoesWithItsLastSnapshot) {
  std::string a = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(a, std::nullopt).ok());
  std::string s1 = NewSnapshotName(), s2 = NewSnapshotName(), s3 = NewSnapshotName();
  std::string b = NewVolumeName(), c = NewVolumeName();
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(a) + "/f", "1", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(a, s1).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(a) + "/f", "2", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(a, s2).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(a) + "/f", "3", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(a, s3).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(a, s1, b).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(a, s2, c).ok());

  ASSERT_TRUE(pool_->DestroyVolume(a).ok());
  std::vector<std::string> volumes{b, c}, snapshots{s1, s2, s3};
  std::sort(volumes.begin(), volumes.end());
  std::sort(snapshots.begin(), snapshots.end());
  EXPECT_EQ(*pool_->ListVolumes(), volumes);
  EXPECT_EQ(*pool_->ListSnapshots(), snapshots);
  EXPECT_EQ(Slurp(pool_->VolumePath(b) + "/f"), "1");
  EXPECT_EQ(Slurp(pool_->VolumePath(c) + "/f"), "2");

  ASSERT_TRUE(pool_->DestroySnapshot(a, s3).ok());
  ASSERT_TRUE(pool_->DestroyVolume(b).ok());
  ASSERT_TRUE(pool_->DestroySnapshot(a, s1).ok());
  EXPECT_TRUE(DatasetExists(config_.dataset + "/" + a)) << "s2 still holds it";
  ASSERT_TRUE(pool_->DestroyVolume(c).ok());
  ASSERT_TRUE(pool_->DestroySnapshot(a, s2).ok());
  EXPECT_FALSE(DatasetExists(config_.dataset + "/" + a));
  EXPECT_TRUE(pool_->ListVolumes()->empty());
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
}

// Given a volume with a file held open (as by a PostgreSQL still running), DestroyVolume gives
// up after retrying briefly with Unavailable, and the volume stays mounted with its data; once
// the file is closed it goes.
TEST_F(ZfsPoolTest, DestroyVolumeInUseIsUnavailableAndKeepsItMounted) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  std::string file = pool_->VolumePath(volume) + "/f";
  ASSERT_TRUE(WriteFileAtomic(file, "kept", 0600).ok());
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);

  Status busy = pool_->DestroyVolume(volume);
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_EQ(Get("mounted", config_.dataset + "/" + volume), "yes");
  EXPECT_EQ(Slurp(file), "kept");

  ::close(fd);
  Status destroyed = pool_->DestroyVolume(volume);
  EXPECT_TRUE(destroyed.ok()) << destroyed.ToString();
  EXPECT_TRUE(pool_->ListVolumes()->empty());
}

// Given a volume holding 20 MiB of incompressible data: it counts ~20 MiB logical; a fresh
// clone of its snapshot counts ~20 MiB logical but almost nothing exclusive, and so does the
// snapshot; after 5 MiB of the clone are rewritten the clone owns ~5 MiB exclusively. Usage
// reports the dataset's capacity, and the writes lower its free space.
TEST_F(ZfsPoolTest, SizesFollowWrites) {
  Result<PoolUsage> empty = pool_->Usage();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_GT(empty->size_bytes, 150 * kMiB);
  EXPECT_LE(empty->size_bytes, 256 * kMiB);
  EXPECT_EQ(empty->used_bytes + empty->free_bytes, empty->size_bytes);

  std::string volume = NewVolumeWithData(20 * kMiB);
  std::string snapshot = NewSnapshotName(), clone = NewVolumeName();
  SyncPool();
  Result<SpaceUsage> before = pool_->VolumeSpace(volume);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_NEAR(static_cast<double>(before->logical_bytes), 20.0 * kMiB, 1.0 * kMiB);
  EXPECT_NEAR(static_cast<double>(before->exclusive_bytes), 20.0 * kMiB, 1.0 * kMiB);

  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());
  SyncPool();
  Result<SpaceUsage> fresh = pool_->VolumeSpace(clone);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_NEAR(static_cast<double>(fresh->logical_bytes), 20.0 * kMiB, 1.0 * kMiB);
  EXPECT_LT(fresh->exclusive_bytes, 512 * 1024u);
  Result<SpaceUsage> snap = pool_->SnapshotSpace(volume, snapshot);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_NEAR(static_cast<double>(snap->logical_bytes), 20.0 * kMiB, 1.0 * kMiB);
  EXPECT_LT(snap->exclusive_bytes, 512 * 1024u);

  WriteRandom(pool_->VolumePath(clone) + "/data", 8 * kMiB, 5 * kMiB, /*seed=*/2);
  SyncPool();
  Result<SpaceUsage> rewritten = pool_->VolumeSpace(clone);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status().ToString();
  EXPECT_NEAR(static_cast<double>(rewritten->logical_bytes), 20.0 * kMiB, 1.0 * kMiB);
  EXPECT_NEAR(static_cast<double>(rewritten->exclusive_bytes), 5.0 * kMiB, 1.0 * kMiB);
  // The rewrite frees nothing of the snapshot's blocks: the source volume still shares them.
  EXPECT_LT(pool_->SnapshotSpace(volume, snapshot)->exclusive_bytes, 512 * 1024u);

  Result<PoolUsage> after = pool_->Usage();
  ASSERT_TRUE(after.ok());
  EXPECT_NEAR(static_cast<double>(empty->free_bytes - after->free_bytes), 25.0 * kMiB, 3.0 * kMiB);
  EXPECT_EQ(pool_->VolumeSpace(NewVolumeName()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->SnapshotSpace(volume, NewSnapshotName()).status().code(), StatusCode::kNotFound);
}

// True when the pool's datasets are served by zfs-fuse (mounted through FUSE).
bool IsZfsFuse(const std::string& dir) {
  struct statfs st {};
  return ::statfs(dir.c_str(), &st) == 0 &&
         st.f_type == static_cast<decltype(st.f_type)>(FUSE_SUPER_MAGIC);
}

// Given a pool in zfs-fuse, whose daemon dies when a dataset reaches its quota: the pool says
// it cannot limit or reserve (capabilities, Describe with the reason), every space call is
// NotSupported saying why, and none of them runs a zfs command.
TEST_F(ZfsPoolTest, ZfsFuseHasNoSpaceLimits) {
  if (!IsZfsFuse(config_.root)) GTEST_SKIP() << "OpenZFS: see the SpaceLimit tests";
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  EXPECT_FALSE(pool_->Capabilities().space_limits);
  EXPECT_FALSE(pool_->Capabilities().space_reservations);
  EXPECT_NE(pool_->Describe().find("(no per-branch space limits: zfs-fuse's daemon dies"),
            std::string::npos)
      << pool_->Describe();
  runner_->commands_ran_.clear();
  Status set = pool_->SetSpaceLimit(volume, 64 * kMiB);
  EXPECT_EQ(set.code(), StatusCode::kNotSupported);
  EXPECT_NE(set.message().find("zfs-fuse"), std::string::npos) << set.message();
  EXPECT_EQ(pool_->GetSpaceLimit(volume).status().code(), StatusCode::kNotSupported);
  EXPECT_EQ(pool_->ReserveSpace(volume, 64 * kMiB).code(), StatusCode::kNotSupported);
  EXPECT_TRUE(runner_->commands_ran_.empty());
  EXPECT_EQ(Get("quota", config_.dataset + "/" + volume), "0");
  EXPECT_EQ(Get("refreservation", config_.dataset + "/" + volume), "0");
}

// On OpenZFS (skipped in zfs-fuse, whose daemon such a test would kill): given a volume
// holding 32 MiB, its snapshot and two clones, one limited to 24 MiB (its `quota`): writing into
// the limited clone fails with EDQUOT at about 24 MiB, while the other clone writes 32 MiB. The
// limit reads back with the clone's `used`, which does not count the 32 MiB it shares with its
// origin. The pool says it can limit and reserve.
TEST_F(ZfsPoolTest, SpaceLimitStopsOnlyThatVolume) {
  if (IsZfsFuse(config_.root)) GTEST_SKIP() << "zfs-fuse dies at a quota";
  EXPECT_TRUE(pool_->Capabilities().space_limits);
  EXPECT_TRUE(pool_->Capabilities().space_reservations);
  std::string source = NewVolumeWithData(32 * kMiB);
  std::string limited = NewCloneOf(source), free = NewCloneOf(source);
  Status set = pool_->SetSpaceLimit(limited, 24 * kMiB);
  ASSERT_TRUE(set.ok()) << set.ToString();
  EXPECT_EQ(Get("quota", config_.dataset + "/" + limited), std::to_string(24 * kMiB));
  SyncPool();
  Result<SpaceLimit> fresh = pool_->GetSpaceLimit(limited);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->limit_bytes, 24 * kMiB);
  EXPECT_LT(fresh->used_bytes, kMiB);

  storage_test::ExpectWritesStopAtLimit(*pool_, limited, 24 * kMiB);
  WriteOutcome other = WriteUntilError(pool_->VolumePath(free) + "/new", 32 * kMiB);
  EXPECT_EQ(other.error, 0) << std::strerror(other.error);

  SyncPool();
  Result<SpaceLimit> full = pool_->GetSpaceLimit(limited);
  ASSERT_TRUE(full.ok());
  EXPECT_NEAR(static_cast<double>(full->used_bytes), 24.0 * kMiB, 4.0 * kMiB);
  EXPECT_FALSE(pool_->GetSpaceLimit(free)->limit_bytes);

  // Removed, the limit reads back unset and the clone writes again.
  ASSERT_TRUE(pool_->SetSpaceLimit(limited, std::nullopt).ok());
  EXPECT_FALSE(pool_->GetSpaceLimit(limited)->limit_bytes);
  EXPECT_EQ(WriteUntilError(pool_->VolumePath(limited) + "/more", 8 * kMiB).error, 0);
}

// On OpenZFS: given a limited clone whose dataset is unmounted and mounted again, and a pool
// opened anew, the limit reads back the same and is still enforced: it is a property of the
// dataset.
TEST_F(ZfsPoolTest, SpaceLimitSurvivesRemount) {
  if (IsZfsFuse(config_.root)) GTEST_SKIP() << "zfs-fuse dies at a quota";
  std::string clone = NewCloneOf(NewVolumeWithData(4 * kMiB));
  ASSERT_TRUE(pool_->SetSpaceLimit(clone, 16 * kMiB).ok());
  Zfs({"umount", config_.dataset + "/" + clone});
  ASSERT_FALSE(PathExists(pool_->VolumePath(clone) + "/data"));
  Result<std::unique_ptr<Pool>> reopened = OpenPool(config_, *runner_);  // mounts it
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  pool_ = std::move(reopened).value();
  ASSERT_TRUE(PathExists(pool_->VolumePath(clone) + "/data"));
  EXPECT_EQ(pool_->GetSpaceLimit(clone)->limit_bytes, 16 * kMiB);
  storage_test::ExpectWritesStopAtLimit(*pool_, clone, 16 * kMiB);
}

// On OpenZFS: given main (a volume without a limit) with ReserveSpace(64 MiB): its
// `refreservation` holds the room, so the pool's free space drops by about 64 MiB for every
// other dataset, while main itself can still write those 64 MiB.
TEST_F(ZfsPoolTest, ReserveSpaceHoldsRoomForMain) {
  if (IsZfsFuse(config_.root)) GTEST_SKIP() << "no reservations in zfs-fuse";
  std::string main = NewVolumeWithData(8 * kMiB);
  std::string clone = NewCloneOf(main);
  SyncPool();
  const std::string clone_dataset = config_.dataset + "/" + clone;
  uint64_t before = std::stoull(Get("available", clone_dataset));
  Status reserved = pool_->ReserveSpace(main, 64 * kMiB);
  ASSERT_TRUE(reserved.ok()) << reserved.ToString();
  EXPECT_EQ(Get("refreservation", config_.dataset + "/" + main), std::to_string(64 * kMiB));
  uint64_t after = std::stoull(Get("available", clone_dataset));
  EXPECT_NEAR(static_cast<double>(before - after), 64.0 * kMiB, 4.0 * kMiB);
  WriteOutcome written = WriteUntilError(pool_->VolumePath(main) + "/new", 56 * kMiB);
  EXPECT_EQ(written.error, 0) << std::strerror(written.error);

  // More than the pool has is ResourceExhausted, and changes nothing.
  Status too_much = pool_->ReserveSpace(main, 4096 * kMiB);
  EXPECT_EQ(too_much.code(), StatusCode::kResourceExhausted) << too_much.ToString();
  EXPECT_EQ(Get("refreservation", config_.dataset + "/" + main), std::to_string(64 * kMiB));
  EXPECT_EQ(pool_->ReserveSpace(NewVolumeName(), kMiB).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->SetSpaceLimit(NewVolumeName(), kMiB).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->GetSpaceLimit(NewVolumeName()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->SetSpaceLimit(clone, 0).code(), StatusCode::kInvalidArgument);
}

// Given names that are not pool names (path tricks, options, wrong shape, the other kind),
// every call is InvalidArgument and no command runs at all.
TEST_F(ZfsPoolTest, InvalidNamesAreRejectedBeforeAnyCommand) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  runner_->commands_ran_.clear();

  const std::vector<std::string> bad_volumes = {"../etc",
                                                "..",
                                                "",
                                                "v123",
                                                "-r",
                                                "V0123456789ABCDEF",
                                                "v0123456789abcdeg",
                                                "v0123456789abcdef0",
                                                snapshot,
                                                "v0123456789abcde/",
                                                volume + "@" + snapshot};
  const std::vector<std::string> bad_snapshots = {
      "s123", "-R", "S0123456789ABCDEF", volume, snapshot + "/x", "@" + snapshot};
  storage_test::ExpectBadNamesRefused(*pool_, volume, snapshot, bad_volumes, bad_snapshots);
  for (const std::string& bad : bad_snapshots) (void)pool_->SnapshotPath(volume, bad);
  Status s = pool_->CreateVolume("../etc", std::nullopt);
  EXPECT_NE(s.message().find("../etc"), std::string::npos) << s.message();
  EXPECT_TRUE(runner_->commands_ran_.empty()) << ::testing::PrintToString(runner_->commands_ran_);
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{volume});
  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{snapshot});

  // In snapshot calls the volume is only a hint (pool.h): a malformed one is not used — the
  // snapshot is found by its name — and never reaches a command line.
  for (const std::string bad : {"../etc", "v0123456789abcde/", "", "x;reboot"}) {
    SCOPED_TRACE("hint \"" + bad + "\"");
    runner_->commands_ran_.clear();
    EXPECT_TRUE(pool_->SnapshotSpace(bad, snapshot).ok());
    for (const auto& argv : runner_->commands_ran_) {
      for (const auto& arg : argv) {
        if (!bad.empty()) {
          EXPECT_EQ(arg.find(bad), std::string::npos) << arg;
        }
      }
    }
  }
}

// ---- Quarantine on a real ZFS ---------------------------------------------------------------

// Given the shared lifecycle (pool_testutil.h) on zfs-fuse: everything behaves, and a malformed
// name runs no command at all.
TEST_F(ZfsPoolTest, QuarantineLifecycle) {
  storage_test::ExpectQuarantineLifecycle(*pool_);
  runner_->commands_ran_.clear();
  for (const std::string bad : {"-R", "../x", "v0123456789abcdef@s0123456789abcdef", ""}) {
    EXPECT_EQ(pool_->Quarantine(bad, storage_test::At("2026-01-01T00:00:00Z")).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(pool_->Release(bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool_->Purge(bad).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(runner_->commands_ran_.empty()) << ::testing::PrintToString(runner_->commands_ran_);
}

// Given volume V (0700, owned by an unprivileged account) with snapshots S1 and S2: quarantining
// V marks it (the property set on V itself) and moves its mountpoint to
// <root>/quarantine/V@<since>, where its files stay readable with their owner; its snapshots,
// which inherit V's user properties, stay live and listed. Quarantining S1 marks S1 and mounts a
// read-only clone <dataset>/S1 at <root>/quarantine/S1@<since>. Release takes all of it back:
// V mounted at <root>/V again with mountpoint inherited, no mark left, no reading clone.
TEST_F(ZfsPoolTest, QuarantineMarksAndMountsAside) {
  std::string v = NewVolumeName(), s1 = NewSnapshotName(), s2 = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(v, FileOwner{65534, 65534}).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(v) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(v, s1).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(v, s2).ok());
  const std::string dataset = config_.dataset + "/" + v;

  ASSERT_TRUE(pool_->Quarantine(v, storage_test::At("2026-05-01T00:00:00Z")).ok());
  const std::string v_path = config_.root + "/quarantine/" + v + "@2026-05-01T00:00:00.000Z";
  EXPECT_EQ(Zfs({"get", "-H", "-o", "value,source", "pgbranch:quarantined", dataset}),
            "2026-05-01T00:00:00.000Z\tlocal");
  EXPECT_EQ(Get("mountpoint", dataset), v_path);
  EXPECT_EQ(Get("mounted", dataset), "yes");
  EXPECT_EQ(ModeOf(config_.root + "/quarantine"), 0700u);
  EXPECT_EQ(ModeOf(v_path), 0700u);
  EXPECT_EQ(Slurp(v_path + "/f"), "one");
  EXPECT_FALSE(PathExists(pool_->VolumePath(v)));
  EXPECT_TRUE(pool_->ListVolumes()->empty());
  EXPECT_EQ(*pool_->ListSnapshots(), storage_test::Sorted({s1, s2}))
      << "inherited marks do not count";

  Status quarantined = pool_->Quarantine(s1, storage_test::At("2026-05-02T00:00:00Z"));
  ASSERT_TRUE(quarantined.ok()) << quarantined.ToString();
  const std::string s1_path = config_.root + "/quarantine/" + s1 + "@2026-05-02T00:00:00.000Z";
  const std::string reader = config_.dataset + "/" + s1;
  EXPECT_EQ(Get("origin", reader), dataset + "@" + s1);
  EXPECT_EQ(Get("mountpoint", reader), s1_path);
  EXPECT_EQ(Slurp(s1_path + "/f"), "one");
  // readonly=on: zfs-fuse reports it as "off" (source "temporary"), yet refuses the write.
  EXPECT_FALSE(WriteFileAtomic(s1_path + "/f", "two", 0600).ok());
  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{s2});
  EXPECT_TRUE(pool_->ListVolumes()->empty()) << "the reading clone is no volume";
  Result<std::vector<QuarantinedObject>> held = pool_->ListQuarantined();
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_EQ(held->size(), 2u);
  EXPECT_EQ((*held)[0].path, v_path);
  EXPECT_EQ((*held)[1].path, s1_path);

  ASSERT_TRUE(pool_->Release(s1).ok());
  Status released = pool_->Release(v);
  ASSERT_TRUE(released.ok()) << released.ToString();
  EXPECT_FALSE(DatasetExists(reader));
  EXPECT_EQ(Zfs({"get", "-H", "-o", "source", "mountpoint", dataset}),
            "inherited from " + config_.dataset);
  EXPECT_EQ(Zfs({"get", "-H", "-o", "value", "-s", "local", "-r", "pgbranch:quarantined",
                 config_.dataset}),
            "");
  EXPECT_EQ(Get("mounted", dataset), "yes");
  EXPECT_EQ(ModeOf(pool_->VolumePath(v)), 0700u);
  EXPECT_EQ(Slurp(pool_->VolumePath(v) + "/f"), "one");
  EXPECT_EQ(*pool_->ListSnapshots(), storage_test::Sorted({s1, s2}));
  EXPECT_TRUE(storage_test::DirEntries(config_.root + "/quarantine").empty());
}

// Given volume A, its snapshot S and a clone B of S (which pins S): A can be quarantined (B and
// S stay live and usable). Purging A cannot destroy it while S remains, nor take S along: A is
// retired (kept, hidden, unmounted) and leaves the quarantine list. S can be quarantined too,
// but Purge of S is FailedPrecondition naming B, and leaves S quarantined and readable; once B
// is gone, Purge of S destroys S and the retired A with it.
TEST_F(ZfsPoolTest, QuarantineWithClonesPinningSnapshots) {
  std::string a = NewVolumeWithData(2 * kMiB);
  std::string s = NewSnapshotName(), b = NewVolumeName(), c = NewVolumeName();
  ASSERT_TRUE(pool_->CreateSnapshot(a, s).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(a, s, b).ok());

  ASSERT_TRUE(pool_->Quarantine(a, storage_test::At("2026-05-01T00:00:00Z")).ok());
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{b});
  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{s});
  EXPECT_EQ(Slurp(pool_->VolumePath(b) + "/data").size(), 2 * kMiB);
  ASSERT_TRUE(pool_->CloneSnapshot("", s, c).ok());
  ASSERT_TRUE(pool_->DestroyVolume(c).ok());

  Status purged = pool_->Purge(a);
  ASSERT_TRUE(purged.ok()) << purged.ToString();
  EXPECT_TRUE(DatasetExists(config_.dataset + "/" + a)) << "retired: S still needs it";
  EXPECT_EQ(Get("pgbranch:retired", config_.dataset + "/" + a), "yes");
  EXPECT_EQ(Get("mounted", config_.dataset + "/" + a), "no");
  EXPECT_TRUE(pool_->ListQuarantined()->empty());
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{b});
  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{s});
  EXPECT_EQ(pool_->Release(a).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->Quarantine(a, storage_test::At("2026-05-01T00:00:00Z")).code(),
            StatusCode::kNotFound)
      << "a retired volume is not live";

  ASSERT_TRUE(pool_->Quarantine(s, storage_test::At("2026-05-02T00:00:00Z")).ok());
  Status pinned = pool_->Purge(s);
  EXPECT_EQ(pinned.code(), StatusCode::kFailedPrecondition) << pinned.ToString();
  EXPECT_NE(pinned.message().find(b), std::string::npos) << pinned.message();
  ASSERT_EQ(pool_->ListQuarantined()->size(), 1u);
  EXPECT_EQ(Slurp(pool_->ListQuarantined()->at(0).path + "/data").size(), 2 * kMiB);

  ASSERT_TRUE(pool_->DestroyVolume(b).ok());
  purged = pool_->Purge(s);
  ASSERT_TRUE(purged.ok()) << purged.ToString();
  EXPECT_FALSE(DatasetExists(config_.dataset + "/" + a)) << "went with its last snapshot";
  EXPECT_FALSE(DatasetExists(config_.dataset + "/" + s)) << "the reading clone";
  EXPECT_TRUE(pool_->ListQuarantined()->empty());
  EXPECT_TRUE(pool_->ListVolumes()->empty());
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
}

// Given what a crash mid-Quarantine leaves, played by hand: volume V marked but still mounted
// at <root>/V, snapshot S marked but with no reading clone. Both are quarantined already (out of
// the lists, listed as quarantined: V readable where it is, S with no path), and Quarantine
// again finishes each, keeping the time of the mark.
TEST_F(ZfsPoolTest, InterruptedQuarantineIsFinished) {
  std::string v = NewVolumeName(), s = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(v, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(v) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(v, s).ok());
  Zfs({"set", "pgbranch:quarantined=2026-05-01T00:00:00.000Z", config_.dataset + "/" + v});
  Zfs({"set", "pgbranch:quarantined=2026-05-02T00:00:00.000Z",
       config_.dataset + "/" + v + "@" + s});

  EXPECT_TRUE(pool_->ListVolumes()->empty());
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
  Result<std::vector<QuarantinedObject>> held = pool_->ListQuarantined();
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_EQ(held->size(), 2u);
  EXPECT_EQ((*held)[0].path, pool_->VolumePath(v));
  EXPECT_EQ((*held)[1].path, "");
  EXPECT_TRUE(pool_->DestroyVolume(v).ok());
  EXPECT_TRUE(pool_->DestroySnapshot(v, s).ok());

  ASSERT_TRUE(pool_->Quarantine(v, storage_test::At("2026-06-01T00:00:00Z")).ok());
  ASSERT_TRUE(pool_->Quarantine(s, storage_test::At("2026-06-01T00:00:00Z")).ok());
  held = pool_->ListQuarantined();
  ASSERT_EQ(held->size(), 2u);
  EXPECT_EQ((*held)[0].since, storage_test::At("2026-05-01T00:00:00Z"));
  EXPECT_EQ((*held)[0].path, config_.root + "/quarantine/" + v + "@2026-05-01T00:00:00.000Z");
  EXPECT_EQ((*held)[1].path, config_.root + "/quarantine/" + s + "@2026-05-02T00:00:00.000Z");
  EXPECT_EQ(Slurp((*held)[0].path + "/f"), "one");
  EXPECT_EQ(Slurp((*held)[1].path + "/f"), "one");

  // Half purged (Purge stopped after canmount=off): Release refuses, Purge finishes.
  Zfs({"set", "canmount=off", config_.dataset + "/" + v});
  EXPECT_EQ(pool_->Release(v).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(pool_->Quarantine(v, storage_test::At("2026-06-01T00:00:00Z")).code(),
            StatusCode::kFailedPrecondition);
  Status purged = pool_->Purge(v);
  ASSERT_TRUE(purged.ok()) << purged.ToString();
  EXPECT_TRUE(DatasetExists(config_.dataset + "/" + v)) << "retired: its snapshot remains";
  ASSERT_TRUE(pool_->Purge(s).ok());
  EXPECT_FALSE(DatasetExists(config_.dataset + "/" + v));
}

// Given a volume with a file held open (a server still running), Quarantine is Unavailable and
// the volume stays live, unmarked and mounted where it was; once the file is closed it works.
TEST_F(ZfsPoolTest, QuarantineOfVolumeInUseIsUnavailableAndKeepsItLive) {
  std::string v = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(v, std::nullopt).ok());
  std::string file = pool_->VolumePath(v) + "/f";
  ASSERT_TRUE(WriteFileAtomic(file, "kept", 0600).ok());
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);

  Status busy = pool_->Quarantine(v, storage_test::At("2026-05-01T00:00:00Z"));
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{v});
  EXPECT_TRUE(pool_->ListQuarantined()->empty());
  EXPECT_EQ(Get("mountpoint", config_.dataset + "/" + v), pool_->VolumePath(v));
  EXPECT_EQ(Slurp(file), "kept");

  ::close(fd);
  Status quarantined = pool_->Quarantine(v, storage_test::At("2026-05-01T00:00:00Z"));
  EXPECT_TRUE(quarantined.ok()) << quarantined.ToString();
  EXPECT_TRUE(pool_->ListVolumes()->empty());
}

// ---- Tests with a fake runner: exact argv, error mapping, no ZFS needed --------------------

// A pool on dataset tank/pgb at a temporary root, opened through a FakeProcessRunner whose
// default answers play a healthy ZFS: `zfs list` of the dataset says it is mounted at the root,
// and `zfs create`/`zfs clone` "mount" the new volume by making its directory.
class ZfsPoolFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-zfs-fake-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    runner_.respond_ = [this](const Argv& argv) -> Result<CommandResult> {
      if (!scripted_.empty()) {
        CommandResult next = scripted_.front();
        scripted_.pop_front();
        return next;
      }
      return Healthy(argv);
    };
    config_.kind = "zfs";
    config_.dataset = "tank/pgb";
    config_.root = root_;
    Result<std::unique_ptr<Pool>> pool = OpenPool(config_, runner_);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    pool_ = std::move(pool).value();
    EXPECT_EQ(runner_.commands_ran_,
              (std::vector<Argv>{{"zfs", "list", "-H", "-o", "name,mountpoint,mounted,canmount",
                                  "-t", "filesystem", "-r", "tank/pgb"}}));
    runner_.commands_ran_.clear();
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  CommandResult Healthy(const Argv& argv) {
    if (argv.size() > 1 && argv[1] == "list") {
      return Exited(0, "tank/pgb\t" + root_ + "\tyes\ton\n");
    }
    if (argv.size() > 1 && argv[1] == "get" &&
        std::find(argv.begin(), argv.end(), "pgbranch:retired") != argv.end()) {
      return Exited(0, "-\n");
    }
    if (argv.size() > 1 && (argv[1] == "create" || argv[1] == "clone")) {
      std::string dataset = argv.back();
      ::mkdir((root_ + "/" + dataset.substr(dataset.rfind('/') + 1)).c_str(), 0755);
    }
    return Exited(0);
  }

  std::string root_;
  FakeProcessRunner runner_;
  std::deque<CommandResult> scripted_;  // answers before the Healthy ones, in order
  PoolConfig config_;
  std::unique_ptr<Pool> pool_;
};

// Given a healthy ZFS, CreateVolume, CreateSnapshot and CloneSnapshot each run exactly one
// command, with exactly these argv; DestroyVolume and DestroySnapshot first ask whether the
// object is quarantined (then it is left alone), and DestroySnapshot afterwards whether its
// volume was retired (a retired volume goes with its last snapshot).
TEST_F(ZfsPoolFakeTest, CommandsHaveExactArgv) {
  std::string v = "v0123456789abcdef", s = "s0123456789abcdef", c = "vfedcba9876543210";
  ASSERT_TRUE(pool_->CreateVolume(v, std::nullopt).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(v, s).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(v, s, c).ok());
  ASSERT_TRUE(pool_->DestroySnapshot(c, s).ok());  // plays a snapshot cloned nowhere
  ASSERT_TRUE(pool_->DestroyVolume(c).ok());
  EXPECT_EQ(
      runner_.commands_ran_,
      (std::vector<Argv>{
          {"zfs", "create", "-o", "recordsize=8k", "-o", "compression=lz4",
           "tank/pgb/v0123456789abcdef"},
          {"zfs", "snapshot", "tank/pgb/v0123456789abcdef@s0123456789abcdef"},
          {"zfs", "clone", "tank/pgb/v0123456789abcdef@s0123456789abcdef",
           "tank/pgb/vfedcba9876543210"},
          {"zfs", "get", "-H", "-o", "property,value,source", kStateProperties,
           "tank/pgb/vfedcba9876543210@s0123456789abcdef"},
          {"zfs", "destroy", "tank/pgb/vfedcba9876543210@s0123456789abcdef"},
          {"zfs", "get", "-H", "-o", "value", "pgbranch:retired", "tank/pgb/vfedcba9876543210"},
          {"zfs", "get", "-H", "-o", "property,value,source", kStateProperties,
           "tank/pgb/vfedcba9876543210"},
          {"zfs", "destroy", "tank/pgb/vfedcba9876543210"},
      }));
  EXPECT_EQ(ModeOf(pool_->VolumePath(v)), 0700u);
}

// Given a live, mounted volume and a live snapshot, Quarantine marks each first and moves it
// second (the order that keeps a crash from losing it), with exactly these argv; if the move
// fails because the volume is in use, the mark is taken back and the call is Unavailable.
TEST_F(ZfsPoolFakeTest, QuarantineMarksFirstWithExactArgv) {
  const std::string v = "v0123456789abcdef", s = "s0123456789abcdef";
  const std::string live_state =
      "pgbranch:quarantined\t-\t-\npgbranch:retired\t-\t-\ncanmount\ton\tdefault\n"
      "mountpoint\t" +
      root_ + "/" + v + "\tinherited from tank/pgb\nmounted\tyes\t-\n";
  const TimePoint now = storage_test::At("2026-05-01T00:00:00Z");
  scripted_ = {Exited(0, live_state)};
  ASSERT_TRUE(pool_->Quarantine(v, now).ok());
  scripted_ = {Exited(0), Exited(0, "tank/pgb/" + v + "@" + s + "\n")};  // no marks; where s is
  ASSERT_TRUE(pool_->Quarantine(s, now).ok());
  EXPECT_EQ(
      runner_.commands_ran_,
      (std::vector<Argv>{
          {"zfs", "get", "-H", "-o", "property,value,source", kStateProperties, "tank/pgb/" + v},
          {"zfs", "set", "pgbranch:quarantined=2026-05-01T00:00:00.000Z", "tank/pgb/" + v},
          {"zfs", "set", "mountpoint=" + root_ + "/quarantine/" + v + "@2026-05-01T00:00:00.000Z",
           "tank/pgb/" + v},
          {"zfs", "get", "-H", "-o", "name,value", "-s", "local", "-r", "pgbranch:quarantined",
           "tank/pgb"},
          {"zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", "tank/pgb"},
          {"zfs", "set", "pgbranch:quarantined=2026-05-01T00:00:00.000Z",
           "tank/pgb/" + v + "@" + s},
          {"zfs", "clone", "-o", "readonly=on", "-o",
           "mountpoint=" + root_ + "/quarantine/" + s + "@2026-05-01T00:00:00.000Z",
           "tank/pgb/" + v + "@" + s, "tank/pgb/" + s},
      }));

  runner_.commands_ran_.clear();
  scripted_ = {Exited(0, live_state), Exited(0),
               Exited(1, "", "cannot unmount '" + root_ + "/" + v + "': umount failed\n")};
  Status busy = pool_->Quarantine(v, now);
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_EQ(runner_.commands_ran_.back(),
            (Argv{"zfs", "inherit", "pgbranch:quarantined", "tank/pgb/" + v}));
}

// Given a ZFS that refuses lz4 (zfs-fuse's message), CreateVolume retries with lzjb, and later
// volumes are created with lzjb straight away.
TEST_F(ZfsPoolFakeTest, FallsBackToLzjbWhereLz4IsRefused) {
  scripted_.push_back(Exited(2, "",
                             "cannot create 'tank/pgb/v0123456789abcdef': 'compression' must be "
                             "one of 'on | off | lzjb | gzip | gzip-[1-9] | zle'\n"));
  ASSERT_TRUE(pool_->CreateVolume("v0123456789abcdef", std::nullopt).ok());
  ASSERT_TRUE(pool_->CreateVolume("v1111111111111111", std::nullopt).ok());
  EXPECT_EQ(runner_.commands_ran_, (std::vector<Argv>{
                                       {"zfs", "create", "-o", "recordsize=8k", "-o",
                                        "compression=lz4", "tank/pgb/v0123456789abcdef"},
                                       {"zfs", "create", "-o", "recordsize=8k", "-o",
                                        "compression=lzjb", "tank/pgb/v0123456789abcdef"},
                                       {"zfs", "create", "-o", "recordsize=8k", "-o",
                                        "compression=lzjb", "tank/pgb/v1111111111111111"},
                                   }));
}

// Given a ZFS without the `written` and `logicalreferenced` properties (zfs-fuse), four threads
// measure a volume and the pool at once, as the engine's readers do. Each gets the sizes from
// `used` and `referenced`; what one thread learnt is missing is shared with the others (a race
// on that knowledge is what ThreadSanitizer would report), so afterwards no call asks for them.
TEST_F(ZfsPoolFakeTest, ThreadsShareWhatThisZfsLacks) {
  const std::string v = "v0123456789abcdef";
  runner_.respond_ = [](const Argv& argv) -> Result<CommandResult> {
    if (argv.size() < 7 || argv[1] != "get") return Exited(0);
    const std::string& props = argv[6];
    for (const char* missing : {"written", "logicalreferenced"}) {
      if (props.find(missing) != std::string::npos) {
        return Exited(1, "", fmt::format("bad property list: invalid property '{}'\n", missing));
      }
    }
    return Exited(0, "used\t4096\nreferenced\t8192\navailable\t65536\n");
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        Result<SpaceUsage> space = pool_->VolumeSpace(v);
        ASSERT_TRUE(space.ok()) << space.status().ToString();
        EXPECT_EQ(space->exclusive_bytes, 4096u);
        EXPECT_EQ(space->logical_bytes, 8192u);
        Result<PoolUsage> usage = pool_->Usage();
        ASSERT_TRUE(usage.ok()) << usage.status().ToString();
        EXPECT_EQ(usage->free_bytes, 65536u);
      }
    });
  }
  for (auto& t : threads) t.join();
  runner_.commands_ran_.clear();
  ASSERT_TRUE(pool_->VolumeSpace(v).ok());
  EXPECT_EQ(runner_.commands_ran_,
            (std::vector<Argv>{{"zfs", "get", "-H", "-p", "-o", "property,value", "used,referenced",
                                "tank/pgb/" + v}}));
}

// Given a ZFS that answers "dataset is busy" twice (zfs-fuse just after an unmount),
// DestroyVolume retries and succeeds. A destroy that stays busy gives up as Unavailable after
// about 3 s, and mounts the volume again (zfs-fuse leaves it unmounted).
TEST_F(ZfsPoolFakeTest, BusyIsRetriedBriefly) {
  const CommandResult busy =
      Exited(1, "", "cannot destroy 'tank/pgb/v0123456789abcdef': dataset is busy\n");
  scripted_ = {Exited(0), busy, busy};  // `zfs get` of its state, then the destroys
  ASSERT_TRUE(pool_->DestroyVolume("v0123456789abcdef").ok());
  EXPECT_EQ(runner_.commands_ran_.size(), 4u);

  runner_.respond_ = [&](const Argv& argv) -> Result<CommandResult> {
    return argv[1] == "get" ? Exited(0) : busy;
  };
  auto t0 = std::chrono::steady_clock::now();
  Status status = pool_->DestroyVolume("v0123456789abcdef");
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("zfs destroy tank/pgb/v0123456789abcdef"), std::string::npos)
      << status.message();
  EXPECT_EQ(runner_.commands_ran_.back(), (Argv{"zfs", "mount", "tank/pgb/v0123456789abcdef"}));
  EXPECT_GE(elapsed, std::chrono::milliseconds(2900));
  EXPECT_LT(elapsed, std::chrono::milliseconds(5000));
}

// Given zfs failures, their Status carries argv and stderr with a code from the message: out
// of space is ResourceExhausted ("the pool is full"), a stopped zfs-fuse FailedPrecondition.
TEST_F(ZfsPoolFakeTest, FailuresAreClassified) {
  scripted_.push_back(Exited(
      1, "",
      "cannot create snapshot 'tank/pgb/v0123456789abcdef@s0123456789abcdef': out of space\n"));
  Status full = pool_->CreateSnapshot("v0123456789abcdef", "s0123456789abcdef");
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("pool is full"), std::string::npos) << full.message();
  EXPECT_NE(full.message().find("zfs snapshot tank/pgb/v0123456789abcdef@s0123456789abcdef"),
            std::string::npos)
      << full.message();

  scripted_.push_back(Exited(1, "",
                             "connect: No such file or directory\nPlease make sure that the "
                             "zfs-fuse daemon is running.\ninternal error: failed to initialize "
                             "ZFS library\n"));
  Status down = pool_->ListVolumes().status();
  EXPECT_EQ(down.code(), StatusCode::kFailedPrecondition) << down.ToString();

  scripted_.push_back(Exited(1, "", "cannot do that: something odd\n"));
  Status odd = pool_->CreateSnapshot("v0123456789abcdef", "s0123456789abcdef");
  EXPECT_EQ(odd.code(), StatusCode::kCommandFailed) << odd.ToString();
  EXPECT_NE(odd.message().find("something odd"), std::string::npos) << odd.message();
}

// Given a healthy ZFS, the space calls run exactly one command each, with exactly these argv:
// a limit is the dataset's `quota` ("none" removes it), a reservation its `refreservation`.
TEST_F(ZfsPoolFakeTest, SpaceCommandsHaveExactArgv) {
  const std::string v = "v0123456789abcdef";
  scripted_.push_back(Exited(0));
  scripted_.push_back(Exited(0));
  scripted_.push_back(Exited(0));
  scripted_.push_back(Exited(0, "quota\t25165824\nused\t1024\n"));
  scripted_.push_back(Exited(0, "quota\t0\nused\t2048\n"));
  ASSERT_TRUE(pool_->SetSpaceLimit(v, 24 * kMiB).ok());
  ASSERT_TRUE(pool_->SetSpaceLimit(v, std::nullopt).ok());
  ASSERT_TRUE(pool_->ReserveSpace(v, 64 * kMiB).ok());
  Result<SpaceLimit> limited = pool_->GetSpaceLimit(v);
  ASSERT_TRUE(limited.ok()) << limited.status().ToString();
  EXPECT_EQ(limited->limit_bytes, 24 * kMiB);
  EXPECT_EQ(limited->used_bytes, 1024u);
  Result<SpaceLimit> none = pool_->GetSpaceLimit(v);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->limit_bytes);
  EXPECT_EQ(none->used_bytes, 2048u);
  const std::string d = "tank/pgb/v0123456789abcdef";
  EXPECT_EQ(runner_.commands_ran_,
            (std::vector<Argv>{
                {"zfs", "set", "quota=25165824", d},
                {"zfs", "set", "quota=none", d},
                {"zfs", "set", "refreservation=67108864", d},
                {"zfs", "get", "-H", "-p", "-o", "property,value", "quota,used", d},
                {"zfs", "get", "-H", "-p", "-o", "property,value", "quota,used", d},
            }));
}

// Given ZFS refusing a space property (zfs-fuse's messages), the codes say why: a quota below
// what the dataset holds is InvalidArgument, a reservation above what is available
// ResourceExhausted ("the pool is full"), a missing dataset NotFound.
TEST_F(ZfsPoolFakeTest, SpaceFailuresAreClassified) {
  const std::string v = "v0123456789abcdef";
  scripted_.push_back(Exited(1, "",
                             "cannot set property for 'tank/pgb/v0123456789abcdef': size is less "
                             "than current used or reserved space\n"));
  EXPECT_EQ(pool_->SetSpaceLimit(v, kMiB).code(), StatusCode::kInvalidArgument);
  scripted_.push_back(Exited(1, "",
                             "cannot set property for 'tank/pgb/v0123456789abcdef': size is "
                             "greater than available space\n"));
  Status full = pool_->ReserveSpace(v, kMiB);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full.ToString();
  EXPECT_NE(full.message().find("pool is full"), std::string::npos) << full.message();
  scripted_.push_back(
      Exited(1, "", "cannot open 'tank/pgb/v0123456789abcdef': dataset does not exist\n"));
  EXPECT_EQ(pool_->SetSpaceLimit(v, kMiB).code(), StatusCode::kNotFound);
}

// Given a ZFS without `written` and `logicalreferenced` (zfs-fuse), VolumeSpace falls back to
// `used` and `referenced`, and does not ask for the missing properties again.
TEST_F(ZfsPoolFakeTest, SizesFallBackToOlderProperties) {
  scripted_.push_back(Exited(2, "", "bad property list: invalid property 'written'\n"));
  scripted_.push_back(Exited(2, "", "bad property list: invalid property 'logicalreferenced'\n"));
  scripted_.push_back(Exited(0, "used\t4096\nreferenced\t8192\n"));
  scripted_.push_back(Exited(0, "used\t1\nreferenced\t2\n"));
  Result<SpaceUsage> space = pool_->VolumeSpace("v0123456789abcdef");
  ASSERT_TRUE(space.ok()) << space.status().ToString();
  EXPECT_EQ(space->exclusive_bytes, 4096u);
  EXPECT_EQ(space->logical_bytes, 8192u);
  space = pool_->VolumeSpace("v0123456789abcdef");
  ASSERT_TRUE(space.ok());
  EXPECT_EQ(space->exclusive_bytes, 1u);
  const std::string v = "tank/pgb/v0123456789abcdef";
  EXPECT_EQ(runner_.commands_ran_,
            (std::vector<Argv>{
                {"zfs", "get", "-H", "-p", "-o", "property,value",
                 "written,used,logicalreferenced,referenced", v},
                {"zfs", "get", "-H", "-p", "-o", "property,value",
                 "used,logicalreferenced,referenced", v},
                {"zfs", "get", "-H", "-p", "-o", "property,value", "used,referenced", v},
                {"zfs", "get", "-H", "-p", "-o", "property,value", "used,referenced", v},
            }));
}

// Given a ZFS with `written` and `logicalreferenced` (OpenZFS), a volume's exclusive bytes are
// its `written` and its logical bytes `logicalreferenced`; a snapshot's exclusive bytes are
// its `used`.
TEST_F(ZfsPoolFakeTest, SizesUseWrittenAndLogicalWhereTheyExist) {
  scripted_.push_back(Exited(0, "written\t10\nused\t20\nlogicalreferenced\t30\nreferenced\t40\n"));
  scripted_.push_back(Exited(0, "used\t5\nlogicalreferenced\t7\nreferenced\t6\n"));
  scripted_.push_back(Exited(0, "used\t100\navailable\t900\n"));
  Result<SpaceUsage> volume = pool_->VolumeSpace("v0123456789abcdef");
  ASSERT_TRUE(volume.ok()) << volume.status().ToString();
  EXPECT_EQ(volume->exclusive_bytes, 10u);
  EXPECT_EQ(volume->logical_bytes, 30u);
  Result<SpaceUsage> snapshot = pool_->SnapshotSpace("v0123456789abcdef", "s0123456789abcdef");
  ASSERT_TRUE(snapshot.ok()) << snapshot.status().ToString();
  EXPECT_EQ(snapshot->exclusive_bytes, 5u);
  EXPECT_EQ(snapshot->logical_bytes, 7u);
  Result<PoolUsage> usage = pool_->Usage();
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->size_bytes, 1000u);
  EXPECT_EQ(usage->used_bytes, 100u);
  EXPECT_EQ(usage->free_bytes, 900u);
  EXPECT_EQ(runner_.commands_ran_.back(),
            (Argv{"zfs", "get", "-H", "-p", "-o", "property,value", "used,available", "tank/pgb"}));
}

// Given invalid dataset names, CreatePool and OpenPool are InvalidArgument before any command.
TEST(ZfsPoolConfigTest, InvalidDatasetNamesRunNoCommand) {
  FakeProcessRunner runner;
  PoolConfig config;
  config.kind = "zfs";
  config.root = "/tmp/nowhere";
  for (const char* bad : {"", "tank", "/tank/pgb", "tank/", "tank//pgb", "-o/pgb", "tank/-r",
                          "tank/../x", "tank/pg b", "tank/pgb@snap", "1tank/pgb", "tank/pgb;rm"}) {
    SCOPED_TRACE(std::string("dataset \"") + bad + "\"");
    config.dataset = bad;
    EXPECT_EQ(CreatePool(config, runner).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(OpenPool(config, runner).status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(runner.commands_ran_.empty());
  for (const char* good : {"tank/pgb", "rpool/a/b-c_d.e:f", "T1/x"}) {
    EXPECT_TRUE(CheckZfsDatasetName(good).ok()) << good;
  }
}

// Given a PATH without the zfs tools, CreatePool and OpenPool are FailedPrecondition naming the
// packages to install, and create nothing.
TEST(ZfsPoolConfigTest, MissingToolsAreFailedPrecondition) {
  const char* old_path = std::getenv("PATH");
  std::string saved = old_path ? old_path : "";
  ::setenv("PATH", "/nonexistent-pgbranch-test", 1);
  auto runner = NewRealProcessRunner();
  PoolConfig config;
  config.kind = "zfs";
  config.dataset = "tank/pgb";
  config.root = "/tmp/pgb-zfs-missing-tools";
  Status created = CreatePool(config, *runner).status();
  Status opened = OpenPool(config, *runner).status();
  ::setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(created.code(), StatusCode::kFailedPrecondition) << created.ToString();
  EXPECT_NE(created.message().find("zpool"), std::string::npos) << created.message();
  EXPECT_NE(created.message().find("zfs-fuse"), std::string::npos) << created.message();
  EXPECT_NE(created.message().find("zfsutils-linux"), std::string::npos) << created.message();
  EXPECT_EQ(opened.code(), StatusCode::kFailedPrecondition) << opened.ToString();
  EXPECT_FALSE(PathExists(config.root));
}

}  // namespace
}  // namespace pgb
