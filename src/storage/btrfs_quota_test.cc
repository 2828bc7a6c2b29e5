// Space limits and prompt space accounting of the Btrfs backend (storage/pool.h
// SetSpaceLimit, GetSpaceLimit, ReserveSpace; btrfs_quota.h), on real loop-mounted Btrfs
// images: the image pool turns simple quotas on, and the kernel enforces the limits.

#include "storage/btrfs_quota.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "common/fs.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

using storage_test::ImagePoolTest;
using storage_test::kMiB;
using storage_test::WriteOutcome;
using storage_test::WriteRandom;
using storage_test::WriteUntilError;

class BtrfsSpaceTest : public ImagePoolTest {
 protected:
  // A volume holding `bytes` of data, a snapshot of it, and `clones` clones of the snapshot.
  struct Family {
    std::string source, snapshot;
    std::vector<std::string> clones;
  };
  Family NewFamily(uint64_t bytes, int clones) {
    Family f;
    f.source = NewVolumeWithData(bytes);
    f.snapshot = NewSnapshotName();
    EXPECT_TRUE(pool_->CreateSnapshot(f.source, f.snapshot).ok());
    for (int i = 0; i < clones; ++i) {
      f.clones.push_back(NewVolumeName());
      Status s = pool_->CloneSnapshot(f.source, f.snapshot, f.clones.back());
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    return f;
  }

  uint64_t FreeBytes() {
    Result<PoolUsage> usage = pool_->Usage();
    EXPECT_TRUE(usage.ok()) << usage.status().ToString();
    return usage.ok() ? usage->free_bytes : 0;
  }

  // FreeBytes() once it exceeds `at_least`, or after 2 s its last reading: under load (the
  // ThreadSanitizer run) statvfs can lag a transaction commit behind the cleaner, where without
  // the wait it would lag up to the 30 s commit interval.
  uint64_t FreeBytesReaching(uint64_t at_least) {
    uint64_t free = FreeBytes();
    for (int i = 0; i < 20 && free <= at_least; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      free = FreeBytes();
    }
    return free;
  }

  // BTRFS_IOC_QUOTA_CTL with `cmd` (1 enable full qgroups, 2 disable) on the pool's filesystem,
  // as an administrator would with `btrfs quota enable|disable`; waits for a rescan.
  void QuotaCtl(uint64_t cmd) {
    int fd = ::open(config_.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    struct btrfs_ioctl_quota_ctl_args args {};
    args.cmd = cmd;
    EXPECT_EQ(::ioctl(fd, BTRFS_IOC_QUOTA_CTL, &args), 0) << std::strerror(errno);
    if (cmd == BTRFS_QUOTA_CTL_ENABLE) (void)::ioctl(fd, BTRFS_IOC_QUOTA_RESCAN_WAIT);
    ::close(fd);
  }

  // The pool's root opened as a Btrfs directory pool (no quota is turned on for it).
  std::unique_ptr<Pool> OpenAsDirectoryPool() {
    PoolConfig config;
    config.kind = "btrfs";
    config.root = config_.root;
    Result<std::unique_ptr<Pool>> pool = OpenPool(config, *runner_);
    EXPECT_TRUE(pool.ok()) << pool.status().ToString();
    return pool.ok() ? std::move(pool).value() : nullptr;
  }
};

// Given an image pool, its filesystem has simple quotas, and the pool says it can limit
// volumes and reserve space.
TEST_F(BtrfsSpaceTest, ImagePoolHasSimpleQuotas) {
  Result<BtrfsQuotaMode> mode = GetBtrfsQuotaMode(config_.root);
  ASSERT_TRUE(mode.ok()) << mode.status().ToString();
  EXPECT_EQ(*mode, BtrfsQuotaMode::kSimple);
  EXPECT_TRUE(pool_->Capabilities().space_limits);
  EXPECT_TRUE(pool_->Capabilities().space_reservations);
  EXPECT_EQ(pool_->Describe().find("no per-branch space limits"), std::string::npos);
}

// Given a volume holding 48 MiB, its snapshot and two clones, one limited to 24 MiB: writing
// into the limited clone fails with EDQUOT at about 24 MiB, while the other clone and the
// source go on writing 32 MiB each. The limit reads back with what counts against it, and the
// 48 MiB the clones share with their origin count for nothing.
TEST_F(BtrfsSpaceTest, LimitStopsOnlyThatVolume) {
  Family f = NewFamily(48 * kMiB, 2);
  const std::string& limited = f.clones[0];
  const std::string& free = f.clones[1];
  ASSERT_TRUE(pool_->SetSpaceLimit(limited, 24 * kMiB).ok());

  Result<SpaceLimit> fresh = pool_->GetSpaceLimit(limited);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->limit_bytes, 24 * kMiB);
  EXPECT_LT(fresh->used_bytes, kMiB) << "shared data is not charged to the clone";

  storage_test::ExpectWritesStopAtLimit(*pool_, limited, 24 * kMiB);

  WriteOutcome other = WriteUntilError(pool_->VolumePath(free) + "/new", 32 * kMiB);
  EXPECT_EQ(other.error, 0) << std::strerror(other.error);
  EXPECT_EQ(other.written, 32 * kMiB);
  WriteOutcome source = WriteUntilError(pool_->VolumePath(f.source) + "/new", 32 * kMiB);
  EXPECT_EQ(source.error, 0) << std::strerror(source.error);

  ::sync();
  Result<SpaceLimit> full = pool_->GetSpaceLimit(limited);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->limit_bytes, 24 * kMiB);
  EXPECT_NEAR(static_cast<double>(full->used_bytes), 24.0 * kMiB, 4.0 * kMiB);
  Result<SpaceLimit> unlimited = pool_->GetSpaceLimit(free);
  ASSERT_TRUE(unlimited.ok());
  EXPECT_FALSE(unlimited->limit_bytes);
  EXPECT_NEAR(static_cast<double>(unlimited->used_bytes), 32.0 * kMiB, 4.0 * kMiB);
}

