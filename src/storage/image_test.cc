#include "storage/image.h"

#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/failpoint.h"
#include "common/fs.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

using storage_test::ImagePoolTest;
using storage_test::kMiB;
using storage_test::MountsBelow;
using storage_test::Slurp;

class ImageTest : public ImagePoolTest {};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string SysfsLoopAttribute(const std::string& device, const std::string& attribute) {
  std::string name = device.substr(device.find_last_of('/') + 1);
  return Slurp("/sys/block/" + name + "/loop/" + attribute);
}

// Records the argv of every command and ends each one with `exit_code` without running it:
// 1 plays an mkfs.btrfs that refuses, 0 one that pretends to format and leaves the image blank.
class FakeRunner : public ProcessRunner {
 public:
  explicit FakeRunner(int exit_code) : exit_code_(exit_code) {}
  Result<CommandResult> Run(const Command& command) override {
    commands_ran_.push_back(command.argv);
    CommandResult result;
    result.exit_code = exit_code_;
    if (exit_code_ != 0) result.err = "ERROR: simulated mkfs failure\n";
    return result;
  }
  Result<pid_t> SpawnDaemon(const Command&, const std::string&) override {
    return Status::NotSupported("no daemons here");
  }
  std::vector<std::vector<std::string>> commands_ran_;

 private:
  int exit_code_;
};

// Given a freshly created image pool: the image is a sparse 0600 file, mounted once at the
// root (0711) through a loop device with autoclear, with volumes/ and snapshots/. ClosePool
// unmounts it and releases the loop device; closing again is OK.
TEST_F(ImageTest, CreateMountsAndCloseReleasesLoopDevice) {
  struct stat st {};
  ASSERT_EQ(::stat(config_.image.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 300 * kMiB);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 300 * kMiB / 2) << "not sparse";
  EXPECT_EQ(ModeOf(config_.root), 0711u);
  EXPECT_TRUE(IsDirectory(config_.root + "/volumes"));
  EXPECT_TRUE(IsDirectory(config_.root + "/snapshots"));
  EXPECT_EQ(MountsBelow(config_.root).size(), 1u);
  EXPECT_TRUE(*IsMounted(config_.root));
  EXPECT_FALSE(*IsMounted(dir_));

  Result<std::vector<std::string>> loops = LoopDevicesBackedBy(config_.image);
  ASSERT_TRUE(loops.ok());
  ASSERT_EQ(loops->size(), 1u);
  EXPECT_EQ(SysfsLoopAttribute(loops->front(), "autoclear"), "1\n");

  pool_.reset();
  Status closed = ClosePool(config_);
  ASSERT_TRUE(closed.ok()) << closed.ToString();
  EXPECT_FALSE(*IsMounted(config_.root));
  EXPECT_TRUE(LoopDevicesBackedBy(config_.image)->empty());
  EXPECT_TRUE(ClosePool(config_).ok());
}

// Given an image pool with data that was unmounted (as by a reboot), OpenPool mounts it again
// at its root and the data is there; opening it while mounted does not mount it twice.
TEST_F(ImageTest, OpenPoolRemountsUnmountedImage) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(volume) + "/PG_VERSION", "17\n", 0600).ok());
  pool_.reset();
  ASSERT_TRUE(ClosePool(config_).ok());
  ASSERT_FALSE(*IsMounted(config_.root));

  Result<std::unique_ptr<Pool>> reopened = OpenPool(config_, *runner_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_TRUE(*IsMounted(config_.root));
  EXPECT_EQ(Slurp((*reopened)->VolumePath(volume) + "/PG_VERSION"), "17\n");
  EXPECT_EQ(*(*reopened)->ListVolumes(), std::vector<std::string>{volume});

  Result<std::unique_ptr<Pool>> again = OpenPool(config_, *runner_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(MountsBelow(config_.root).size(), 1u);
  EXPECT_EQ(LoopDevicesBackedBy(config_.image)->size(), 1u);
}

// Given an unmounted image pool whose mount point got files meanwhile, OpenPool refuses to
// hide them under the mount (FailedPrecondition) until they are moved away.
TEST_F(ImageTest, OpenPoolRefusesToHideFiles) {
  pool_.reset();
  ASSERT_TRUE(ClosePool(config_).ok());
  ASSERT_TRUE(WriteFileAtomic(config_.root + "/stray", "x", 0600).ok());
  Result<std::unique_ptr<Pool>> opened = OpenPool(config_, *runner_);
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("not empty"), std::string::npos)
      << opened.status().message();
  EXPECT_FALSE(*IsMounted(config_.root));

  ASSERT_TRUE(RemoveFile(config_.root + "/stray").ok());
  EXPECT_TRUE(OpenPool(config_, *runner_).ok());
  EXPECT_TRUE(*IsMounted(config_.root));
}

