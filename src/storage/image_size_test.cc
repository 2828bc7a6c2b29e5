// Image sizes and what a failed image create leaves behind (storage/image.h).

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/bytes.h"
#include "common/fs.h"
#include "storage/image.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"

namespace pgb {
namespace {

using storage_test::ImagePoolTest;

class ImageSizeTest : public ImagePoolTest {
 protected:
  // A config for an image two directories down, <dir_>/a/b/<name>.img, mounted at
  // <dir_>/m/<name>: neither directory exists yet.
  PoolConfig Nested(const std::string& name, uint64_t size) {
    PoolConfig config = NewImageConfig(name, size);
    config.image = dir_ + "/a/b/" + name + ".img";
    config.root = dir_ + "/m/" + name;
    return config;
  }
  void ExpectNothingLeft(const PoolConfig& config) {
    EXPECT_FALSE(PathExists(config.image));
    EXPECT_FALSE(PathExists(dir_ + "/a"));
    EXPECT_FALSE(PathExists(dir_ + "/m"));
  }
};

// The free space of a path that does not exist yet is that of the nearest directory above it.
TEST_F(ImageSizeTest, FreeSpaceOfMissingPathIsItsParents) {
  Result<uint64_t> here = FreeSpaceFor(dir_);
  Result<uint64_t> below = FreeSpaceFor(dir_ + "/x/y/z.img");
  ASSERT_TRUE(here.ok()) << here.status().ToString();
  ASSERT_TRUE(below.ok()) << below.status().ToString();
  // Both read the same filesystem; the fixture's pool may grow in between, by little.
  EXPECT_LE(
      below.value() > here.value() ? below.value() - here.value() : here.value() - below.value(),
      64 * kMiB);
}

// Given an image size above the free space where it would go (as `init --size 20T` on a small
// disk), CreatePool refuses with ResourceExhausted naming both sizes, before it creates a
// directory, a file or runs mkfs.
TEST_F(ImageSizeTest, LargerThanFreeSpaceIsRefused) {
  uint64_t free = FreeSpaceFor(dir_).value();
  PoolConfig config = Nested("huge", free + kGiB);
  Status s = CreatePool(config, *runner_).status();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find("does not fit"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(FormatBytes(free + kGiB)), std::string::npos) << s.message();
  ExpectNothingLeft(config);
}

// Given a file size limit (RLIMIT_FSIZE) below the image size, sizing the new image fails
// (EFBIG, as ftruncate does for a size the filesystem cannot hold): the 0-byte image is
// removed with the directories made for it, so a corrected retry does not find a blank "image"
// and fail to mount it ("wrong fs type, bad superblock").
TEST_F(ImageSizeTest, FailedResizeLeavesNoImage) {
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = kMiB;
  sighandler_t old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  PoolConfig config = Nested("capped", 300 * kMiB);
  Status s = CreatePool(config, *runner_).status();
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("resize " + config.image), std::string::npos) << s.ToString();
  ExpectNothingLeft(config);

  // The retry with the limit lifted makes a working pool.
  Status retry = CreatePool(config, *runner_).status();
  ASSERT_TRUE(retry.ok()) << retry.ToString();
  EXPECT_TRUE(*IsMounted(config.root));
}

// Given a freshly created image pool whose creator's next step failed, RemoveImagePool
// unmounts it, releases the loop device and removes the image and the mount point; a second
// call finds nothing to do.
TEST_F(ImageSizeTest, RemoveImagePoolUndoesCreate) {
  PoolConfig config = NewImageConfig("gone", 300 * kMiB);
  ASSERT_TRUE(CreatePool(config, *runner_).ok());
  ASSERT_TRUE(*IsMounted(config.root));
  Status s = RemoveImagePool(config);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(PathExists(config.image));
  EXPECT_FALSE(PathExists(config.root));
  EXPECT_TRUE(LoopDevicesBackedBy(config.image)->empty());
  EXPECT_TRUE(RemoveImagePool(config).ok());
}

}  // namespace
}  // namespace pgb
