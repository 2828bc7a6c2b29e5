#include "storage/btrfs_pool.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "common/fs.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

using storage_test::ImagePoolTest;
using storage_test::kMiB;
using storage_test::Slurp;
using storage_test::WriteRandom;
using storage_test::DirEntries;

class BtrfsPoolTest : public ImagePoolTest {};

// Given a fresh pool, CreateVolume makes a subvolume under volumes/ with mode 0700 and the
// requested owner; it is listed, and creating it again is AlreadyExists.
TEST_F(BtrfsPoolTest, CreateVolumeMakesPrivateSubvolume) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, FileOwner{65534, 65534}).ok());

  std::string path = pool_->VolumePath(volume);
  EXPECT_EQ(path, config_.root + "/volumes/" + volume);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  EXPECT_EQ(btrfs_util_is_subvolume(path.c_str()), BTRFS_UTIL_OK);

  Result<std::vector<std::string>> volumes = pool_->ListVolumes();
  ASSERT_TRUE(volumes.ok());
  EXPECT_EQ(*volumes, std::vector<std::string>{volume});
  EXPECT_EQ(pool_->CreateVolume(volume, std::nullopt).code(), StatusCode::kAlreadyExists);
}

// Given a volume with a file, a snapshot and a clone of it: the clone starts with the
// snapshot's content, and later writes to the clone or to the source show up only there.
TEST_F(BtrfsPoolTest, CloneHasSnapshotContentAndWritesStayApart) {
  std::string source = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(source, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(source) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(source, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(source, snapshot, clone).ok());

  EXPECT_EQ(pool_->SnapshotPath(source, snapshot), config_.root + "/snapshots/" + snapshot);
  EXPECT_EQ(Slurp(pool_->SnapshotPath(source, snapshot) + "/f"), "one");
  EXPECT_EQ(Slurp(pool_->VolumePath(clone) + "/f"), "one");

  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(clone) + "/f", "two", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(source) + "/f", "three", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(clone) + "/new", "x", 0600).ok());
  EXPECT_EQ(Slurp(pool_->VolumePath(clone) + "/f"), "two");
  EXPECT_EQ(Slurp(pool_->VolumePath(source) + "/f"), "three");
  EXPECT_EQ(Slurp(pool_->SnapshotPath(source, snapshot) + "/f"), "one");
  EXPECT_FALSE(PathExists(pool_->VolumePath(source) + "/new"));

  Result<std::vector<std::string>> snapshots = pool_->ListSnapshots();
  ASSERT_TRUE(snapshots.ok());
  EXPECT_EQ(*snapshots, std::vector<std::string>{snapshot});
  Result<std::vector<std::string>> volumes = pool_->ListVolumes();
  ASSERT_TRUE(volumes.ok());
  std::vector<std::string> expected{source, clone};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*volumes, expected);
}

// Given a snapshot, writing into it fails even for root (EROFS): snapshots are immutable.
TEST_F(BtrfsPoolTest, SnapshotIsReadOnly) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(volume) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());

  std::string dir = pool_->SnapshotPath(volume, snapshot);
  int fd = ::open((dir + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, EROFS);
  if (fd >= 0) ::close(fd);
  fd = ::open((dir + "/f").c_str(), O_WRONLY | O_CLOEXEC);
  EXPECT_LT(fd, 0);
  if (fd >= 0) ::close(fd);
  EXPECT_FALSE(WriteFileAtomic(dir + "/f", "two", 0600).ok());
  EXPECT_EQ(Slurp(dir + "/f"), "one");
}

