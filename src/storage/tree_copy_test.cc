#include "storage/tree_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/failpoint.h"
#include "common/fs.h"
#include "storage/extents.h"
#include "storage/pool.h"
#include "storage/pool_testutil.h"

namespace pgb {
namespace {

using storage_test::ImagePoolTest;
using storage_test::kMiB;
using storage_test::Slurp;
using storage_test::WriteRandom;
using storage_test::WriteText;
using storage_test::LstatOf;

constexpr uid_t kPostgresUid = 101;  // an unprivileged account's ids; need not exist
constexpr gid_t kPostgresGid = 104;

// The FIEMAP extents of `path` as (flags) per extent, after writing back dirty data.
std::vector<uint32_t> ExtentFlags(const std::string& path) {
  std::vector<uint32_t> flags;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << path;
  if (fd < 0) return flags;
  std::vector<uint64_t> buf((sizeof(struct fiemap) + 256 * sizeof(struct fiemap_extent)) / 8 + 1);
  auto* map = reinterpret_cast<struct fiemap*>(buf.data());
  map->fm_start = 0;
  map->fm_length = FIEMAP_MAX_OFFSET;
  map->fm_flags = FIEMAP_FLAG_SYNC;
  map->fm_extent_count = 256;
  EXPECT_EQ(::ioctl(fd, FS_IOC_FIEMAP, map), 0) << std::strerror(errno);
  for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
    flags.push_back(map->fm_extents[i].fe_flags);
  }
  ::close(fd);
  return flags;
}

bool AllShared(const std::vector<uint32_t>& flags) {
  if (flags.empty()) return false;
  for (uint32_t f : flags) {
    if ((f & FIEMAP_EXTENT_SHARED) == 0) return false;
  }
  return true;
}

bool NoneShared(const std::vector<uint32_t>& flags) {
  for (uint32_t f : flags) {
    if ((f & FIEMAP_EXTENT_SHARED) != 0) return false;
  }
  return true;
}

// Given root, loop devices, mkfs.btrfs and mkfs.xfs: three empty directories, one on a
// loop-mounted XFS image made with reflink=1 (xfs_), one on a Btrfs image (btrfs_) and one on
// the ext4 of /tmp (ext4_). Everything is unmounted and removed in TearDown, sealed trees too.
class TreeCopyTest : public ImagePoolTest {
 protected:
  void SetUp() override {
    ImagePoolTest::SetUp();
    if (HasFatalFailure()) return;
    PoolConfig xfs = NewImageConfig("xfs", 300 * kMiB);
    xfs.fs = "xfs";
    Status created = CreatePool(xfs, *runner_).status();
    ASSERT_TRUE(created.ok()) << created.ToString();
    xfs_ = xfs.root + "/t";
    btrfs_ = config_.root + "/t";
    ext4_ = dir_ + "/t";
    for (const std::string& d : {xfs_, btrfs_, ext4_}) ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  }

  // Sealed trees on ext4 are immutable: the base class could not remove them.
  void TearDown() override {
    if (!ext4_.empty()) {
      Status removed = RemoveTree(ext4_);
      EXPECT_TRUE(removed.ok()) << removed.ToString();
    }
    ImagePoolTest::TearDown();
  }

