#include "storage/btrfs_pool.h"

#include <btrfsutil.h>
#include <dirent.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "storage/directory_pool.h"
#include "storage/extents.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kVolumeMode = 0700;

// A name for the filesystem types people are likely to point us at, for messages.
std::string FsTypeName(decltype(statfs::f_type) type) {
  switch (static_cast<uint64_t>(type)) {
    case EXT4_SUPER_MAGIC:
      return "ext2/3/4";
    case XFS_SUPER_MAGIC:
      return "XFS";
    case TMPFS_MAGIC:
      return "tmpfs";
    case OVERLAYFS_SUPER_MAGIC:
      return "overlayfs";
    case NFS_SUPER_MAGIC:
      return "NFS";
    case 0x2fc12fc1:
      return "ZFS";
    default:
      return fmt::format("a filesystem of type {:#x}", static_cast<uint64_t>(type));
  }
}

// Turns a failed libbtrfsutil call into a Status. libbtrfsutil sets errno on failure, so
// `err` (errno read right after the call) decides the code; ENOSPC says the pool is full.
Status BtrfsError(std::string_view context, enum btrfs_util_error error, int err) {
  std::string what = fmt::format("{}: {}", context, btrfs_util_strerror(error));
  Status status = err != 0 ? PosixError(what, err) : Status::IOError(what);
  if (status.Is(StatusCode::kResourceExhausted)) {
    return Status::ResourceExhausted(fmt::format(
        "{}: the pool is full; delete branches or snapshots, or grow the pool", status.message()));
  }
  return status;
}

// Deletes the subvolume at `path`; a missing one is OK. Nested subvolumes (PostgreSQL's user
// may create some inside its volume) make a plain delete fail with ENOTEMPTY; then they are
// deleted first, which needs root.
Status DeleteSubvolume(const std::string& path) {
  if (!PathExists(path)) return Status::OK();
  enum btrfs_util_error error = btrfs_util_delete_subvolume(path.c_str(), 0);
  int err = errno;
  if (error != BTRFS_UTIL_OK && err == ENOTEMPTY) {
    error = btrfs_util_delete_subvolume(path.c_str(), BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
    err = errno;
  }
  if (error == BTRFS_UTIL_OK || err == ENOENT) return Status::OK();
  if (error == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
    return Status::FailedPrecondition(
        fmt::format("{} is not a Btrfs subvolume; pgbranch did not create it", path));
  }
  return BtrfsError(fmt::format("delete subvolume {}", path), error, err);
}

// Names in `dir` accepted by `valid`, sorted.
class BtrfsPool : public DirectoryPool {
 public:
  using DirectoryPool::DirectoryPool;

  PoolCapabilities Capabilities() const override { return PoolCapabilities{}; }

  Status CreateVolume(const std::string& volume, std::optional<FileOwner> owner) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    std::string path = VolumePath(volume);
    if (PathExists(path)) return Status::AlreadyExists(fmt::format("volume {} exists", volume));
    enum btrfs_util_error error = btrfs_util_create_subvolume(path.c_str(), 0, nullptr, nullptr);
    int err = errno;
    if (error != BTRFS_UTIL_OK) {
      return BtrfsError(fmt::format("create subvolume {}", path), error, err);
    }
    Status status = SetMode(path, kVolumeMode, owner);
    if (!status.ok()) {
      (void)DeleteSubvolume(path);  // undo; the chmod/chown failure is what the caller needs
      return status;
    }
    return Status::OK();
  }

  // Atomic: the bracket is not needed and ignored.
  Status CreateSnapshot(const std::string& volume, const std::string& snapshot,
                        const SnapshotBracket* /*bracket*/) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    return Snapshot(VolumePath(volume), fmt::format("volume {}", volume),
                    SnapshotPath(volume, snapshot), fmt::format("snapshot {}", snapshot),
                    BTRFS_UTIL_CREATE_SNAPSHOT_READ_ONLY);
  }

  Status CloneSnapshot(const std::string& volume, const std::string& snapshot,
                       const std::string& new_volume) override {
    // `volume` is only a hint (pool.h): snapshots live in one directory by their unique name.
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    PGB_RETURN_IF_ERROR(CheckVolumeName(new_volume));
    return Snapshot(SnapshotPath(volume, snapshot), fmt::format("snapshot {}", snapshot),
                    VolumePath(new_volume), fmt::format("volume {}", new_volume), 0);
  }

  Status DestroyVolume(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    return DeleteSubvolume(VolumePath(volume));
  }

  Status DestroySnapshot(const std::string& volume, const std::string& snapshot) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    return DeleteSubvolume(SnapshotPath(volume, snapshot));
  }

 protected:
  // ---- Quarantine (DirectoryPool moves; this seals and destroys) ----

  // A snapshot is a read-only subvolume: renaming it into another directory is EROFS (Linux 6.18:
  // vfs_rename asks for write permission on a moved directory, btrfs_permission refuses it on a
  // read-only root), so its read-only flag is cleared for the rename and set again afterwards.
  Status SetSealed(const std::string& path, bool sealed) override {
    bool read_only = false;
    enum btrfs_util_error error = btrfs_util_get_subvolume_read_only(path.c_str(), &read_only);
    int err = errno;
    if (error == BTRFS_UTIL_OK && read_only == sealed) return Status::OK();
    if (error == BTRFS_UTIL_OK) {
      error = btrfs_util_set_subvolume_read_only(path.c_str(), sealed);
      err = errno;
    }
    if (error == BTRFS_UTIL_OK) return Status::OK();
    return BtrfsError(fmt::format("make subvolume {} {}", path, sealed ? "read-only" : "writable"),
                      error, err);
  }

  Status RemoveObject(const std::string& path) override { return DeleteSubvolume(path); }

 private:
  // Snapshots subvolume `source` (called `source_name` in messages) to `target` with
  // libbtrfsutil `flags`. NotFound if the source is missing, AlreadyExists if the target exists.
  Status Snapshot(const std::string& source, const std::string& source_name,
                  const std::string& target, const std::string& target_name, int flags) {
    if (!PathExists(source)) return Status::NotFound(fmt::format("{} does not exist", source_name));
    if (PathExists(target)) return Status::AlreadyExists(fmt::format("{} exists", target_name));
    enum btrfs_util_error error =
        btrfs_util_create_snapshot(source.c_str(), target.c_str(), flags, nullptr, nullptr);
    int err = errno;
    if (error != BTRFS_UTIL_OK) {
      return BtrfsError(fmt::format("snapshot {} to {}", source, target), error, err);
    }
    return Status::OK();
  }
};

}  // namespace

