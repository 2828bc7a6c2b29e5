#include "storage/extents.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>

#include "common/fs.h"
#include "storage/pool_testutil.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

using storage_test::ImagePoolTest;
using storage_test::kMiB;
using storage_test::WriteRandom;

constexpr uint64_t kKiB = 1024;

// Given a tree on a filesystem without sharing (the temporary directory): a written file, a
// sparse file, a hard link, an empty file and symbolic links to big files outside, the logical
// size counts each regular file once and the exclusive size counts exactly the allocated data.
TEST(ExtentsPlainTest, CountsAllocatedDataOnceAndIgnoresSymlinks) {
  char tmpl[] = "/tmp/pgb-extents-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string base = tmpl;
  std::string dir = base + "/tree";
  ASSERT_TRUE(EnsureDir(dir + "/sub", 0700).ok());
  WriteRandom(dir + "/a", 0, 1 * kMiB);
  WriteRandom(dir + "/sub/sparse", 5 * kMiB, 64 * kKiB);
  ASSERT_EQ(::truncate((dir + "/sub/sparse").c_str(), 10 * kMiB), 0);
  ASSERT_EQ(::link((dir + "/a").c_str(), (dir + "/sub/hard").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(dir + "/empty", "", 0600).ok());
  WriteRandom(base + "/outside", 0, 2 * kMiB);
  ASSERT_EQ(::symlink((base + "/outside").c_str(), (dir + "/link").c_str()), 0);
  ASSERT_EQ(::symlink(base.c_str(), (dir + "/dirlink").c_str()), 0);

  Result<SpaceUsage> usage = MeasureTree(dir);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->logical_bytes, 1 * kMiB + 10 * kMiB);
  EXPECT_EQ(usage->exclusive_bytes, 1 * kMiB + 64 * kKiB);
  std::filesystem::remove_all(base);
}

// Given a path that does not exist, MeasureTree is NotFound.
TEST(ExtentsPlainTest, MissingDirectoryIsNotFound) {
  EXPECT_EQ(MeasureTree("/nonexistent/pgbranch/tree").status().code(), StatusCode::kNotFound);
}

class ExtentsTest : public ImagePoolTest {
 protected:
  // A fresh empty volume's directory.
  std::string NewDir() {
    std::string volume = NewVolumeName();
    EXPECT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
    return pool_->VolumePath(volume);
  }
};

// Given a file and a reflinked copy of it on Btrfs, both extents are shared, so the tree's
// exclusive size is ~0; rewriting 1 MiB of the copy makes ~1 MiB exclusive.
TEST_F(ExtentsTest, ReflinkedCopiesAreShared) {
  std::string dir = NewDir();
  WriteRandom(dir + "/a", 0, 8 * kMiB);
  int src = ::open((dir + "/a").c_str(), O_RDONLY | O_CLOEXEC);
  int dst = ::open((dir + "/b").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(src, 0);
  ASSERT_GE(dst, 0);
  ASSERT_EQ(::ioctl(dst, FICLONE, src), 0) << std::strerror(errno);
  ::close(src);
  ::close(dst);

  Result<SpaceUsage> shared = MeasureTree(dir);
  ASSERT_TRUE(shared.ok()) << shared.status().ToString();
  EXPECT_EQ(shared->logical_bytes, 16 * kMiB);
  EXPECT_LT(shared->exclusive_bytes, 64 * kKiB);

  WriteRandom(dir + "/b", 2 * kMiB, 1 * kMiB, /*seed=*/7);
  Result<SpaceUsage> rewritten = MeasureTree(dir);
  ASSERT_TRUE(rewritten.ok());
  EXPECT_EQ(rewritten->logical_bytes, 16 * kMiB);
  EXPECT_NEAR(static_cast<double>(rewritten->exclusive_bytes), 1.0 * kMiB, 128.0 * kKiB);
}

// Given data written but not yet flushed (delayed allocation), it already counts as exclusive:
// nothing else can share blocks that are not even allocated.
TEST_F(ExtentsTest, DelallocDataCountsAsExclusive) {
  std::string dir = NewDir();
  int fd = ::open((dir + "/pending").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  std::string block(kMiB, 'q');
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(::write(fd, block.data(), block.size()), static_cast<ssize_t>(block.size()));
  }
  Result<SpaceUsage> usage = MeasureTree(dir);
  ::close(fd);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->logical_bytes, 4 * kMiB);
  EXPECT_EQ(usage->exclusive_bytes, 4 * kMiB);
}

