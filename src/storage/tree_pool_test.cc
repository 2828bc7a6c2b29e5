#include "storage/tree_pool.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/failpoint.h"
#include "common/fs.h"
#include "storage/extents.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

using storage_test::DirEntries;
using storage_test::ImagePoolTest;
using storage_test::kMiB;
using storage_test::LstatOf;
using storage_test::Slurp;
using storage_test::WriteRandom;
using storage_test::WriteText;

const FileOwner kPostgres{101, 104};  // an unprivileged account's ids; need not exist

// Makes `path` a small PostgreSQL-shaped data directory owned by kPostgres.
void FillDataDirectory(const std::string& path) {
  for (const char* d :
       {"/base", "/base/1", "/global", "/pg_wal", "/pg_wal/archive_status", "/pg_tblspc"}) {
    ASSERT_EQ(::mkdir((path + d).c_str(), 0700), 0) << d;
  }
  WriteText(path + "/PG_VERSION", "17\n");
  WriteText(path + "/base/1/1259", std::string(20000, 'r'));
  WriteText(path + "/global/pg_control", std::string(8192, 'c'));
  WriteRandom(path + "/pg_wal/000000010000000000000001", 0, kMiB);
  ASSERT_EQ(::symlink("/srv/tablespace", (path + "/pg_tblspc/16385").c_str()), 0);
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(path, ec)) {
    ASSERT_EQ(::lchown(entry.path().c_str(), kPostgres.uid, kPostgres.gid), 0);
  }
  ASSERT_FALSE(ec) << ec.message();
}

enum class Backend { kXfsReflinkImage, kBtrfsReflink, kExt4Copy };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  switch (info.param) {
    case Backend::kXfsReflinkImage:
      return "XfsReflinkImage";
    case Backend::kBtrfsReflink:
      return "BtrfsReflink";
    case Backend::kExt4Copy:
      return "Ext4Copy";
  }
  return "Unknown";
}

// Given root, loop devices, mkfs.btrfs and mkfs.xfs, SetUp makes pool_ one of:
//   kXfsReflinkImage  an image pool with fs "xfs" (300 MiB, reflink=1): a reflink tree pool
//   kBtrfsReflink     a "reflink" pool in a directory of a Btrfs image
//   kExt4Copy         a "copy" pool in a directory on the ext4 of /tmp
// TearDown unmounts everything and removes the temporary directory.
class TreePoolTest : public ImagePoolTest, public ::testing::WithParamInterface<Backend> {
 protected:
  void SetUp() override {
    ImagePoolTest::SetUp();
    if (HasFatalFailure()) return;
    switch (GetParam()) {
      case Backend::kXfsReflinkImage:
        tree_config_ = NewImageConfig("xfs", 300 * kMiB);
        tree_config_.fs = "xfs";
        break;
      case Backend::kBtrfsReflink:
        tree_config_.kind = "reflink";
        tree_config_.root = config_.root + "/reflink";
        break;
      case Backend::kExt4Copy:
        tree_config_.kind = "copy";
        tree_config_.root = dir_ + "/copy";
        break;
    }
    if (tree_config_.kind != "image") {
      ASSERT_EQ(::mkdir(tree_config_.root.c_str(), 0755), 0);
    }
    Result<PoolConfig> created = CreatePool(tree_config_, *runner_);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    tree_config_ = *created;
    Result<std::unique_ptr<Pool>> opened = OpenPool(tree_config_, *runner_);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    pool_ = std::move(opened).value();
  }

  // Snapshots of the copy pool on ext4 are immutable: the base class could not remove them.
  void TearDown() override {
    pool_.reset();
    if (GetParam() == Backend::kExt4Copy && !tree_config_.root.empty()) {
      Status removed = RemoveTree(tree_config_.root);
      EXPECT_TRUE(removed.ok()) << removed.ToString();
    }
    ImagePoolTest::TearDown();
  }

  bool Reflinks() const { return GetParam() != Backend::kExt4Copy; }

  // A new volume owned by kPostgres holding a small data directory.
  std::string NewDataVolume() {
    std::string volume = NewVolumeName();
    Status s = pool_->CreateVolume(volume, kPostgres);
    EXPECT_TRUE(s.ok()) << s.ToString();
    FillDataDirectory(pool_->VolumePath(volume));
    return volume;
  }

  std::string Vol(const std::string& volume) { return pool_->VolumePath(volume); }
  std::string Snap(const std::string& snapshot) { return pool_->SnapshotPath("", snapshot); }

  PoolConfig tree_config_;
};

INSTANTIATE_TEST_SUITE_P(Backends, TreePoolTest,
                         ::testing::Values(Backend::kXfsReflinkImage, Backend::kBtrfsReflink,
                                           Backend::kExt4Copy),
                         BackendName);