Status CheckBtrfsDirectory(const std::string& dir) {
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) {
    int err = errno;
    Status status = PosixError(fmt::format("statfs {}", dir), err);
    if (status.Is(StatusCode::kNotFound)) {
      return Status::FailedPrecondition(
          fmt::format("{} does not exist; create it on a Btrfs filesystem first", dir));
    }
    return status;
  }
  if (!IsDirectory(dir))
    return Status::FailedPrecondition(fmt::format("{} is not a directory", dir));
  if (st.f_type != static_cast<decltype(st.f_type)>(BTRFS_SUPER_MAGIC)) {
    return Status::FailedPrecondition(
        fmt::format("{} is on {}, not Btrfs; choose a directory on a Btrfs filesystem, or let "
                    "pgbranch create a Btrfs image file (pool kind \"image\")",
                    dir, FsTypeName(st.f_type)));
  }
  return Status::OK();
}

Status InitBtrfsPoolDirectory(const std::string& root) {
  PGB_RETURN_IF_ERROR(CheckBtrfsDirectory(root));
  return MakePoolDirectories(root);
}

Result<std::unique_ptr<Pool>> OpenBtrfsPool(const std::string& root, std::string kind,
                                            std::string description) {
  PGB_RETURN_IF_ERROR(CheckBtrfsDirectory(root));
  PGB_RETURN_IF_ERROR(CheckPoolDirectories(root));
  return std::unique_ptr<Pool>(
      std::make_unique<BtrfsPool>(root, std::move(kind), std::move(description)));
}

}  // namespace pgb