// Given missing sources or existing targets, snapshot and clone fail with NotFound or
// AlreadyExists and create nothing.
TEST_F(BtrfsPoolTest, SnapshotAndCloneCheckSourceAndTarget) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  EXPECT_EQ(pool_->CreateSnapshot(volume, snapshot).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool_->CloneSnapshot(volume, snapshot, NewVolumeName()).code(), StatusCode::kNotFound);

  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  EXPECT_EQ(pool_->CreateSnapshot(volume, snapshot).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(pool_->CloneSnapshot(volume, snapshot, volume).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(pool_->ListVolumes()->size(), 1u);
  EXPECT_EQ(pool_->ListSnapshots()->size(), 1u);
}

// Given a volume, its snapshot and a clone, destroying them removes their directories and
// their names from the lists; destroying them again (missing) is OK. The source volume can go
// before the snapshot taken of it.
TEST_F(BtrfsPoolTest, DestroyRemovesAndMissingIsOk) {
  std::string volume = NewVolumeWithData(4 * kMiB);
  std::string snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());

  ASSERT_TRUE(pool_->DestroyVolume(volume).ok());
  EXPECT_FALSE(PathExists(pool_->VolumePath(volume)));
  EXPECT_EQ(*pool_->ListVolumes(), std::vector<std::string>{clone});
  EXPECT_EQ(Slurp(pool_->SnapshotPath(volume, snapshot) + "/data").size(), 4 * kMiB);

  ASSERT_TRUE(pool_->DestroySnapshot(volume, snapshot).ok());
  EXPECT_FALSE(PathExists(pool_->SnapshotPath(volume, snapshot)));
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
  EXPECT_EQ(Slurp(pool_->VolumePath(clone) + "/data").size(), 4 * kMiB);

  ASSERT_TRUE(pool_->DestroyVolume(clone).ok());
  EXPECT_TRUE(pool_->ListVolumes()->empty());

  EXPECT_TRUE(pool_->DestroyVolume(volume).ok());
  EXPECT_TRUE(pool_->DestroySnapshot(volume, snapshot).ok());
  EXPECT_TRUE(pool_->DestroyVolume(NewVolumeName()).ok());
}

// Given a volume in which its user made a subvolume of its own, DestroyVolume still removes
// all of it (the nested subvolume first).
TEST_F(BtrfsPoolTest, DestroyVolumeRemovesNestedSubvolumes) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  std::string nested = pool_->VolumePath(volume) + "/nested";
  ASSERT_EQ(btrfs_util_create_subvolume(nested.c_str(), 0, nullptr, nullptr), BTRFS_UTIL_OK);
  ASSERT_TRUE(WriteFileAtomic(nested + "/f", "x", 0600).ok());

  Status destroyed = pool_->DestroyVolume(volume);
  EXPECT_TRUE(destroyed.ok()) << destroyed.ToString();
  EXPECT_FALSE(PathExists(pool_->VolumePath(volume)));
}

// Given names that are not pool names (path tricks, wrong shape, upper case, the other kind),
// every call is InvalidArgument and nothing appears or disappears on disk.
TEST_F(BtrfsPoolTest, InvalidNamesAreRejectedWithoutTouchingDisk) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  std::vector<std::string> root_before = DirEntries(config_.root);
  std::vector<std::string> volumes_before = DirEntries(config_.root + "/volumes");
  std::vector<std::string> snapshots_before = DirEntries(config_.root + "/snapshots");

  const std::vector<std::string> bad_volumes = {"../etc",
                                                "..",
                                                "",
                                                "v123",
                                                "V0123456789ABCDEF",
                                                "v0123456789ABCDEF",
                                                "v0123456789abcdeg",
                                                "v0123456789abcdef0",
                                                snapshot,
                                                "v0123456789abcde/"};
  const std::vector<std::string> bad_snapshots = {"../snapshots", "s123", "S0123456789ABCDEF",
                                                  volume, "../volumes/" + volume};
  storage_test::ExpectBadNamesRefused(*pool_, volume, snapshot, bad_volumes, bad_snapshots);
  Status s = pool_->CreateVolume("../etc", std::nullopt);
  EXPECT_NE(s.message().find("../etc"), std::string::npos) << s.message();

  EXPECT_EQ(DirEntries(config_.root), root_before);
  EXPECT_EQ(DirEntries(config_.root + "/volumes"), volumes_before);
  EXPECT_EQ(DirEntries(config_.root + "/snapshots"), snapshots_before);
}