// Given each backend, Kind, Capabilities and Describe say what it is: never atomic, sharing
// blocks unless it is the copy pool, clones never pinning snapshots, no space limits (and
// Describe says why).
TEST_P(TreePoolTest, KindCapabilitiesAndDescribe) {
  PoolCapabilities caps = pool_->Capabilities();
  EXPECT_FALSE(caps.atomic_snapshots);
  EXPECT_EQ(caps.copy_on_write, Reflinks());
  EXPECT_FALSE(caps.clones_pin_snapshots);
  EXPECT_FALSE(caps.space_limits);
  EXPECT_FALSE(caps.space_reservations);
  std::string reflink_note =
      " (no per-branch space limits: a reflink pool would need XFS project quotas, which "
      "charge every reflinked file its full size and which pgbranch does not manage";
  if (!PathExists("/proc/fs/xfs/xqmstat")) reflink_note += "; this kernel has no XFS quota support";
  reflink_note += ")";
  switch (GetParam()) {
    case Backend::kXfsReflinkImage:
      EXPECT_EQ(pool_->Kind(), "image");
      EXPECT_EQ(pool_->Describe(), "xfs (reflink) on image " + tree_config_.image +
                                       " (300.0 MiB) at " + tree_config_.root + reflink_note);
      break;
    case Backend::kBtrfsReflink:
      EXPECT_EQ(pool_->Kind(), "reflink");
      EXPECT_EQ(pool_->Describe(), "reflink directory " + tree_config_.root + reflink_note);
      break;
    case Backend::kExt4Copy:
      EXPECT_EQ(pool_->Kind(), "copy");
      EXPECT_EQ(pool_->Describe(),
                "copy directory " + tree_config_.root +
                    " (full copies: slow, no sharing) (no per-branch space limits: a copy pool "
                    "would need the filesystem's project quotas, which pgbranch does not "
                    "manage)");
      break;
  }
  EXPECT_EQ(LstatOf(tree_config_.root + "/volumes").st_mode & 07777, 0711u);
  EXPECT_EQ(LstatOf(tree_config_.root + "/snapshots").st_mode & 07777, 0711u);
  EXPECT_TRUE(ClosePool(tree_config_).ok());
}

// Given a volume of each backend, the space calls are NotSupported and say why: nothing is
// limited or reserved, and nothing pretends it was.
TEST_P(TreePoolTest, SpaceLimitsAreNotSupported) {
  std::string volume = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  Status set = pool_->SetSpaceLimit(volume, 64 * kMiB);
  EXPECT_EQ(set.code(), StatusCode::kNotSupported);
  EXPECT_NE(set.message().find("project quotas"), std::string::npos) << set.message();
  EXPECT_EQ(pool_->GetSpaceLimit(volume).status().code(), StatusCode::kNotSupported);
  EXPECT_EQ(pool_->ReserveSpace(volume, 64 * kMiB).code(), StatusCode::kNotSupported);
}

// Given a volume holding a data directory, its snapshot and a clone of that: all three hold the
// same files with the same owners; the clone's root is 0700 owned like the volume; later writes
// to the clone or to the volume show up only there; the lists name them all.
TEST_P(TreePoolTest, SnapshotAndCloneCopyContentAndStayApart) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, kPostgres).ok());
  EXPECT_EQ(Vol(volume), tree_config_.root + "/volumes/" + volume);
  EXPECT_EQ(LstatOf(Vol(volume)).st_mode & 07777, 0700u);
  EXPECT_EQ(LstatOf(Vol(volume)).st_uid, kPostgres.uid);
  EXPECT_EQ(pool_->CreateVolume(volume, kPostgres).code(), StatusCode::kAlreadyExists);
  FillDataDirectory(Vol(volume));

  Status snapped = pool_->CreateSnapshot(volume, snapshot);
  ASSERT_TRUE(snapped.ok()) << snapped.ToString();
  EXPECT_EQ(Snap(snapshot), tree_config_.root + "/snapshots/" + snapshot);
  Status cloned = pool_->CloneSnapshot(volume, snapshot, clone);
  ASSERT_TRUE(cloned.ok()) << cloned.ToString();

  for (const std::string& copy : {Snap(snapshot), Vol(clone)}) {
    SCOPED_TRACE(copy);
    EXPECT_EQ(Slurp(copy + "/PG_VERSION"), "17\n");
    EXPECT_TRUE(Slurp(copy + "/pg_wal/000000010000000000000001") ==
                Slurp(Vol(volume) + "/pg_wal/000000010000000000000001"));
    EXPECT_EQ(std::filesystem::read_symlink(copy + "/pg_tblspc/16385"), "/srv/tablespace");
    EXPECT_EQ(LstatOf(copy + "/base/1/1259").st_uid, kPostgres.uid);
    EXPECT_EQ(LstatOf(copy + "/base/1/1259").st_gid, kPostgres.gid);
    EXPECT_EQ(LstatOf(copy).st_uid, kPostgres.uid);
    EXPECT_EQ(LstatOf(copy).st_mode & 07777, 0700u);
  }

  WriteText(Vol(clone) + "/PG_VERSION", "clone");
  WriteText(Vol(clone) + "/new", "x");
  WriteText(Vol(volume) + "/base/1/1259", "source");
  EXPECT_EQ(Slurp(Vol(volume) + "/PG_VERSION"), "17\n");
  EXPECT_EQ(Slurp(Snap(snapshot) + "/PG_VERSION"), "17\n");
  EXPECT_FALSE(PathExists(Vol(volume) + "/new"));
  EXPECT_EQ(Slurp(Vol(clone) + "/base/1/1259"), std::string(20000, 'r'));
  EXPECT_EQ(Slurp(Snap(snapshot) + "/base/1/1259"), std::string(20000, 'r'));

  EXPECT_EQ(*pool_->ListSnapshots(), std::vector<std::string>{snapshot});
  std::vector<std::string> volumes{volume, clone};
  std::sort(volumes.begin(), volumes.end());
  EXPECT_EQ(*pool_->ListVolumes(), volumes);
}