// Given a clone limited to 24 MiB, rewriting 16 MiB of the data it shares with its origin
// counts 16 MiB against the limit (copy-on-write makes new extents), and the next 16 MiB of
// new data no longer fit.
TEST_F(BtrfsSpaceTest, RewritesOfSharedDataCount) {
  Family f = NewFamily(48 * kMiB, 1);
  const std::string& clone = f.clones[0];
  ASSERT_TRUE(pool_->SetSpaceLimit(clone, 24 * kMiB).ok());
  WriteRandom(pool_->VolumePath(clone) + "/data", 0, 16 * kMiB, /*seed=*/3);
  ::sync();
  Result<SpaceLimit> limit = pool_->GetSpaceLimit(clone);
  ASSERT_TRUE(limit.ok());
  EXPECT_NEAR(static_cast<double>(limit->used_bytes), 16.0 * kMiB, 2.0 * kMiB);
  WriteOutcome more = WriteUntilError(pool_->VolumePath(clone) + "/new", 16 * kMiB);
  EXPECT_EQ(more.error, EDQUOT) << std::strerror(more.error);
  EXPECT_LT(more.written, 12 * kMiB);
}

// Given a limited volume, after the pool is unmounted and opened again (which mounts it), the
// limit reads back the same and is still enforced: it lives in the filesystem.
TEST_F(BtrfsSpaceTest, LimitSurvivesRemount) {
  Family f = NewFamily(8 * kMiB, 1);
  ASSERT_TRUE(pool_->SetSpaceLimit(f.clones[0], 16 * kMiB).ok());
  pool_.reset();
  ASSERT_TRUE(ClosePool(config_).ok());
  ASSERT_FALSE(PathExists(config_.root + "/volumes"));
  Result<std::unique_ptr<Pool>> reopened = OpenPool(config_, *runner_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  pool_ = std::move(reopened).value();

  Result<SpaceLimit> limit = pool_->GetSpaceLimit(f.clones[0]);
  ASSERT_TRUE(limit.ok()) << limit.status().ToString();
  EXPECT_EQ(limit->limit_bytes, 16 * kMiB);
  storage_test::ExpectWritesStopAtLimit(*pool_, f.clones[0], 16 * kMiB);
}

// Given a limited clone, removing its limit (nullopt) lets it write past the old limit, and
// the limit reads back unset; setting it again works.
TEST_F(BtrfsSpaceTest, LimitCanBeRemovedAndSetAgain) {
  Family f = NewFamily(8 * kMiB, 1);
  const std::string& clone = f.clones[0];
  ASSERT_TRUE(pool_->SetSpaceLimit(clone, 16 * kMiB).ok());
  ASSERT_TRUE(pool_->SetSpaceLimit(clone, std::nullopt).ok());
  EXPECT_FALSE(pool_->GetSpaceLimit(clone)->limit_bytes);
  WriteOutcome past = WriteUntilError(pool_->VolumePath(clone) + "/new", 32 * kMiB);
  EXPECT_EQ(past.error, 0) << std::strerror(past.error);
  ASSERT_TRUE(pool_->SetSpaceLimit(clone, 40 * kMiB).ok());
  EXPECT_EQ(pool_->GetSpaceLimit(clone)->limit_bytes, 40 * kMiB);
}

// Given a volume without a limit (main) and two clones each limited to more than the whole
// pool: after ReserveSpace(main, 96 MiB), writing into the first clone until it fails stops
// with EDQUOT before the pool is full, the second clone cannot write more than a few MiB
// either, and main can still write 64 MiB. Without the pool's group of limited volumes, the
// clones' own limits (1 GiB) would let them fill the 300 MiB pool (ENOSPC) under main.
TEST_F(BtrfsSpaceTest, ReserveSpaceKeepsRoomAgainstAllLimitedVolumesTogether) {
  Family f = NewFamily(16 * kMiB, 2);
  for (const std::string& clone : f.clones) {
    ASSERT_TRUE(pool_->SetSpaceLimit(clone, 1024 * kMiB).ok());
  }
  Status reserved = pool_->ReserveSpace(f.source, 96 * kMiB);
  ASSERT_TRUE(reserved.ok()) << reserved.ToString();

  WriteOutcome first = WriteUntilError(pool_->VolumePath(f.clones[0]) + "/new", 512 * kMiB);
  EXPECT_EQ(first.error, EDQUOT) << std::strerror(first.error);
  EXPECT_GT(first.written, 32 * kMiB);
  WriteOutcome second = WriteUntilError(pool_->VolumePath(f.clones[1]) + "/new", 512 * kMiB);
  EXPECT_EQ(second.error, EDQUOT) << std::strerror(second.error);
  EXPECT_LT(second.written, 8 * kMiB);

  ::sync();
  EXPECT_GT(FreeBytes(), 80 * kMiB);
  WriteOutcome main = WriteUntilError(pool_->VolumePath(f.source) + "/new", 64 * kMiB);
  EXPECT_EQ(main.error, 0) << std::strerror(main.error);
  EXPECT_EQ(main.written, 64 * kMiB);

  // Deleting the first clone gives its room back to the group: the second can write again.
  ASSERT_TRUE(pool_->DestroyVolume(f.clones[0]).ok());
  WriteOutcome again = WriteUntilError(pool_->VolumePath(f.clones[1]) + "/more", 16 * kMiB);
  EXPECT_EQ(again.error, 0) << std::strerror(again.error);
}

// Given a volume holding 96 MiB, DestroyVolume returns only once its space is free: Usage()
// right after it shows ~96 MiB more free (Btrfs's cleaner would otherwise free it up to 30 s
// later). The same for a snapshot that alone holds 64 MiB (its volume was rewritten since).
TEST_F(BtrfsSpaceTest, DestroyedSpaceShowsAtOnce) {
  std::string volume = NewVolumeWithData(96 * kMiB);
  ::sync();
  uint64_t before = FreeBytes();
  ASSERT_TRUE(pool_->DestroyVolume(volume).ok());
  EXPECT_GT(FreeBytesReaching(before + 80 * kMiB), before + 80 * kMiB);

  Family f = NewFamily(64 * kMiB, 0);
  WriteRandom(pool_->VolumePath(f.source) + "/data", 0, 64 * kMiB, /*seed=*/9);
  ::sync();
  before = FreeBytes();
  ASSERT_TRUE(pool_->DestroySnapshot(f.source, f.snapshot).ok());
  EXPECT_GT(FreeBytesReaching(before + 48 * kMiB), before + 48 * kMiB);
}

// Given 0 bytes, a missing volume or a bad name, the calls refuse with InvalidArgument or
// NotFound and change nothing.
TEST_F(BtrfsSpaceTest, BadInputIsRefused) {
  Family f = NewFamily(kMiB, 1);
  EXPECT_EQ(pool_->SetSpaceLimit(f.clones[0], 0).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(pool_->GetSpaceLimit(f.clones[0])->limit_bytes);
  std::string missing = NewVolumeName();
  EXPECT_EQ(pool_->SetSpaceLimit(missing, kMiB).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->GetSpaceLimit(missing).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->ReserveSpace(missing, kMiB).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->SetSpaceLimit("../x", kMiB).code(), StatusCode::kInvalidArgument);
}

// Given a Btrfs filesystem whose quotas an administrator turned off, a directory pool there
// says it cannot limit (capabilities, Describe with the command that turns them on) and every
// limit call is NotSupported saying why; it does not turn them on itself. Opening the image
// pool again (pgbranch's own filesystem) turns simple quotas back on.
TEST_F(BtrfsSpaceTest, QuotasOffMeansNotSupportedAndSaysWhy) {
  Family f = NewFamily(kMiB, 1);
  QuotaCtl(BTRFS_QUOTA_CTL_DISABLE);
  std::unique_ptr<Pool> dir_pool = OpenAsDirectoryPool();
  ASSERT_TRUE(dir_pool);
  EXPECT_FALSE(dir_pool->Capabilities().space_limits);
  EXPECT_FALSE(dir_pool->Capabilities().space_reservations);
  EXPECT_NE(dir_pool->Describe().find("no per-branch space limits: quotas are off"),
            std::string::npos)
      << dir_pool->Describe();
  EXPECT_NE(dir_pool->Describe().find("btrfs quota enable --simple"), std::string::npos);
  Status set = dir_pool->SetSpaceLimit(f.clones[0], 16 * kMiB);
  EXPECT_EQ(set.code(), StatusCode::kNotSupported);
  EXPECT_NE(set.message().find("quotas are off"), std::string::npos) << set.message();
  EXPECT_EQ(dir_pool->GetSpaceLimit(f.clones[0]).status().code(), StatusCode::kNotSupported);
  EXPECT_EQ(dir_pool->ReserveSpace(f.source, kMiB).code(), StatusCode::kNotSupported);
  EXPECT_EQ(*GetBtrfsQuotaMode(config_.root), BtrfsQuotaMode::kOff);

  Result<std::unique_ptr<Pool>> image = OpenPool(config_, *runner_);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(*GetBtrfsQuotaMode(config_.root), BtrfsQuotaMode::kSimple);
  EXPECT_TRUE((*image)->Capabilities().space_limits);
}

// Given a Btrfs filesystem with full qgroups (an administrator's `btrfs quota enable`), a
// directory pool there limits a clone's exclusive bytes: it stops with EDQUOT at its limit;
// reserving space is NotSupported (group accounting there needs a rescan per new member).
TEST_F(BtrfsSpaceTest, FullQgroupsLimitExclusiveBytes) {
  QuotaCtl(BTRFS_QUOTA_CTL_DISABLE);
  QuotaCtl(BTRFS_QUOTA_CTL_ENABLE);
  ASSERT_EQ(*GetBtrfsQuotaMode(config_.root), BtrfsQuotaMode::kFull);
  std::unique_ptr<Pool> dir_pool = OpenAsDirectoryPool();
  ASSERT_TRUE(dir_pool);
  EXPECT_TRUE(dir_pool->Capabilities().space_limits);
  EXPECT_FALSE(dir_pool->Capabilities().space_reservations);

  std::string source = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(dir_pool->CreateVolume(source, std::nullopt).ok());
  WriteRandom(dir_pool->VolumePath(source) + "/data", 0, 32 * kMiB);
  ASSERT_TRUE(dir_pool->CreateSnapshot(source, snapshot).ok());
  ASSERT_TRUE(dir_pool->CloneSnapshot(source, snapshot, clone).ok());
  ASSERT_TRUE(dir_pool->SetSpaceLimit(clone, 16 * kMiB).ok());
  EXPECT_EQ(dir_pool->GetSpaceLimit(clone)->limit_bytes, 16 * kMiB);
  storage_test::ExpectWritesStopAtLimit(*dir_pool, clone, 16 * kMiB);
  EXPECT_EQ(dir_pool->ReserveSpace(source, kMiB).code(), StatusCode::kNotSupported);
}

}  // namespace
}  // namespace pgb