// Given a volume holding 20 MiB, a fresh clone of its snapshot has ~20 MiB logical and ~0
// exclusive bytes; after 5 MiB of it are rewritten the clone owns ~5 MiB exclusively.
TEST_F(BtrfsPoolTest, CloneExclusiveBytesFollowRewrites) {
  std::string volume = NewVolumeWithData(20 * kMiB);
  std::string snapshot = NewSnapshotName(), clone = NewVolumeName();

  Result<SpaceUsage> before = pool_->VolumeSpace(volume);
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->logical_bytes, 20 * kMiB);
  EXPECT_NEAR(static_cast<double>(before->exclusive_bytes), 20.0 * kMiB, 0.5 * kMiB);

  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());
  Result<SpaceUsage> fresh = pool_->VolumeSpace(clone);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->logical_bytes, 20 * kMiB);
  EXPECT_LT(fresh->exclusive_bytes, 256 * 1024u);
  Result<SpaceUsage> snap = pool_->SnapshotSpace(volume, snapshot);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->logical_bytes, 20 * kMiB);
  EXPECT_LT(snap->exclusive_bytes, 256 * 1024u);

  WriteRandom(pool_->VolumePath(clone) + "/data", 8 * kMiB, 5 * kMiB, /*seed=*/2);
  Result<SpaceUsage> rewritten = pool_->VolumeSpace(clone);
  ASSERT_TRUE(rewritten.ok());
  EXPECT_EQ(rewritten->logical_bytes, 20 * kMiB);
  EXPECT_NEAR(static_cast<double>(rewritten->exclusive_bytes), 5.0 * kMiB, 0.5 * kMiB);
  // The source still shares everything with the snapshot.
  EXPECT_LT(pool_->VolumeSpace(volume)->exclusive_bytes, 256 * 1024u);

  EXPECT_EQ(pool_->VolumeSpace(NewVolumeName()).status().code(), StatusCode::kNotFound);
}

// Given a fresh pool, Usage reports the image's capacity; writing 64 MiB lowers free space by
// about that much.
TEST_F(BtrfsPoolTest, UsageFollowsWrites) {
  Result<PoolUsage> before = pool_->Usage();
  ASSERT_TRUE(before.ok()) << before.status().ToString();
  EXPECT_EQ(before->size_bytes, 300 * kMiB);
  EXPECT_GT(before->free_bytes, 100 * kMiB);
  EXPECT_LE(before->used_bytes + before->free_bytes, before->size_bytes);

  NewVolumeWithData(64 * kMiB);
  ::sync();
  Result<PoolUsage> after = pool_->Usage();
  ASSERT_TRUE(after.ok());
  EXPECT_NEAR(static_cast<double>(before->free_bytes - after->free_bytes), 64.0 * kMiB,
              16.0 * kMiB);
  EXPECT_GT(after->used_bytes, before->used_bytes + 48 * kMiB);
}

// Given a small pool filled with data until a write fails, Usage shows (almost) no free space
// and the pool's own operations report ResourceExhausted with a message saying it is full.
TEST_F(BtrfsPoolTest, FullPoolIsResourceExhausted) {
  PoolConfig small = NewImageConfig("small", 128 * kMiB);
  ASSERT_TRUE(CreatePool(small, *runner_).ok());
  Result<std::unique_ptr<Pool>> opened = OpenPool(small, *runner_);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Pool& pool = **opened;
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool.CreateVolume(volume, std::nullopt).ok());

  // Fill it with 1 MiB writes until ENOSPC.
  std::vector<char> block(kMiB, 'x');
  int written_mib = 0;
  for (int file = 0; file < 1000; ++file) {
    std::string path = pool.VolumePath(volume) + "/fill" + std::to_string(file);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) break;
    ssize_t n = ::write(fd, block.data(), block.size());
    int fsync_rc = ::fsync(fd);
    ::close(fd);
    if (n != static_cast<ssize_t>(block.size()) || fsync_rc != 0) break;
    ++written_mib;
  }
  EXPECT_GT(written_mib, 20);
  EXPECT_LT(written_mib, 128);
  Result<PoolUsage> usage = pool.Usage();
  ASSERT_TRUE(usage.ok());
  EXPECT_LT(usage->free_bytes, 2 * kMiB) << "free " << usage->free_bytes;

  // Metadata still has room for a while: pool operations go on until it runs out too.
  Status status;
  int operations = 0;
  for (; operations < 20000 && status.ok(); ++operations) {
    std::string v = NewVolumeName();
    status = pool.CreateVolume(v, std::nullopt);
    if (status.ok()) status = pool.CreateSnapshot(v, NewSnapshotName());
  }
  RecordProperty("full_status", status.ToString());
  std::cerr << "full: " << written_mib << " MiB written, then " << operations
            << " volume+snapshot creations until " << status.ToString() << "\n";
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
  EXPECT_NE(status.message().find("pool is full"), std::string::npos) << status.message();
}