// Given a snapshot, nothing in it can be changed even by root (EPERM: immutable), while a clone
// of it is an ordinary writable tree; DestroySnapshot still removes it, the volume can go first,
// and destroying what is missing is OK.
TEST_P(TreePoolTest, SnapshotIsImmutableCloneIsNotAndBothAreDestroyable) {
  std::string volume = NewDataVolume(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());

  std::string snap = Snap(snapshot);
  for (const char* p : {"", "/base", "/base/1/1259", "/pg_wal/000000010000000000000001"}) {
    EXPECT_TRUE(*IsImmutable(snap + p)) << p;
    EXPECT_FALSE(*IsImmutable(Vol(clone) + p)) << p;
  }
  errno = 0;
  EXPECT_LT(::open((snap + "/PG_VERSION").c_str(), O_WRONLY | O_CLOEXEC), 0);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_LT(::open((snap + "/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);
  EXPECT_EQ(errno, EPERM);
  errno = 0;
  EXPECT_NE(::unlink((snap + "/PG_VERSION").c_str()), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_FALSE(WriteFileAtomic(snap + "/PG_VERSION", "two", 0600).ok());
  EXPECT_EQ(Slurp(snap + "/PG_VERSION"), "17\n");

  WriteText(Vol(clone) + "/PG_VERSION", "18\n");
  ASSERT_EQ(::mkdir((Vol(clone) + "/base/2").c_str(), 0700), 0);

  ASSERT_TRUE(pool_->DestroyVolume(volume).ok());
  EXPECT_FALSE(PathExists(Vol(volume)));
  EXPECT_EQ(Slurp(snap + "/PG_VERSION"), "17\n");
  Status destroyed = pool_->DestroySnapshot(volume, snapshot);
  ASSERT_TRUE(destroyed.ok()) << destroyed.ToString();
  EXPECT_FALSE(PathExists(snap));
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
  EXPECT_EQ(Slurp(Vol(clone) + "/PG_VERSION"), "18\n");
  ASSERT_TRUE(pool_->DestroyVolume(clone).ok());
  EXPECT_TRUE(pool_->ListVolumes()->empty());

  EXPECT_TRUE(pool_->DestroySnapshot(volume, snapshot).ok());
  EXPECT_TRUE(pool_->DestroyVolume(clone).ok());
  EXPECT_TRUE(pool_->DestroyVolume(NewVolumeName()).ok());
}

// Given a bracket re-copying pg_wal: between() runs once, after the whole tree was copied and
// before sealing. What PostgreSQL does meanwhile reaches the snapshot only inside pg_wal: a new
// segment and a rewritten one are there, a segment removed from the volume is kept, a data
// file changed meanwhile keeps its first copy. The files between() returns are written at the
// snapshot's root, 0600 and owned like the volume, and sealed with the rest; clones have them.
TEST_P(TreePoolTest, BracketRecopiesDirsAndWritesReturnedFiles) {
  std::string volume = NewDataVolume(), snapshot = NewSnapshotName();
  std::string vol = Vol(volume), snap = Snap(snapshot);
  WriteText(vol + "/pg_wal/000000010000000000000002", "segment two");
  int calls = 0;
  SnapshotBracket bracket;
  bracket.recopy_dirs = {"pg_wal"};
  bracket.between = [&]() -> Result<std::map<std::string, std::string>> {
    ++calls;
    EXPECT_EQ(Slurp(snap + "/base/1/1259"), std::string(20000, 'r')) << "first pass incomplete";
    EXPECT_EQ(Slurp(snap + "/pg_wal/000000010000000000000002"), "segment two");
    EXPECT_FALSE(*IsImmutable(snap)) << "sealed too early";
    // Meanwhile, the running PostgreSQL:
    EXPECT_EQ(::unlink((vol + "/pg_wal/000000010000000000000001").c_str()), 0);
    WriteText(vol + "/pg_wal/000000010000000000000002", "segment two, continued");
    WriteText(vol + "/pg_wal/000000010000000000000003", "segment three");
    WriteText(vol + "/base/1/1259", "changed after the first pass");
    return std::map<std::string, std::string>{
        {"backup_label", "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"},
        {"tablespace_map", ""}};
  };
  Status snapped = pool_->CreateSnapshot(volume, snapshot, &bracket);
  ASSERT_TRUE(snapped.ok()) << snapped.ToString();
  EXPECT_EQ(calls, 1);

  EXPECT_EQ(Slurp(snap + "/pg_wal/000000010000000000000001").size(), kMiB) << "removed: kept";
  EXPECT_EQ(Slurp(snap + "/pg_wal/000000010000000000000002"), "segment two, continued");
  EXPECT_EQ(Slurp(snap + "/pg_wal/000000010000000000000003"), "segment three");
  EXPECT_EQ(Slurp(snap + "/base/1/1259"), std::string(20000, 'r'));
  EXPECT_EQ(Slurp(snap + "/backup_label"),
            "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n");
  EXPECT_TRUE(PathExists(snap + "/tablespace_map"));
  struct stat label = LstatOf(snap + "/backup_label");
  EXPECT_EQ(label.st_mode & 07777, 0600u);
  EXPECT_EQ(label.st_uid, kPostgres.uid);
  EXPECT_EQ(label.st_gid, kPostgres.gid);
  for (const char* p : {"", "/backup_label", "/pg_wal", "/pg_wal/000000010000000000000003"}) {
    EXPECT_TRUE(*IsImmutable(snap + p)) << p;
  }
  EXPECT_FALSE(PathExists(vol + "/backup_label")) << "the volume itself is never written";

  std::string clone = NewVolumeName();
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());
  EXPECT_EQ(Slurp(Vol(clone) + "/backup_label"), Slurp(snap + "/backup_label"));
  EXPECT_EQ(Slurp(Vol(clone) + "/pg_wal/000000010000000000000003"), "segment three");
}

// Given a bracket whose between() fails (pg_backup_stop refused), or returns a file name that
// is not a plain name, CreateSnapshot returns that error and leaves no snapshot. Invalid
// recopy dirs are refused before anything is copied (between() never runs).
TEST_P(TreePoolTest, FailedBracketLeavesNoSnapshot) {
  std::string volume = NewDataVolume();
  std::vector<std::string> volume_files = DirEntries(Vol(volume));

  SnapshotBracket failing;
  failing.recopy_dirs = {"pg_wal"};
  failing.between = []() -> Result<std::map<std::string, std::string>> {
    return Status::CommandFailed("pg_backup_stop: simulated failure");
  };
  Status s = pool_->CreateSnapshot(volume, NewSnapshotName(), &failing);
  EXPECT_EQ(s.code(), StatusCode::kCommandFailed) << s.ToString();
  EXPECT_NE(s.message().find("simulated failure"), std::string::npos) << s.message();
  EXPECT_TRUE(pool_->ListSnapshots()->empty());
  EXPECT_TRUE(DirEntries(tree_config_.root + "/snapshots").empty());

  SnapshotBracket escaping;
  escaping.between = []() -> Result<std::map<std::string, std::string>> {
    return std::map<std::string, std::string>{{"../backup_label", "x"}};
  };
  s = pool_->CreateSnapshot(volume, NewSnapshotName(), &escaping);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_TRUE(DirEntries(tree_config_.root + "/snapshots").empty());
  EXPECT_FALSE(PathExists(tree_config_.root + "/backup_label"));

  int calls = 0;
  SnapshotBracket bad_dir;
  bad_dir.recopy_dirs = {"../volumes"};
  bad_dir.between = [&]() -> Result<std::map<std::string, std::string>> {
    ++calls;
    return std::map<std::string, std::string>{};
  };
  s = pool_->CreateSnapshot(volume, NewSnapshotName(), &bad_dir);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(calls, 0);
  EXPECT_TRUE(DirEntries(tree_config_.root + "/snapshots").empty());
  EXPECT_EQ(DirEntries(Vol(volume)), volume_files);
}

// Given a volume holding 16 MiB, a fresh clone of its snapshot has ~16 MiB logical bytes; in a
// reflink pool (almost) none of them are its own, in a copy pool all of them are.
TEST_P(TreePoolTest, ExclusiveBytesOfAFreshClone) {
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  ASSERT_TRUE(pool_->CreateVolume(volume, std::nullopt).ok());
  WriteRandom(Vol(volume) + "/data", 0, 16 * kMiB);
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->CloneSnapshot(volume, snapshot, clone).ok());
  Result<SpaceUsage> usage = pool_->VolumeSpace(clone);
  ASSERT_TRUE(usage.ok()) << usage.status().ToString();
  EXPECT_EQ(usage->logical_bytes, 16 * kMiB);
  Result<SpaceUsage> snap = pool_->SnapshotSpace(volume, snapshot);
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_EQ(snap->logical_bytes, 16 * kMiB);
  if (Reflinks()) {
    EXPECT_LT(usage->exclusive_bytes, 256 * 1024u);
    EXPECT_LT(snap->exclusive_bytes, 256 * 1024u);
  } else {
    EXPECT_NEAR(static_cast<double>(usage->exclusive_bytes), 16.0 * kMiB, 0.5 * kMiB);
    EXPECT_NEAR(static_cast<double>(snap->exclusive_bytes), 16.0 * kMiB, 0.5 * kMiB);
  }
  EXPECT_EQ(pool_->VolumeSpace(NewVolumeName()).status().code(), StatusCode::kNotFound);
  Result<PoolUsage> pool_usage = pool_->Usage();
  ASSERT_TRUE(pool_usage.ok());
  EXPECT_GT(pool_usage->size_bytes, pool_usage->free_bytes);
}

// Given missing sources or existing targets, snapshot and clone fail with NotFound or
// AlreadyExists and create nothing.
TEST_P(TreePoolTest, SnapshotAndCloneCheckSourceAndTarget) {
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

// Given names that are not pool names, every call is InvalidArgument and nothing appears or
// disappears on disk.
TEST_P(TreePoolTest, InvalidNamesAreRejectedWithoutTouchingDisk) {
  std::string volume = NewDataVolume(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  std::vector<std::string> volumes_before = DirEntries(tree_config_.root + "/volumes");
  std::vector<std::string> snapshots_before = DirEntries(tree_config_.root + "/snapshots");
  const std::vector<std::string> bad_volumes = {
      "../etc", "..", "", "v123", "V0123456789ABCDEF", snapshot, "v0123456789abcde/"};
  const std::vector<std::string> bad_snapshots = {"../snapshots", "s123", "S0123456789ABCDEF",
                                                  volume, "../volumes/" + volume};
  storage_test::ExpectBadNamesRefused(*pool_, volume, snapshot, bad_volumes, bad_snapshots);
  EXPECT_EQ(DirEntries(tree_config_.root + "/volumes"), volumes_before);
  EXPECT_EQ(DirEntries(tree_config_.root + "/snapshots"), snapshots_before);
}

// ---- Quarantine --------------------------------------------------------------------------

// Given the shared lifecycle (pool_testutil.h) on each backend: everything behaves.
// AdoptVolume renames a directory of the pool's filesystem into the pool (same inode: nothing
// copied); ReleaseVolume renames it back, refuses an occupied target, and is OK when done.
TEST_P(TreePoolTest, AdoptAndReleaseRenameWithoutCopying) {
  std::string outside = Dirname(tree_config_.root) + "/adoptee";
  ASSERT_EQ(::mkdir(outside.c_str(), 0700), 0);
  FillDataDirectory(outside);
  struct stat before {};
  ASSERT_EQ(::stat((outside + "/PG_VERSION").c_str(), &before), 0);
  std::string volume = NewVolumeName();
  Status adopted = pool_->AdoptVolume(outside, volume);
  if (adopted.Is(StatusCode::kFailedPrecondition)) {
    // The XFS image pool is mounted at its root: its parent is another filesystem.
    EXPECT_NE(adopted.message().find("another filesystem"), std::string::npos) << adopted.message();
    EXPECT_TRUE(PathExists(outside + "/PG_VERSION"));
    return;
  }
  ASSERT_TRUE(adopted.ok()) << adopted.ToString();
  EXPECT_FALSE(PathExists(outside));
  struct stat inside {};
  ASSERT_EQ(::stat((Vol(volume) + "/PG_VERSION").c_str(), &inside), 0);
  EXPECT_EQ(inside.st_ino, before.st_ino);
  EXPECT_TRUE(pool_->AdoptVolume(outside, volume).Is(StatusCode::kAlreadyExists));

  ASSERT_EQ(::mkdir(outside.c_str(), 0700), 0);
  EXPECT_TRUE(pool_->ReleaseVolume(volume, outside).Is(StatusCode::kAlreadyExists));
  ASSERT_EQ(::rmdir(outside.c_str()), 0);
  Status released = pool_->ReleaseVolume(volume, outside);
  ASSERT_TRUE(released.ok()) << released.ToString();
  EXPECT_TRUE(PathExists(outside + "/PG_VERSION"));
  EXPECT_TRUE(pool_->ReleaseVolume(volume, outside).ok()) << "a second release is done";
  EXPECT_TRUE(RemoveTree(outside).ok());
}

TEST_P(TreePoolTest, QuarantineLifecycle) { storage_test::ExpectQuarantineLifecycle(*pool_); }

// Given a data directory owned by PostgreSQL's account and a snapshot of it, Quarantine renames
// both into <root>/quarantine (0700) as they are: the volume with its owner and modes, the
// snapshot immutable throughout (root directory included) and the symbolic link of pg_tblspc
// still a link; Release puts them back, the snapshot still immutable.
TEST_P(TreePoolTest, QuarantineKeepsOwnersLinksAndSeal) {
  std::string volume = NewDataVolume(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool_->CreateSnapshot(volume, snapshot).ok());
  ASSERT_TRUE(pool_->Quarantine(snapshot, storage_test::At("2026-05-01T00:00:00Z")).ok());
  ASSERT_TRUE(pool_->Quarantine(volume, storage_test::At("2026-05-01T00:00:01Z")).ok());
  EXPECT_EQ(LstatOf(tree_config_.root + "/quarantine").st_mode & 07777, 0700u);
  Result<std::vector<QuarantinedObject>> held = pool_->ListQuarantined();
  ASSERT_TRUE(held.ok());
  ASSERT_EQ(held->size(), 2u);
  const std::string snap = (*held)[0].path, vol = (*held)[1].path;
  EXPECT_EQ(snap, tree_config_.root + "/quarantine/" + snapshot + "@2026-05-01T00:00:00.000Z");
  for (const char* p : {"", "/base", "/base/1/1259"}) {
    EXPECT_TRUE(*IsImmutable(snap + p)) << p;
    EXPECT_FALSE(*IsImmutable(vol + p)) << p;
    EXPECT_EQ(LstatOf(vol + p).st_uid, kPostgres.uid) << p;
  }
  EXPECT_EQ(LstatOf(vol).st_mode & 07777, 0700u);
  EXPECT_TRUE(S_ISLNK(LstatOf(snap + "/pg_tblspc/16385").st_mode));
  EXPECT_EQ(Slurp(snap + "/base/1/1259"), std::string(20000, 'r'));
  errno = 0;
  EXPECT_NE(::unlink((snap + "/PG_VERSION").c_str()), 0);
  EXPECT_EQ(errno, EPERM);

  ASSERT_TRUE(pool_->Release(snapshot).ok());
  ASSERT_TRUE(pool_->Release(volume).ok());
  EXPECT_TRUE(*IsImmutable(Snap(snapshot)));
  EXPECT_TRUE(*IsImmutable(Snap(snapshot) + "/base"));
  EXPECT_EQ(LstatOf(Vol(volume)).st_uid, kPostgres.uid);
  EXPECT_EQ(Slurp(Vol(volume) + "/PG_VERSION"), "17\n");
  EXPECT_TRUE(DirEntries(tree_config_.root + "/quarantine").empty());
}

// Given a quarantined volume and a new live one of the same name, Release and Quarantine refuse.
TEST_P(TreePoolTest, QuarantineRefusesLiveNamesake) {
  storage_test::ExpectLiveNamesakeRefused(*pool_);
}

// Given the states a crash mid-Quarantine leaves (snapshot root unsealed in place, or moved and
// still unsealed), nothing is lost and Quarantine finishes the job.
TEST_P(TreePoolTest, InterruptedSnapshotQuarantineIsFinished) {
  storage_test::ExpectInterruptedSnapshotQuarantineFinished(
      *pool_, tree_config_.root,
      [](const std::string& path, bool sealed) {
        Status status = SetImmutableFlag(path, sealed);
        ASSERT_TRUE(status.ok()) << status.ToString();
      },
      [](const std::string& path) {
        Result<bool> immutable = IsImmutable(path);
        return immutable.ok() && *immutable;
      });
}

// Given a directory on ext4, a reflink pool is refused (FailedPrecondition naming FICLONE) and
// nothing is left there; a copy pool works; a missing directory or an empty root is refused;
// opening a directory that was never made a pool is FailedPrecondition.
TEST(TreePoolPlainTest, ReflinkNeedsFiclone) {
  char tmpl[] = "/tmp/pgb-tree-pool-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  auto runner = NewRealProcessRunner();
  PoolConfig config;
  config.kind = "reflink";
  config.root = dir;
  Status created = CreatePool(config, *runner).status();
  EXPECT_EQ(created.code(), StatusCode::kFailedPrecondition) << created.ToString();
  EXPECT_NE(created.message().find(dir + " does not support reflinks (FICLONE): "),
            std::string::npos)
      << created.message();
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  EXPECT_EQ(OpenPool(config, *runner).status().code(), StatusCode::kFailedPrecondition);

  config.root = dir + "/missing";
  EXPECT_EQ(CreatePool(config, *runner).status().code(), StatusCode::kFailedPrecondition);
  config.root = "";
  EXPECT_EQ(CreatePool(config, *runner).status().code(), StatusCode::kInvalidArgument);

  config.kind = "copy";
  config.root = dir + "/./";
  Result<PoolConfig> copy = CreatePool(config, *runner);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  EXPECT_EQ(copy->root, dir);
  EXPECT_EQ(DirEntries(dir), (std::vector<std::string>{"snapshots", "volumes"}));
  Result<std::unique_ptr<Pool>> opened = OpenPool(*copy, *runner);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->Kind(), "copy");
  EXPECT_TRUE(ClosePool(*copy).ok());
  std::filesystem::remove_all(dir);
}

class TreePoolImageTest : public ImagePoolTest {
 protected:
  // The copy pool of the timing test lives on ext4 and holds immutable snapshots.
  void TearDown() override {
    if (!dir_.empty()) {
      Status removed = RemoveTree(dir_ + "/copy");
      EXPECT_TRUE(removed.ok()) << removed.ToString();
    }
    ImagePoolTest::TearDown();
  }

  // Creates and opens a pool of `kind` in directory `name` of a fresh XFS image of 300 MiB.
  std::unique_ptr<Pool> NewPoolOnXfs(const std::string& kind, uint64_t image_size = 300 * kMiB) {
    PoolConfig image = NewImageConfig("xfs", image_size);
    image.fs = "xfs";
    Status s = CreatePool(image, *runner_).status();
    EXPECT_TRUE(s.ok()) << s.ToString();
    PoolConfig config;
    config.kind = kind;
    config.root = image.root + "/" + kind;
    EXPECT_EQ(::mkdir(config.root.c_str(), 0755), 0);
    s = CreatePool(config, *runner_).status();
    EXPECT_TRUE(s.ok()) << s.ToString();
    Result<std::unique_ptr<Pool>> pool = OpenPool(config, *runner_);
    EXPECT_TRUE(pool.ok()) << pool.status().ToString();
    return pool.ok() ? std::move(pool).value() : nullptr;
  }

  // Makes `volume` (a data directory owned by kPostgres) and its `snapshot` with the fail point
  // storage.tree.no_immutable_flag on: the snapshot is sealed by permissions only, as on a
  // filesystem without the immutable flag. False, making nothing, in a build without fail points.
  bool SnapshotSealedByPermissions(Pool& pool, const std::string& volume,
                                   const std::string& snapshot) {
    ::setenv("PGBRANCH_FAILPOINTS", "storage.tree.no_immutable_flag", 1);
    if (!FailpointEnabled("storage.tree.no_immutable_flag")) {
      ::unsetenv("PGBRANCH_FAILPOINTS");
      return false;
    }
    EXPECT_TRUE(pool.CreateVolume(volume, kPostgres).ok());
    FillDataDirectory(pool.VolumePath(volume));
    Status snapped = pool.CreateSnapshot(volume, snapshot);
    ::unsetenv("PGBRANCH_FAILPOINTS");
    EXPECT_TRUE(snapped.ok()) << snapped.ToString();
    return true;
  }
};

// Given a copy pool on an XFS image of 300 MiB (~229 MB usable) and a volume of 80 MiB: one
// snapshot fits; the clone of it does not and fails ResourceExhausted ("pool is full"), and so
// does a second snapshot; neither leaves a partial volume or snapshot behind.
TEST_F(TreePoolImageTest, FullPoolLeavesNoPartialCopies) {
  std::unique_ptr<Pool> pool = NewPoolOnXfs("copy");
  ASSERT_NE(pool, nullptr);
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  ASSERT_TRUE(pool->CreateVolume(volume, std::nullopt).ok());
  for (int i = 0; i < 10; ++i) {
    WriteRandom(pool->VolumePath(volume) + "/f" + std::to_string(i), 0, 8 * kMiB, i);
  }
  Status snapped = pool->CreateSnapshot(volume, snapshot);
  ASSERT_TRUE(snapped.ok()) << snapped.ToString();

  Status cloned = pool->CloneSnapshot(volume, snapshot, NewVolumeName());
  EXPECT_EQ(cloned.code(), StatusCode::kResourceExhausted) << cloned.ToString();
  EXPECT_NE(cloned.message().find("pool is full"), std::string::npos) << cloned.message();
  EXPECT_EQ(*pool->ListVolumes(), std::vector<std::string>{volume});

  Status again = pool->CreateSnapshot(volume, NewSnapshotName());
  EXPECT_EQ(again.code(), StatusCode::kResourceExhausted) << again.ToString();
  EXPECT_EQ(*pool->ListSnapshots(), std::vector<std::string>{snapshot});
  RecordProperty("full_status", cloned.ToString());

  // The space comes back with the snapshot.
  ASSERT_TRUE(pool->DestroySnapshot(volume, snapshot).ok());
  EXPECT_TRUE(pool->CreateSnapshot(volume, NewSnapshotName()).ok());
}

// Given a snapshot sealed by permissions only (fail point: a filesystem without the immutable
// flag), its files lost write permission; a clone of it gets the owner's write permission back,
// so PostgreSQL can write there, and destroying the snapshot works.
TEST_F(TreePoolImageTest, CloneOfSnapshotSealedByPermissionsIsWritable) {
  std::unique_ptr<Pool> pool = NewPoolOnXfs("reflink");
  ASSERT_NE(pool, nullptr);
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  if (!SnapshotSealedByPermissions(*pool, volume, snapshot)) {
    GTEST_SKIP() << "built without fail points";
  }
  std::string snap = pool->SnapshotPath(volume, snapshot);
  EXPECT_FALSE(*IsImmutable(snap));
  EXPECT_EQ(LstatOf(snap).st_mode & 07777, 0500u);
  EXPECT_EQ(LstatOf(snap + "/PG_VERSION").st_mode & 07777, 0400u);

  ASSERT_TRUE(pool->CloneSnapshot(volume, snapshot, clone).ok());
  EXPECT_EQ(LstatOf(pool->VolumePath(clone)).st_mode & 07777, 0700u);
  EXPECT_EQ(LstatOf(pool->VolumePath(clone) + "/base").st_mode & 07777, 0700u);
  EXPECT_EQ(LstatOf(pool->VolumePath(clone) + "/PG_VERSION").st_mode & 07777, 0600u);
  EXPECT_TRUE(pool->DestroySnapshot(volume, snapshot).ok());
  EXPECT_FALSE(PathExists(snap));
}

// Given a snapshot sealed by permissions only (fail point: a filesystem without the immutable
// flag), Quarantine and Release move it all the same (write bits do not stop root's rename),
// and a clone of it afterwards is still writable.
TEST_F(TreePoolImageTest, SnapshotSealedByPermissionsQuarantinesAndReleases) {
  std::unique_ptr<Pool> pool = NewPoolOnXfs("reflink");
  ASSERT_NE(pool, nullptr);
  std::string volume = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
  if (!SnapshotSealedByPermissions(*pool, volume, snapshot)) {
    GTEST_SKIP() << "built without fail points";
  }
  Status quarantined = pool->Quarantine(snapshot, storage_test::At("2026-05-01T00:00:00Z"));
  ASSERT_TRUE(quarantined.ok()) << quarantined.ToString();
  std::string held = pool->ListQuarantined()->at(0).path;
  EXPECT_EQ(LstatOf(held).st_mode & 07777, 0500u);
  EXPECT_EQ(Slurp(held + "/PG_VERSION"), "17\n");

  Status released = pool->Release(snapshot);
  ASSERT_TRUE(released.ok()) << released.ToString();
  ASSERT_TRUE(pool->CloneSnapshot(volume, snapshot, clone).ok());
  EXPECT_EQ(LstatOf(pool->VolumePath(clone) + "/PG_VERSION").st_mode & 07777, 0600u);
  EXPECT_TRUE(pool->DestroySnapshot(volume, snapshot).ok());
}

// ---------------------------------------------------------------------------------------------
// Timing on a PostgreSQL-shaped tree.

// Writes `bytes` of pseudo-random data to a new file `path` (no fsync: the caller syncs once).
void WriteData(const std::string& path, uint64_t bytes, std::mt19937_64& rng) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  std::vector<uint64_t> buf(kMiB / sizeof(uint64_t));
  for (uint64_t done = 0; done < bytes;) {
    size_t n = std::min<uint64_t>(kMiB, bytes - done);
    for (size_t i = 0; i < (n + 7) / 8; ++i) buf[i] = rng();
    ASSERT_EQ(::write(fd, buf.data(), n), static_cast<ssize_t>(n));
    done += n;
  }
  ::close(fd);
}

// Fills `root` like a PostgreSQL 17 data directory after pgbench -i at a small scale: about
// 1040 files and 300 MiB (three template/system databases of ~300 small relations each, one
// database with a 160 MiB table and its index, six 16 MiB WAL segments, the usual directories),
// all owned by kPostgres. Returns the number of files.
int MakePostgresLikeTree(const std::string& root) {
  std::mt19937_64 rng(42);
  int files = 0;
  auto dir = [&](const std::string& rel) {
    EXPECT_EQ(::mkdir((root + "/" + rel).c_str(), 0700), 0) << rel;
  };
  auto file = [&](const std::string& rel, uint64_t bytes) {
    WriteData(root + "/" + rel, bytes, rng);
    ++files;
  };
  for (const char* d : {"base",
                        "global",
                        "pg_wal",
                        "pg_wal/archive_status",
                        "pg_xact",
                        "pg_multixact",
                        "pg_multixact/members",
                        "pg_multixact/offsets",
                        "pg_subtrans",
                        "pg_tblspc",
                        "pg_stat",
                        "pg_stat_tmp",
                        "pg_logical",
                        "pg_logical/snapshots",
                        "pg_logical/mappings",
                        "pg_notify",
                        "pg_serial",
                        "pg_snapshots",
                        "pg_twophase",
                        "pg_replslot",
                        "pg_dynshmem",
                        "pg_commit_ts"}) {
    dir(d);
  }
  file("PG_VERSION", 3);
  file("postgresql.conf", 30000);
  file("postgresql.auto.conf", 88);
  file("pg_hba.conf", 5000);
  file("pg_ident.conf", 2000);
  file("postmaster.opts", 60);
  file("pg_xact/0000", 8192);
  file("pg_multixact/members/0000", 8192);
  file("pg_multixact/offsets/0000", 8192);
  file("pg_subtrans/0000", 8192);
  file("pg_logical/replorigin_checkpoint", 8);
  for (int i = 0; i < 60; ++i) file("global/" + std::to_string(1200 + i), i % 4 == 0 ? 0 : 8192);
  file("global/pg_control", 8192);
  file("global/pg_filenode.map", 512);
  // Relations of a fresh database: a quarter empty, most one to a few pages, some with free
  // space and visibility maps.
  for (const char* db : {"1", "4", "5", "16384"}) {
    dir(std::string("base/") + db);
    for (int i = 0; i < 250; ++i) {
      uint64_t pages = i % 4 == 0 ? 0 : 1 + (i * 7) % 12;
      file(std::string("base/") + db + "/" + std::to_string(1000 + i), pages * 8192);
    }
    file(std::string("base/") + db + "/PG_VERSION", 3);
    file(std::string("base/") + db + "/pg_filenode.map", 512);
  }
  file("base/16384/16397", 160 * kMiB);  // pgbench_accounts
  file("base/16384/16397_fsm", 64 * 1024);
  file("base/16384/16397_vm", 16 * 1024);
  file("base/16384/16402", 20 * kMiB);  // its primary key
  for (int i = 1; i <= 6; ++i) {
    file("pg_wal/00000001000000000000000" + std::to_string(i), 16 * kMiB);
  }
  std::error_code ec;
  ::lchown(root.c_str(), kPostgres.uid, kPostgres.gid);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root, ec)) {
    EXPECT_EQ(::lchown(entry.path().c_str(), kPostgres.uid, kPostgres.gid), 0);
  }
  return files;
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// Given a ~1040-file, ~300 MiB PostgreSQL-shaped volume in a reflink pool on a 1 GiB XFS image,
// a reflink pool on a 1 GiB Btrfs image and a copy pool on ext4: a bracketed snapshot (pg_wal
// copied twice) and a clone are timed, and so are the phases of a snapshot (copy, seal, syncfs)
// and removing it. Reflink snapshot and clone each take well under a second; the figures are
// printed and recorded as test properties.
TEST_F(TreePoolImageTest, SnapshotAndCloneOfPostgresLikeTreeTiming) {
  struct Setup {
    std::string name;
    std::unique_ptr<Pool> pool;
    std::string root;
    CopyMethod method;
  };
  std::vector<Setup> setups;
  {
    PoolConfig xfs = NewImageConfig("xfs-big", 1024 * kMiB);
    xfs.fs = "xfs";
    ASSERT_TRUE(CreatePool(xfs, *runner_).ok());
    setups.push_back({"xfs_reflink", std::move(OpenPool(xfs, *runner_)).value(), xfs.root,
                      CopyMethod::kReflink});
  }
  {
    PoolConfig btrfs = NewImageConfig("btrfs-big", 1024 * kMiB);
    ASSERT_TRUE(CreatePool(btrfs, *runner_).ok());
    PoolConfig reflink;
    reflink.kind = "reflink";
    reflink.root = btrfs.root + "/reflink";
    ASSERT_EQ(::mkdir(reflink.root.c_str(), 0755), 0);
    ASSERT_TRUE(CreatePool(reflink, *runner_).ok());
    setups.push_back({"btrfs_reflink", std::move(OpenPool(reflink, *runner_)).value(), reflink.root,
                      CopyMethod::kReflink});
  }
  {
    PoolConfig copy;
    copy.kind = "copy";
    copy.root = dir_ + "/copy";
    ASSERT_EQ(::mkdir(copy.root.c_str(), 0755), 0);
    ASSERT_TRUE(CreatePool(copy, *runner_).ok());
    setups.push_back(
        {"ext4_copy", std::move(OpenPool(copy, *runner_)).value(), copy.root, CopyMethod::kFull});
  }
  using Clock = std::chrono::steady_clock;
  for (Setup& setup : setups) {
    SCOPED_TRACE(setup.name);
    Pool& pool = *setup.pool;
    std::string volume = NewVolumeName(), snapshot = NewSnapshotName(), clone = NewVolumeName();
    ASSERT_TRUE(pool.CreateVolume(volume, kPostgres).ok());
    int files = MakePostgresLikeTree(pool.VolumePath(volume));
    ASSERT_TRUE(SyncFs(setup.root).ok());
    Result<SpaceUsage> size = pool.VolumeSpace(volume);
    ASSERT_TRUE(size.ok());

    SnapshotBracket bracket;
    bracket.recopy_dirs = {"pg_wal"};
    bracket.between = []() -> Result<std::map<std::string, std::string>> {
      return std::map<std::string, std::string>{{"backup_label", "START WAL LOCATION: 0/1\n"}};
    };
    auto t0 = Clock::now();
    Status snapped = pool.CreateSnapshot(volume, snapshot, &bracket);
    auto t1 = Clock::now();
    ASSERT_TRUE(snapped.ok()) << snapped.ToString();
    Status cloned = pool.CloneSnapshot(volume, snapshot, clone);
    auto t2 = Clock::now();
    ASSERT_TRUE(cloned.ok()) << cloned.ToString();

    // The phases, on a copy of the same volume beside the pool's directories.
    std::string scratch = setup.root + "/scratch";
    auto p0 = Clock::now();
    ASSERT_TRUE(CopyTree(pool.VolumePath(volume), scratch, CopyOptions{setup.method}).ok());
    auto p1 = Clock::now();
    ASSERT_TRUE(SealTree(scratch).ok());
    auto p2 = Clock::now();
    ASSERT_TRUE(SyncFs(scratch).ok());
    auto p3 = Clock::now();
    ASSERT_TRUE(SyncFs(scratch).ok());
    auto p4 = Clock::now();
    ASSERT_TRUE(RemoveTree(scratch).ok());
    auto p5 = Clock::now();
    ASSERT_TRUE(pool.DestroyVolume(clone).ok());
    auto p6 = Clock::now();

    std::string line = fmt::format(
        "{}: {} files, {:.0f} MiB: snapshot (bracketed) {:.1f} ms, clone {:.1f} ms | copy "
        "{:.1f} ms, seal {:.1f} ms, syncfs {:.1f} ms (idle syncfs {:.1f} ms), remove sealed "
        "{:.1f} ms, destroy clone {:.1f} ms",
        setup.name, files, static_cast<double>(size->logical_bytes) / kMiB, Ms(t1 - t0),
        Ms(t2 - t1), Ms(p1 - p0), Ms(p2 - p1), Ms(p3 - p2), Ms(p4 - p3), Ms(p5 - p4), Ms(p6 - p5));
    std::cerr << line << "\n";
    RecordProperty(setup.name, line);
    EXPECT_GT(files, 1000);
    EXPECT_GT(size->logical_bytes, 290 * kMiB);
    if (setup.method == CopyMethod::kReflink) {
      EXPECT_LT(Ms(t1 - t0), 1000.0);
      EXPECT_LT(Ms(t2 - t1), 1000.0);
    }
  }
}

}  // namespace
}  // namespace pgb