  // Fills `dir` (created) with a small PostgreSQL-shaped tree of every kind of entry.
  void MakeSampleTree(const std::string& dir) {
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir.c_str(), kPostgresUid, kPostgresGid), 0);
    ASSERT_EQ(::mkdir((dir + "/base").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir + "/base/1").c_str(), 0750), 0);
    ASSERT_EQ(::mkdir((dir + "/base/1/deep").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((dir + "/pg_tblspc").c_str(), 0700), 0);
    WriteText(dir + "/PG_VERSION", "17\n", 0600);
    WriteText(dir + "/base/1/1259", std::string(20000, 'r'), 0640);
    WriteText(dir + "/base/1/deep/readonly", "ro", 0400);
    WriteText(dir + "/empty", "", 0644);
    WriteRandom(dir + "/base/1/16384", 0, 2 * kMiB);
    ASSERT_EQ(::symlink("/srv/tablespace/one", (dir + "/pg_tblspc/16385").c_str()), 0);
    ASSERT_EQ(::symlink("/etc", (dir + "/etc-link").c_str()), 0);
    ASSERT_EQ(::symlink("base/1", (dir + "/relative-link").c_str()), 0);
    ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0600), 0);
    for (const char* p : {"", "/base", "/base/1", "/base/1/deep", "/pg_tblspc", "/PG_VERSION",
                          "/base/1/1259", "/base/1/deep/readonly", "/empty", "/base/1/16384"}) {
      ASSERT_EQ(::chown((dir + p).c_str(), kPostgresUid, kPostgresGid), 0) << p;
    }
    ASSERT_EQ(::lchown((dir + "/pg_tblspc/16385").c_str(), kPostgresUid, kPostgresGid), 0);
    // A fixed modification time in the past, on a file and (last) on a directory.
    struct timespec times[2] = {{1000000000, 0}, {1000000000, 123456789}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (dir + "/PG_VERSION").c_str(), times, 0), 0);
    ASSERT_EQ(::utimensat(AT_FDCWD, (dir + "/base/1/deep").c_str(), times, 0), 0);
  }

  // Expects `copy` to be an exact copy of the sample tree at `original`.
  void ExpectSameTree(const std::string& original, const std::string& copy) {
    for (const char* p : {"", "/base", "/base/1", "/base/1/deep", "/pg_tblspc", "/PG_VERSION",
                          "/base/1/1259", "/base/1/deep/readonly", "/empty", "/base/1/16384",
                          "/pg_tblspc/16385", "/etc-link", "/relative-link"}) {
      SCOPED_TRACE(p);
      struct stat a = LstatOf(original + p), b = LstatOf(copy + p);
      EXPECT_EQ(a.st_mode, b.st_mode);  // type and permission bits
      EXPECT_EQ(b.st_uid, a.st_uid);
      EXPECT_EQ(b.st_gid, a.st_gid);
      if (!S_ISDIR(a.st_mode)) {  // a directory's size counts the FIFO not copied
        EXPECT_EQ(b.st_size, a.st_size);
      }
      EXPECT_EQ(b.st_mtim.tv_sec, a.st_mtim.tv_sec);
      EXPECT_EQ(b.st_mtim.tv_nsec, a.st_mtim.tv_nsec);
      if (S_ISREG(a.st_mode)) {
        EXPECT_TRUE(Slurp(original + p) == Slurp(copy + p));
      }
    }
    EXPECT_EQ(LstatOf(copy + "/base/1/deep").st_mtim.tv_sec, 1000000000);
    EXPECT_EQ(LstatOf(copy + "/pg_tblspc/16385").st_uid, kPostgresUid);
    EXPECT_EQ(std::filesystem::read_symlink(copy + "/pg_tblspc/16385"), "/srv/tablespace/one");
    EXPECT_EQ(std::filesystem::read_symlink(copy + "/etc-link"), "/etc");
    EXPECT_EQ(std::filesystem::read_symlink(copy + "/relative-link"), "base/1");
    EXPECT_FALSE(PathExists(copy + "/fifo")) << "FIFOs are not copied";
  }

  std::string xfs_, btrfs_, ext4_;
};

// Given a tree with nested directories, files of several modes owned by PostgreSQL's uid, an
// empty file, symbolic links (absolute, dangling, to a directory outside the tree, relative)
// and a FIFO: reflink copies on XFS and Btrfs and full copies on ext4 and XFS reproduce types,
// modes, owners, sizes, contents, link targets and mtimes; links are not followed and the FIFO
// is skipped.
TEST_F(TreeCopyTest, CopyPreservesTypesModesOwnersLinksAndTimes) {
  struct Case {
    std::string dir;
    CopyMethod method;
  };
  for (const Case& c : {Case{xfs_, CopyMethod::kReflink}, Case{btrfs_, CopyMethod::kReflink},
                        Case{ext4_, CopyMethod::kFull}, Case{xfs_, CopyMethod::kFull}}) {
    SCOPED_TRACE(c.dir + (c.method == CopyMethod::kReflink ? " reflink" : " full"));
    std::string source = c.dir + "/src", target = c.dir + "/copy";
    std::filesystem::remove_all(source);
    std::filesystem::remove_all(target);
    MakeSampleTree(source);
    Status copied = CopyTree(source, target, CopyOptions{c.method});
    ASSERT_TRUE(copied.ok()) << copied.ToString();
    ExpectSameTree(source, target);
    EXPECT_TRUE(S_ISLNK(LstatOf(target + "/etc-link").st_mode)) << "a link was followed";
  }
}