// Given a pool, Kind and Describe say what it is for people.
TEST_F(BtrfsPoolTest, KindAndDescribe) {
  EXPECT_EQ(pool_->Kind(), "image");
  EXPECT_EQ(pool_->Describe(),
            "btrfs on image " + config_.image + " (300.0 MiB) at " + config_.root);
}

// ---- Quarantine --------------------------------------------------------------------------

bool IsReadOnlySubvolume(const std::string& path) {
  bool read_only = false;
  return btrfs_util_is_subvolume(path.c_str()) == BTRFS_UTIL_OK &&
         btrfs_util_get_subvolume_read_only(path.c_str(), &read_only) == BTRFS_UTIL_OK && read_only;
}

// Given the shared lifecycle (pool_testutil.h) on a Btrfs image pool: everything behaves.
TEST_F(BtrfsPoolTest, QuarantineLifecycle) { storage_test::ExpectQuarantineLifecycle(*pool_); }

// Given a volume (mode 0700, owned by an unprivileged account) and a read-only snapshot of it,
// Quarantine renames both subvolumes into <root>/quarantine (mode 0700), the snapshot still
// read-only there, the volume still writable and owned as before; Release puts them back the
// same way. (A read-only subvolume cannot be renamed into another directory as it is: EROFS.)
TEST_F(BtrfsPoolTest, QuarantineMovesSubvolumesAndKeepsSnapshotsReadOnly) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateVolume(volume, FileOwner{65534, 65534}).ok());
  ASSERT_TRUE(WriteFileAtomic(pool_->VolumePath(volume) + "/f", "one", 0600).ok());
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  std::string probe = config_.root + "/probe";
  ASSERT_EQ(::mkdir(probe.c_str(), 0700), 0);
  EXPECT_NE(::rename(pool_->SnapshotPath(volume, snapshot).c_str(), (probe + "/s").c_str()), 0);
  EXPECT_EQ(errno, EROFS) << "if this kernel allows it, SetSealed could go";

  ASSERT_TRUE(pool_->Quarantine(volume, storage_test::At("2026-05-01T00:00:00Z")).ok());
  Status quarantined = pool_->Quarantine(snapshot, storage_test::At("2026-05-01T00:00:01Z"));
  ASSERT_TRUE(quarantined.ok()) << quarantined.ToString();
  EXPECT_EQ(storage_test::LstatOf(config_.root + "/quarantine").st_mode & 07777, 0700u);
  Result<std::vector<QuarantinedObject>> held = pool_->ListQuarantined();
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 2u);
  const std::string& volume_path = (*held)[0].path;
  const std::string& snapshot_path = (*held)[1].path;
  EXPECT_EQ(volume_path, config_.root + "/quarantine/" + volume + "@2026-05-01T00:00:00.000Z");
  EXPECT_EQ(btrfs_util_is_subvolume(volume_path.c_str()), BTRFS_UTIL_OK);
  EXPECT_FALSE(IsReadOnlySubvolume(volume_path));
  EXPECT_TRUE(IsReadOnlySubvolume(snapshot_path));
  struct stat st = storage_test::LstatOf(volume_path);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(Slurp(snapshot_path + "/f"), "one");
  EXPECT_FALSE(WriteFileAtomic(snapshot_path + "/f", "two", 0600).ok());

  ASSERT_TRUE(pool_->Release(volume).ok());
  ASSERT_TRUE(pool_->Release(snapshot).ok());
  EXPECT_TRUE(IsReadOnlySubvolume(pool_->SnapshotPath(volume, snapshot)));
  EXPECT_FALSE(IsReadOnlySubvolume(pool_->VolumePath(volume)));
  EXPECT_EQ(storage_test::LstatOf(pool_->VolumePath(volume)).st_uid, 65534u);
  EXPECT_TRUE(DirEntries(config_.root + "/quarantine").empty());
}