// Given an existing image (a live pool, or any other file), CreatePool is AlreadyExists and
// leaves the file, its content and its mount alone.
TEST_F(ImageTest, CreatePoolRefusesExistingImage) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  struct stat before {};
  ASSERT_EQ(::stat(config_.image.c_str(), &before), 0);

  Status again = CreatePool(config_, *runner_).status();
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  EXPECT_NE(again.message().find(config_.image), std::string::npos) << again.message();
  struct stat after {};
  ASSERT_EQ(::stat(config_.image.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  EXPECT_EQ(MountsBelow(config_.root).size(), 1u);
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{volume});

  PoolConfig other = NewImageConfig("precious", 300 * kMiB);
  ASSERT_TRUE(WriteFileAtomic(other.image, "precious data", 0644).ok());
  EXPECT_EQ(CreatePool(other, *runner_).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Slurp(other.image), "precious data");
  EXPECT_FALSE(PathExists(other.root));
}

// Given a mount point that already holds files, CreatePool refuses (mounting would hide them)
// before creating the image.
TEST_F(ImageTest, CreatePoolRefusesNonEmptyRoot) {
  PoolConfig config = NewImageConfig("busy", 300 * kMiB);
  ASSERT_TRUE(EnsureDir(config.root, 0755).ok());
  ASSERT_TRUE(WriteFileAtomic(config.root + "/keep", "x", 0600).ok());
  Status s = CreatePool(config, *runner_).status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_FALSE(PathExists(config.image));
  EXPECT_EQ(Slurp(config.root + "/keep"), "x");
}

// Given an mkfs.btrfs that fails, CreatePool returns CommandFailed with its stderr, ran exactly
// the expected argv, and removes the image and the directories it created for it.
TEST_F(ImageTest, FailedMkfsLeavesNothingBehind) {
  PoolConfig config = NewImageConfig("nested", 300 * kMiB);
  config.image = dir_ + "/a/b/pool.img";
  config.root = dir_ + "/c/pool";
  FakeRunner runner(1);
  Status s = CreatePool(config, runner).status();
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed) << s.ToString();
  EXPECT_NE(s.message().find("simulated mkfs failure"), std::string::npos) << s.message();
  std::vector<std::vector<std::string>> expected = {
      {"mkfs.btrfs", "-q", "-L", "pgbranch", config.image}};
  EXPECT_EQ(runner.commands_ran_, expected);
  EXPECT_FALSE(PathExists(dir_ + "/a"));
  EXPECT_FALSE(PathExists(dir_ + "/c"));
}

// Given an image that is not a filesystem at all (mkfs "succeeded" without writing), the mount
// fails with libmount's explanation, and the loop device, image and mount point are gone.
TEST_F(ImageTest, FailedMountLeavesNothingBehind) {
  PoolConfig config = NewImageConfig("blank", 300 * kMiB);
  FakeRunner runner(0);
  Status s = CreatePool(config, runner).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("mount " + config.image + " at " + config.root), std::string::npos)
      << s.message();
  RecordProperty("mount_failure", s.ToString());
  EXPECT_FALSE(PathExists(config.image));
  EXPECT_FALSE(PathExists(config.root));
  EXPECT_TRUE(LoopDevicesBackedBy(config.image)->empty());
  EXPECT_TRUE(MountsBelow(dir_).size() == 1u);  // only the fixture's pool
}