// Given many small files (which Btrfs stores inline in its metadata and maps as a 4 KiB inline
// extent each), logical and exclusive bytes are both the sum of their sizes.
TEST_F(ExtentsTest, SmallInlineFilesCount) {
  std::string dir = NewDir();
  ASSERT_TRUE(EnsureDir(dir + "/base/1", 0700).ok());
  std::string content(100, 'p');
  for (int i = 0; i < 500; ++i) {
    std::string path = dir + "/base/1/" + std::to_string(i);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, content.data(), content.size()), 100);
    ::close(fd);
  }
  ::sync();
  Result<SpaceUsage> usage = MeasureTree(dir);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->logical_bytes, 500u * 100);
  EXPECT_EQ(usage->exclusive_bytes, 500u * 100);
}

// Given a nested Btrfs subvolume with data inside the measured tree, the walk does not enter
// it: it has its own device number, like another filesystem mounted there.
TEST_F(ExtentsTest, StaysOnItsOwnSubvolume) {
  std::string dir = NewDir();
  WriteRandom(dir + "/mine", 0, 1 * kMiB);
  std::string nested = dir + "/nested";
  ASSERT_EQ(btrfs_util_create_subvolume(nested.c_str(), 0, nullptr, nullptr), BTRFS_UTIL_OK);
  WriteRandom(nested + "/theirs", 0, 3 * kMiB);

  Result<SpaceUsage> usage = MeasureTree(dir);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->logical_bytes, 1 * kMiB);
  EXPECT_EQ(usage->exclusive_bytes, 1 * kMiB);
}

// A measurement, not a check (run with --gtest_also_run_disabled_tests): MeasureTree over
// ~1 GiB laid out like a PostgreSQL data directory (a 512 MiB table in 1 MiB-rewritten
// segments, 4000 8 KiB files), cold and warm.
TEST_F(ExtentsTest, DISABLED_MeasureOneGiB) {
  PoolConfig big = NewImageConfig("big", 3 * 1024 * kMiB);
  ASSERT_TRUE(CreatePool(big, *runner_).ok());
  Result<std::unique_ptr<Pool>> pool = OpenPool(big, *runner_);
  ASSERT_TRUE(pool.ok());
  std::string volume = NewVolumeName();
  ASSERT_TRUE((*pool)->CreateVolume(volume, std::nullopt).ok());
  std::string dir = (*pool)->VolumePath(volume);
  ASSERT_TRUE(EnsureDir(dir + "/base/16384", 0700).ok());
  for (int i = 0; i < 4; ++i) {
    WriteRandom(dir + "/base/16384/1259." + std::to_string(i), 0, 128 * kMiB, i);
  }
  for (int i = 0; i < 4000; ++i) {
    WriteRandom(dir + "/base/16384/" + std::to_string(20000 + i), 0, 8 * kKiB, i);
  }
  WriteRandom(dir + "/big", 0, 480 * kMiB, 99);
  std::string snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE((*pool)->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE((*pool)->CloneSnapshot(volume, snapshot, clone).ok());
  for (int i = 0; i < 64; ++i) {  // scattered 1 MiB rewrites: many extents in one file
    WriteRandom((*pool)->VolumePath(clone) + "/big", i * 7 * kMiB, 1 * kMiB, 1000 + i);
  }
  ::sync();
  int drop = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(drop, 0);
  ASSERT_EQ(::write(drop, "3", 1), 1);
  ::close(drop);
  for (const char* round : {"cold", "warm"}) {
    auto t0 = std::chrono::steady_clock::now();
    Result<SpaceUsage> usage = (*pool)->VolumeSpace(clone);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    ASSERT_TRUE(usage.ok());
    std::cerr << round << ": " << ms << " ms, logical " << usage->logical_bytes / kMiB
              << " MiB, exclusive " << usage->exclusive_bytes / kMiB << " MiB\n";
  }
}

}  // namespace
}  // namespace pgb