// Given a quarantined volume and a new live one of the same name, Release and Quarantine refuse.
TEST_F(BtrfsPoolTest, QuarantineRefusesLiveNamesake) {
  storage_test::ExpectLiveNamesakeRefused(*pool_);
}

// Given the states a crash mid-Quarantine leaves (snapshot writable in place, or moved and
// still writable), nothing is lost and Quarantine finishes the job.
TEST_F(BtrfsPoolTest, InterruptedSnapshotQuarantineIsFinished) {
  storage_test::ExpectInterruptedSnapshotQuarantineFinished(
      *pool_, config_.root,
      [](const std::string& path, bool sealed) {
        ASSERT_EQ(btrfs_util_set_subvolume_read_only(path.c_str(), sealed), BTRFS_UTIL_OK);
      },
      IsReadOnlySubvolume);
}

// Given a plain directory on a Btrfs filesystem, a "btrfs" pool can be created and opened
// there, and works like the image pool.
TEST_F(BtrfsPoolTest, BtrfsKindOnBtrfsDirectory) {
  PoolConfig config;
  config.kind = "btrfs";
  config.root = config_.root + "/plain";
  ASSERT_EQ(::mkdir(config.root.c_str(), 0755), 0);
  Status created = CreatePool(config, *runner_).status();
  ASSERT_TRUE(created.ok()) << created.ToString();
  EXPECT_TRUE(IsDirectory(config.root + "/volumes"));
  EXPECT_TRUE(IsDirectory(config.root + "/snapshots"));
  Result<std::unique_ptr<Pool>> pool = OpenPool(config, *runner_);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  EXPECT_EQ((*pool)->Kind(), "btrfs");
  EXPECT_EQ((*pool)->Describe(), "btrfs directory " + config.root);
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  EXPECT_TRUE((*pool)->CreateVolume(volume, std::nullopt).ok());
  EXPECT_TRUE((*pool)->CreateSnapshot(volume, snapshot).ok());
  EXPECT_TRUE((*pool)->CloneSnapshot(volume, snapshot, NewVolumeName()).ok());
  EXPECT_EQ((*pool)->ListVolumes()->size(), 2u);
  EXPECT_TRUE(ClosePool(config).ok());
}

// Given a directory on a filesystem that is not Btrfs (the temporary directory), creating or
// opening a "btrfs" pool there is FailedPrecondition with a hint, and creates nothing.
TEST(BtrfsPoolPlainTest, NonBtrfsDirectoryIsFailedPrecondition) {
  char tmpl[] = "/tmp/pgb-nonbtrfs-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  PoolConfig config;
  config.kind = "btrfs";
  config.root = dir;
  auto runner = NewRealProcessRunner();
  Status created = CreatePool(config, *runner).status();
  EXPECT_EQ(created.code(), StatusCode::kFailedPrecondition) << created.ToString();
  EXPECT_NE(created.message().find("not Btrfs"), std::string::npos) << created.message();
  EXPECT_FALSE(PathExists(dir + "/volumes"));
  EXPECT_EQ(OpenPool(config, *runner).status().code(), StatusCode::kFailedPrecondition);

  config.root = dir + "/missing";
  EXPECT_EQ(CreatePool(config, *runner).status().code(), StatusCode::kFailedPrecondition);
  config.root = "";
  EXPECT_EQ(CreatePool(config, *runner).status().code(), StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pgb