// Given an 8 MiB file on XFS and on Btrfs, a reflink copy shares every extent with it (FIEMAP
// flags them shared) and MeasureTree counts (almost) nothing exclusive in the copy; writing
// 1 MiB into the copy leaves the original unchanged.
TEST_F(TreeCopyTest, ReflinkCopySharesExtents) {
  for (const std::string& dir : {xfs_, btrfs_}) {
    SCOPED_TRACE(dir);
    ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0700), 0);
    WriteRandom(dir + "/src/data", 0, 8 * kMiB);
    std::string before = Slurp(dir + "/src/data");
    ASSERT_TRUE(CopyTree(dir + "/src", dir + "/copy", CopyOptions{CopyMethod::kReflink}).ok());
    EXPECT_TRUE(AllShared(ExtentFlags(dir + "/copy/data")));
    EXPECT_TRUE(AllShared(ExtentFlags(dir + "/src/data")));
    Result<SpaceUsage> usage = MeasureTree(dir + "/copy");
    ASSERT_TRUE(usage.ok()) << usage.status().ToString();
    EXPECT_EQ(usage->logical_bytes, 8 * kMiB);
    EXPECT_LT(usage->exclusive_bytes, 64 * 1024u);
    WriteRandom(dir + "/copy/data", 0, kMiB, /*seed=*/7);
    EXPECT_TRUE(Slurp(dir + "/src/data") == before);
    EXPECT_FALSE(Slurp(dir + "/copy/data") == before);
  }
}

// Given an 8 MiB file on XFS and on Btrfs (where copy_file_range would reflink), a full copy
// shares no extent: the copy owns all its bytes.
TEST_F(TreeCopyTest, FullCopyDoesNotShareExtents) {
  for (const std::string& dir : {xfs_, btrfs_}) {
    SCOPED_TRACE(dir);
    ASSERT_EQ(::mkdir((dir + "/src").c_str(), 0700), 0);
    WriteRandom(dir + "/src/data", 0, 8 * kMiB);
    ASSERT_TRUE(CopyTree(dir + "/src", dir + "/copy", CopyOptions{CopyMethod::kFull}).ok());
    EXPECT_TRUE(Slurp(dir + "/src/data") == Slurp(dir + "/copy/data"));
    EXPECT_TRUE(NoneShared(ExtentFlags(dir + "/copy/data")));
    EXPECT_TRUE(NoneShared(ExtentFlags(dir + "/src/data")));
    ::sync();
    Result<SpaceUsage> usage = MeasureTree(dir + "/copy");
    ASSERT_TRUE(usage.ok()) << usage.status().ToString();
    EXPECT_NEAR(static_cast<double>(usage->exclusive_bytes), 8.0 * kMiB, 0.25 * kMiB);
  }
}

// Given sparse files on ext4 (data, a 16 MiB hole, data; and data followed by a 16 MiB hole),
// a full copy has the same sizes and contents and stays sparse.
TEST_F(TreeCopyTest, FullCopyKeepsHoles) {
  std::string source = ext4_ + "/src";
  ASSERT_EQ(::mkdir(source.c_str(), 0700), 0);
  WriteRandom(source + "/middle-hole", 0, kMiB);
  WriteRandom(source + "/middle-hole", 17 * kMiB, kMiB, 2);
  WriteRandom(source + "/tail-hole", 0, kMiB);
  ASSERT_EQ(::truncate((source + "/tail-hole").c_str(), 17 * kMiB), 0);
  ASSERT_TRUE(CopyTree(source, ext4_ + "/copy", CopyOptions{CopyMethod::kFull}).ok());
  for (const char* name : {"/middle-hole", "/tail-hole"}) {
    SCOPED_TRACE(name);
    struct stat a = LstatOf(source + name), b = LstatOf(ext4_ + "/copy" + name);
    EXPECT_EQ(b.st_size, a.st_size);
    EXPECT_LE(static_cast<uint64_t>(b.st_blocks) * 512, 3 * kMiB) << "holes were filled";
    EXPECT_TRUE(Slurp(source + name) == Slurp(ext4_ + "/copy" + name));
  }
}