// Given a failure after the image was mounted (fail point), CreatePool unmounts it, releases
// the loop device and removes the image and the mount point it created.
TEST_F(ImageTest, FailureAfterMountUndoesEverything) {
  ::setenv("PGBRANCH_FAILPOINTS", "storage.image_pool.after_mount", 1);
  bool enabled = FailpointEnabled("storage.image_pool.after_mount");
  if (!enabled) {
    ::unsetenv("PGBRANCH_FAILPOINTS");
    GTEST_SKIP() << "built without fail points";
  }
  PoolConfig config = NewImageConfig("undo", 300 * kMiB);
  config.root = dir_ + "/mnt/undo";
  Status s = CreatePool(config, *runner_).status();
  ::unsetenv("PGBRANCH_FAILPOINTS");
  EXPECT_EQ(s.code(), StatusCode::kInternal) << s.ToString();
  EXPECT_TRUE(MountsBelow(dir_ + "/mnt").empty());
  EXPECT_FALSE(PathExists(config.image));
  EXPECT_FALSE(PathExists(dir_ + "/mnt"));
  // The loop device went with the mount: nothing is backed by the (deleted) image any more.
  EXPECT_TRUE(LoopDevicesBackedBy(config.image)->empty());
}

// Given another filesystem mounted at the configured root, OpenPool and ClosePool refuse with
// FailedPrecondition and leave that mount alone.
TEST_F(ImageTest, ForeignMountAtRootIsLeftAlone) {
  PoolConfig other = NewImageConfig("other", 300 * kMiB);
  ASSERT_TRUE(CreatePool(other, *runner_).ok());
  PoolConfig confused = config_;
  confused.root = other.root;

  Result<std::unique_ptr<Pool>> opened = OpenPool(confused, *runner_);
  EXPECT_EQ(opened.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(opened.status().message().find("not the image"), std::string::npos)
      << opened.status().message();
  EXPECT_EQ(ClosePool(confused).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(*IsMounted(other.root));
}

// Given a missing image, OpenPool is FailedPrecondition; a filesystem other than btrfs or xfs,
// an empty size, or an XFS image below mkfs.xfs's minimum of 300 MiB is InvalidArgument, and no
// image is created.
TEST_F(ImageTest, BadConfigsAreRefused) {
  PoolConfig missing = NewImageConfig("missing", 300 * kMiB);
  EXPECT_EQ(OpenPool(missing, *runner_).status().code(), StatusCode::kFailedPrecondition);

  PoolConfig ext4 = NewImageConfig("ext4", 300 * kMiB);
  ext4.fs = "ext4";
  Status unknown = CreatePool(ext4, *runner_).status();
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("known: btrfs, xfs"), std::string::npos) << unknown.message();
  EXPECT_EQ(OpenPool(ext4, *runner_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(ext4.image));

  PoolConfig tiny = NewImageConfig("tiny", 299 * kMiB);
  tiny.fs = "xfs";
  Status too_small = CreatePool(tiny, *runner_).status();
  EXPECT_EQ(too_small.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_small.message().find("at least 300.0 MiB"), std::string::npos)
      << too_small.message();
  EXPECT_FALSE(PathExists(tiny.image));

  PoolConfig empty = NewImageConfig("empty", 0);
  EXPECT_EQ(CreatePool(empty, *runner_).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(empty.image));
}

// Given an image pool with fs "xfs": the image is formatted XFS with reflink=1 and mounted at
// the root (0711) with volumes/ and snapshots/; the pool is a reflink tree pool (Kind "image",
// not atomic, copy-on-write); FICLONE works at its root; it survives an unmount (as by a
// reboot) and OpenPool mounts it again with the data in place; ClosePool releases the loop
// device.
TEST_F(ImageTest, XfsImagePoolIsAReflinkPool) {
  PoolConfig config = NewImageConfig("xfs", 300 * kMiB);
  config.fs = "xfs";
  Result<PoolConfig> created = CreatePool(config, *runner_);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->fs, "xfs");
  struct statfs fs {};
  ASSERT_EQ(::statfs(config.root.c_str(), &fs), 0);
  EXPECT_EQ(fs.f_type, static_cast<decltype(fs.f_type)>(XFS_SUPER_MAGIC));
  EXPECT_EQ(ModeOf(config.root), 0711u);
  EXPECT_EQ(ModeOf(config.root + "/volumes"), 0711u);
  EXPECT_EQ(ModeOf(config.root + "/snapshots"), 0711u);
  EXPECT_TRUE(CheckReflinkSupport(config.root).ok());
  EXPECT_EQ(LoopDevicesBackedBy(config.image)->size(), 1u);

  Result<std::unique_ptr<Pool>> opened = OpenPool(config, *runner_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Pool& pool = **opened;
  EXPECT_EQ(pool.Kind(), "image");
  EXPECT_EQ(pool.Describe().rfind("xfs (reflink) on image " + config.image + " (300.0 MiB) at " +
                                      config.root + " (no per-branch space limits: ",
                                  0),
            0u)
      << pool.Describe();
  EXPECT_FALSE(pool.Capabilities().atomic_snapshots);
  EXPECT_TRUE(pool.Capabilities().copy_on_write);
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool.CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool.VolumePath(volume) + "/PG_VERSION", "17\n", 0600).ok());
  ASSERT_TRUE(pool.CreateSnapshot(volume, snapshot).ok());
  opened->reset();  // release the pool before unmounting it

  ASSERT_TRUE(ClosePool(config).ok());
  EXPECT_FALSE(*IsMounted(config.root));
  EXPECT_TRUE(LoopDevicesBackedBy(config.image)->empty());
  Result<std::unique_ptr<Pool>> reopened = OpenPool(config, *runner_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_TRUE(*IsMounted(config.root));
  EXPECT_EQ(Slurp((*reopened)->VolumePath(volume) + "/PG_VERSION"), "17\n");
  EXPECT_EQ(Slurp((*reopened)->SnapshotPath(volume, snapshot) + "/PG_VERSION"), "17\n");
  EXPECT_TRUE(*IsImmutable((*reopened)->SnapshotPath(volume, snapshot)));
  EXPECT_EQ(*(*reopened)->ListSnapshots(), std::vector<std::string>{snapshot});
  ASSERT_TRUE((*reopened)->DestroySnapshot(volume, snapshot).ok());
}

// Given an mkfs.xfs that fails, CreatePool ran exactly `mkfs.xfs -q -L pgbranch -m reflink=1
// IMAGE`, returns CommandFailed and leaves nothing behind.
TEST_F(ImageTest, XfsMkfsArgv) {
  PoolConfig config = NewImageConfig("xfs-argv", 300 * kMiB);
  config.fs = "xfs";
  FakeRunner runner(1);
  Status s = CreatePool(config, runner).status();
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed) << s.ToString();
  std::vector<std::vector<std::string>> expected = {
      {"mkfs.xfs", "-q", "-L", "pgbranch", "-m", "reflink=1", config.image}};
  EXPECT_EQ(runner.commands_ran_, expected);
  EXPECT_FALSE(PathExists(config.image));
  EXPECT_FALSE(PathExists(config.root));
}

// Given a kind no backend handles, every pool function is InvalidArgument naming the kinds.
TEST(PoolKindTest, UnknownKindIsInvalidArgument) {
  PoolConfig config;
  config.kind = "lvm";
  config.root = "/nonexistent";
  auto runner = NewRealProcessRunner();
  Status created = CreatePool(config, *runner).status();
  EXPECT_EQ(created.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(created.message().find("btrfs, zfs, reflink, copy, image"), std::string::npos)
      << created.message();
  EXPECT_EQ(OpenPool(config, *runner).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ClosePool(config).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace pgb