// Given a sealed tree on XFS, Btrfs and ext4: every directory and file is immutable, so even
// root cannot write, create, rename, remove or chmod there (EPERM); RemoveTree clears the flags
// and removes it all; removing it again is OK.
TEST_F(TreeCopyTest, SealTreeMakesItImmutableAndRemoveTreeUndoesIt) {
  for (const std::string& dir : {xfs_, btrfs_, ext4_}) {
    SCOPED_TRACE(dir);
    std::string tree = dir + "/sealed";
    MakeSampleTree(tree);
    Result<SealMethod> sealed = SealTree(tree);
    ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
    EXPECT_EQ(*sealed, SealMethod::kImmutableFlag);
    for (const char* p : {"", "/base/1/deep", "/PG_VERSION", "/base/1/16384", "/empty"}) {
      EXPECT_TRUE(*IsImmutable(tree + p)) << p;
    }
    errno = 0;
    EXPECT_LT(::open((tree + "/PG_VERSION").c_str(), O_WRONLY | O_CLOEXEC), 0);
    EXPECT_EQ(errno, EPERM);
    errno = 0;
    EXPECT_LT(::open((tree + "/base/new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);
    EXPECT_EQ(errno, EPERM);
    EXPECT_NE(::unlink((tree + "/pg_tblspc/16385").c_str()), 0);
    EXPECT_NE(::rename((tree + "/empty").c_str(), (tree + "/moved").c_str()), 0);
    EXPECT_NE(::chmod((tree + "/base").c_str(), 0777), 0);
    EXPECT_EQ(Slurp(tree + "/PG_VERSION"), "17\n");

    Status removed = RemoveTree(tree);
    ASSERT_TRUE(removed.ok()) << removed.ToString();
    EXPECT_FALSE(PathExists(tree));
    EXPECT_TRUE(RemoveTree(tree).ok());
  }
}

// Given a sealed (immutable) tree, a reflink copy (XFS, Btrfs) or full copy (ext4) of it is an
// ordinary writable tree: FICLONE and our copier carry no inode flags over.
TEST_F(TreeCopyTest, CopyOfSealedTreeIsNotImmutable) {
  struct Case {
    std::string dir;
    CopyMethod method;
  };
  for (const Case& c : {Case{xfs_, CopyMethod::kReflink}, Case{btrfs_, CopyMethod::kReflink},
                        Case{ext4_, CopyMethod::kFull}}) {
    SCOPED_TRACE(c.dir);
    MakeSampleTree(c.dir + "/src");
    ASSERT_TRUE(SealTree(c.dir + "/src").ok());
    Status copied = CopyTree(c.dir + "/src", c.dir + "/copy", CopyOptions{c.method});
    ASSERT_TRUE(copied.ok()) << copied.ToString();
    for (const char* p : {"", "/base/1/deep", "/PG_VERSION", "/base/1/16384"}) {
      EXPECT_FALSE(*IsImmutable(c.dir + "/copy" + p)) << p;
    }
    ASSERT_TRUE(WriteFileAtomic(c.dir + "/copy/base/1/16384", "changed", 0600).ok());
    EXPECT_EQ(Slurp(c.dir + "/copy/base/1/16384"), "changed");
    EXPECT_EQ(Slurp(c.dir + "/src/base/1/16384").size(), 2 * kMiB);
    EXPECT_TRUE(RemoveTree(c.dir + "/src").ok());
  }
}

// Given a copy, then changes in the source's pg_wal (a new segment, a removed one, a rewritten
// one) and outside it: RecopyPath("pg_wal") brings the new and rewritten segments over, keeps
// the one removed from the source, and leaves everything outside pg_wal as first copied.
TEST_F(TreeCopyTest, RecopyPathOverwritesAndKeepsVanishedFiles) {
  std::string source = xfs_ + "/src", target = xfs_ + "/copy";
  ASSERT_EQ(::mkdir(source.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((source + "/pg_wal").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((source + "/pg_wal/archive_status").c_str(), 0700), 0);
  WriteText(source + "/pg_wal/000000010000000000000001", "segment one");
  WriteText(source + "/pg_wal/000000010000000000000002", "segment two");
  WriteText(source + "/outside", "first");
  CopyOptions options{CopyMethod::kReflink};
  ASSERT_TRUE(CopyTree(source, target, options).ok());

  ASSERT_EQ(::unlink((source + "/pg_wal/000000010000000000000001").c_str()), 0);
  WriteText(source + "/pg_wal/000000010000000000000002", "segment two, more");
  WriteText(source + "/pg_wal/000000010000000000000003", "segment three");
  WriteText(source + "/pg_wal/archive_status/000000010000000000000002.ready", "");
  WriteText(source + "/outside", "second");
  Status recopied = RecopyPath(source, target, "pg_wal", options);
  ASSERT_TRUE(recopied.ok()) << recopied.ToString();

  EXPECT_EQ(Slurp(target + "/pg_wal/000000010000000000000001"), "segment one");
  EXPECT_EQ(Slurp(target + "/pg_wal/000000010000000000000002"), "segment two, more");
  EXPECT_EQ(Slurp(target + "/pg_wal/000000010000000000000003"), "segment three");
  EXPECT_TRUE(PathExists(target + "/pg_wal/archive_status/000000010000000000000002.ready"));
  EXPECT_EQ(Slurp(target + "/outside"), "first");

  // A nested path works too; one missing in the source is nothing to do.
  WriteText(source + "/pg_wal/archive_status/x.done", "");
  EXPECT_TRUE(RecopyPath(source, target, "pg_wal/archive_status", options).ok());
  EXPECT_TRUE(PathExists(target + "/pg_wal/archive_status/x.done"));
  EXPECT_TRUE(RecopyPath(source, target, "pg_missing", options).ok());
  EXPECT_FALSE(PathExists(target + "/pg_missing"));
}

// Given paths that could leave the tree (absolute, "..", ".", empty) or lead through a
// symbolic link, RecopyPath refuses them (InvalidArgument, FailedPrecondition) and writes
// nothing outside the target.
TEST_F(TreeCopyTest, RecopyPathRefusesEscapes) {
  std::string source = ext4_ + "/src", target = ext4_ + "/copy";
  ASSERT_EQ(::mkdir(source.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((ext4_ + "/elsewhere").c_str(), 0700), 0);
  WriteText(ext4_ + "/elsewhere/f", "outside");
  ASSERT_TRUE(CopyTree(source, target, CopyOptions{CopyMethod::kFull}).ok());
  for (const char* bad : {"/etc", "../elsewhere", "pg_wal/..", "./pg_wal", "", "a//b"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(RecopyPath(source, target, bad, CopyOptions{CopyMethod::kFull}).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(CheckRelativePath(bad).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(CheckRelativePath("pg_wal").ok());
  // A link in the source named like a directory: its target is never read.
  ASSERT_EQ(::symlink((ext4_ + "/elsewhere").c_str(), (source + "/link").c_str()), 0);
  EXPECT_EQ(RecopyPath(source, target, "link/f", CopyOptions{CopyMethod::kFull}).code(),
            StatusCode::kFailedPrecondition);
  // As the last component, the link is copied as a link.
  EXPECT_TRUE(RecopyPath(source, target, "link", CopyOptions{CopyMethod::kFull}).ok());
  EXPECT_EQ(std::filesystem::read_symlink(target + "/link"), ext4_ + "/elsewhere");
  // A link in the target: never written through.
  ASSERT_EQ(::mkdir((source + "/d").c_str(), 0700), 0);
  WriteText(source + "/d/f", "inside");
  ASSERT_EQ(::symlink((ext4_ + "/elsewhere").c_str(), (target + "/d").c_str()), 0);
  EXPECT_TRUE(RecopyPath(source, target, "d", CopyOptions{CopyMethod::kFull}).ok());
  EXPECT_EQ(Slurp(ext4_ + "/elsewhere/f"), "outside");
  EXPECT_EQ(Slurp(target + "/d/f"), "inside");
  EXPECT_EQ(Slurp(ext4_ + "/elsewhere/f"), "outside");
}

// Given an existing target, a missing source, or another filesystem mounted inside the source,
// CopyTree fails (AlreadyExists, NotFound, FailedPrecondition) and leaves no partial target.
TEST_F(TreeCopyTest, CopyTreeChecksSourceTargetAndMounts) {
  std::string source = ext4_ + "/src";
  MakeSampleTree(source);
  ASSERT_EQ(::mkdir((ext4_ + "/exists").c_str(), 0700), 0);
  EXPECT_EQ(CopyTree(source, ext4_ + "/exists", CopyOptions{CopyMethod::kFull}).code(),
            StatusCode::kAlreadyExists);
  EXPECT_TRUE(PathExists(ext4_ + "/exists"));
  EXPECT_EQ(CopyTree(ext4_ + "/missing", ext4_ + "/copy", CopyOptions{CopyMethod::kFull}).code(),
            StatusCode::kNotFound);
  EXPECT_FALSE(PathExists(ext4_ + "/copy"));

  std::string mount_point = source + "/base/1/deep/mnt";
  ASSERT_EQ(::mkdir(mount_point.c_str(), 0700), 0);
  ASSERT_EQ(::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1m"), 0)
      << std::strerror(errno);
  WriteText(mount_point + "/other", "other filesystem");
  Status copied = CopyTree(source, ext4_ + "/copy", CopyOptions{CopyMethod::kFull});
  EXPECT_EQ(copied.code(), StatusCode::kFailedPrecondition) << copied.ToString();
  EXPECT_NE(copied.message().find("mounted inside"), std::string::npos) << copied.message();
  EXPECT_FALSE(PathExists(ext4_ + "/copy"));
  // RemoveTree never descends into it either.
  Status removed = RemoveTree(source);
  EXPECT_EQ(removed.code(), StatusCode::kFailedPrecondition) << removed.ToString();
  EXPECT_EQ(Slurp(mount_point + "/other"), "other filesystem");
  ASSERT_EQ(::umount(mount_point.c_str()), 0);
}

// Given the fail point that plays a filesystem without FS_IMMUTABLE_FL, SealTree falls back to
// removing write permission everywhere; a copy with add_owner_write gives the owner's write
// permission back and keeps the other bits.
TEST_F(TreeCopyTest, SealTreeFallsBackToPermissions) {
  ::setenv("PGBRANCH_FAILPOINTS", "storage.tree.no_immutable_flag", 1);
  if (!FailpointEnabled("storage.tree.no_immutable_flag")) {
    ::unsetenv("PGBRANCH_FAILPOINTS");
    GTEST_SKIP() << "built without fail points";
  }
  std::string tree = ext4_ + "/src";
  MakeSampleTree(tree);
  Result<SealMethod> sealed = SealTree(tree);
  ::unsetenv("PGBRANCH_FAILPOINTS");
  ASSERT_TRUE(sealed.ok()) << sealed.status().ToString();
  EXPECT_EQ(*sealed, SealMethod::kWriteBits);
  EXPECT_FALSE(*IsImmutable(tree));
  EXPECT_EQ(LstatOf(tree).st_mode & 07777, 0500u);
  EXPECT_EQ(LstatOf(tree + "/base/1").st_mode & 07777, 0550u);
  EXPECT_EQ(LstatOf(tree + "/base/1/1259").st_mode & 07777, 0440u);

  CopyOptions options{CopyMethod::kFull};
  options.add_owner_write = true;
  ASSERT_TRUE(CopyTree(tree, ext4_ + "/copy", options).ok());
  EXPECT_EQ(LstatOf(ext4_ + "/copy").st_mode & 07777, 0700u);
  EXPECT_EQ(LstatOf(ext4_ + "/copy/base/1").st_mode & 07777, 0750u);
  EXPECT_EQ(LstatOf(ext4_ + "/copy/base/1/1259").st_mode & 07777, 0640u);
  EXPECT_EQ(LstatOf(ext4_ + "/copy/base/1/deep/readonly").st_mode & 07777, 0600u);
  EXPECT_TRUE(RemoveTree(tree).ok());
}

// Given directories on XFS (reflink=1) and Btrfs, CheckReflinkSupport is OK; on ext4 it is
// FailedPrecondition naming FICLONE. No probe file is left anywhere.
TEST_F(TreeCopyTest, CheckReflinkSupport) {
  EXPECT_TRUE(CheckReflinkSupport(xfs_).ok());
  EXPECT_TRUE(CheckReflinkSupport(btrfs_).ok());
  Status ext4 = CheckReflinkSupport(ext4_);
  EXPECT_EQ(ext4.code(), StatusCode::kFailedPrecondition) << ext4.ToString();
  EXPECT_NE(ext4.message().find("does not support reflinks (FICLONE)"), std::string::npos)
      << ext4.message();
  for (const std::string& dir : {xfs_, btrfs_, ext4_}) {
    EXPECT_TRUE(std::filesystem::is_empty(dir)) << dir;
  }
  EXPECT_TRUE(SyncFs(xfs_).ok());
  EXPECT_EQ(SyncFs(ext4_ + "/missing").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace pgb
