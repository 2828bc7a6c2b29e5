#include "storage/btrfs_pool.h"

#include <btrfsutil.h>
#include <dirent.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "storage/btrfs_quota.h"
#include "storage/directory_pool.h"
#include "storage/extents.h"
#include "storage/mounts.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kVolumeMode = 0700;
// How long a destroy waits for the cleaner to free the subvolume's space (WaitForBtrfsCleaner):
// dropping a subvolume takes milliseconds per few hundred MB; a huge one may take longer, and
// then its space shows up a little later.
constexpr std::chrono::milliseconds kCleanerWait{10'000};

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

// Without CAP_SYS_ADMIN, Btrfs deletes a subvolume only where the filesystem is mounted with
// user_subvol_rm_allowed, and only one its caller may write to: never a read-only snapshot
// (btrfs(5), MOUNT OPTIONS; fs/btrfs/ioctl.c, btrfs_ioctl_snap_destroy).
std::string WithoutRootWhy(const std::string& mountpoint) {
  return fmt::format(
      "without root, Btrfs deletes subvolumes only where the filesystem is mounted with "
      "user_subvol_rm_allowed; as root: 'mount -o remount,user_subvol_rm_allowed {}' (and the "
      "option in /etc/fstab)",
      mountpoint);
}

// Deletes the subvolume at `path`; a missing one is OK. Nested subvolumes (PostgreSQL's user
// may create some inside its volume) make a plain delete fail with ENOTEMPTY; then they are
// deleted first, which needs root. Without root a read-only snapshot is made writable first
// (its owner may), and read-only again if the delete still fails. With `wait_for_space`,
// returns once the kernel has freed the subvolume's space (WaitForBtrfsCleaner), so Usage()
// and statvfs(2) show it at once.
Status DeleteSubvolume(const std::string& path, bool wait_for_space = false) {
  if (!PathExists(path)) return Status::OK();
  uint64_t id = 0;
  if (wait_for_space && btrfs_util_subvolume_id(path.c_str(), &id) != BTRFS_UTIL_OK) id = 0;
  enum btrfs_util_error error = btrfs_util_delete_subvolume(path.c_str(), 0);
  int err = errno;
  if (error != BTRFS_UTIL_OK && err == ENOTEMPTY) {
    error = btrfs_util_delete_subvolume(path.c_str(), BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
    err = errno;
  }
  bool read_only = false;
  if (error != BTRFS_UTIL_OK && (err == EROFS || err == EPERM || err == EACCES) &&
      ::geteuid() != 0 &&
      btrfs_util_get_subvolume_read_only(path.c_str(), &read_only) == BTRFS_UTIL_OK && read_only &&
      btrfs_util_set_subvolume_read_only(path.c_str(), false) == BTRFS_UTIL_OK) {
    error = btrfs_util_delete_subvolume(path.c_str(), 0);
    err = errno;
    if (error != BTRFS_UTIL_OK) (void)btrfs_util_set_subvolume_read_only(path.c_str(), true);
  }
  if (error != BTRFS_UTIL_OK && err == EPERM && ::geteuid() != 0) {
    Result<MountedFilesystem> fs = FilesystemOf(path);
    if (fs.ok() && !HasMountOption(*fs, "user_subvol_rm_allowed")) {
      return Status::FailedPrecondition(
          fmt::format("delete subvolume {}: {}", path, WithoutRootWhy(fs->target)));
    }
  }
  if (error == BTRFS_UTIL_OK) {
    if (id != 0) (void)WaitForBtrfsCleaner(Dirname(path), id, kCleanerWait);
    return Status::OK();
  }
  if (err == ENOENT) return Status::OK();
  if (error == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
    return Status::FailedPrecondition(
        fmt::format("{} is not a Btrfs subvolume; pgbranch did not create it", path));
  }
  return BtrfsError(fmt::format("delete subvolume {}", path), error, err);
}

// Space limits need quotas on the filesystem: what they can do here, and why not if not.
struct QuotaSupport {
  BtrfsQuotaMode mode = BtrfsQuotaMode::kOff;
  std::string why_not;  // for people, when limits are not available
  uint64_t group = 0;   // the level-1 qgroup of the pool's limited volumes (simple quotas)
};

class BtrfsPool : public DirectoryPool {
 public:
  BtrfsPool(std::string root, std::string kind, std::string description, QuotaSupport quotas)
      : DirectoryPool(std::move(root), std::move(kind), std::move(description)),
        quotas_(std::move(quotas)) {}

  PoolCapabilities Capabilities() const override {
    PoolCapabilities capabilities;
    capabilities.space_limits = quotas_.mode != BtrfsQuotaMode::kOff;
    capabilities.space_reservations = quotas_.mode == BtrfsQuotaMode::kSimple;
    return capabilities;
  }

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

  // Only a subvolume can be snapshotted: a plain directory would move in, and fail at the
  // first snapshot.
  Status CheckAdoptable(const std::string& path) override {
    enum btrfs_util_error error = btrfs_util_is_subvolume(path.c_str());
    if (error == BTRFS_UTIL_ERROR_NOT_BTRFS) {
      return Status::FailedPrecondition(fmt::format("{} is not on Btrfs", path));
    }
    if (error == BTRFS_UTIL_ERROR_NOT_SUBVOLUME) {
      return Status::FailedPrecondition(fmt::format(
          "{} is a directory, not a Btrfs subvolume (make one with 'btrfs subvolume create' and "
          "move the files in, or copy the server with --from-server)",
          path));
    }
    if (error != BTRFS_UTIL_OK) return BtrfsError(fmt::format("inspect {}", path), error, errno);
    bool read_only = false;
    error = btrfs_util_get_subvolume_read_only(path.c_str(), &read_only);
    if (error != BTRFS_UTIL_OK) return BtrfsError(fmt::format("inspect {}", path), error, errno);
    if (read_only) {
      return Status::FailedPrecondition(fmt::format("{} is a read-only snapshot", path));
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
    return DeleteSubvolume(VolumePath(volume), /*wait_for_space=*/true);
  }

  Status DestroySnapshot(const std::string& volume, const std::string& snapshot) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    return DeleteSubvolume(SnapshotPath(volume, snapshot), /*wait_for_space=*/true);
  }

  // The limit is on the volume's qgroup's exclusive bytes. With simple quotas the volume also
  // joins the pool's group of limited volumes, which ReserveSpace caps.
  Status SetSpaceLimit(const std::string& volume, std::optional<uint64_t> bytes) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    if (bytes && *bytes == 0) return Status::InvalidArgument("a space limit of 0 bytes");
    PGB_RETURN_IF_ERROR(CheckLimits());
    PGB_ASSIGN_OR_RETURN(uint64_t id, SubvolumeId(volume));
    if (quotas_.mode == BtrfsQuotaMode::kSimple) {
      PGB_RETURN_IF_ERROR(CreateBtrfsQgroup(root(), quotas_.group));
      PGB_RETURN_IF_ERROR(AssignBtrfsQgroup(root(), BtrfsLevel0Qgroup(id), quotas_.group));
    }
    return SetBtrfsQgroupLimit(root(), BtrfsLevel0Qgroup(id), bytes);
  }

  Result<SpaceLimit> GetSpaceLimit(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    PGB_RETURN_IF_ERROR(CheckLimits());
    PGB_ASSIGN_OR_RETURN(uint64_t id, SubvolumeId(volume));
    PGB_ASSIGN_OR_RETURN(BtrfsQgroup qgroup, ReadBtrfsQgroup(root(), BtrfsLevel0Qgroup(id)));
    SpaceLimit limit;
    limit.limit_bytes = qgroup.max_exclusive;
    limit.used_bytes = qgroup.exclusive;
    return limit;
  }

  // Caps the group of limited volumes at what they hold plus what is free, less `bytes`.
  Status ReserveSpace(const std::string& volume, uint64_t bytes) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    if (quotas_.mode != BtrfsQuotaMode::kSimple) {
      return Status::NotSupported(fmt::format(
          "reserving space in a Btrfs pool needs simple quotas; {}",
          quotas_.mode == BtrfsQuotaMode::kFull
              ? "this filesystem has full qgroups, whose group accounting needs a rescan after "
                "each new member"
              : quotas_.why_not));
    }
    PGB_RETURN_IF_ERROR(SubvolumeId(volume).status());
    PGB_RETURN_IF_ERROR(CreateBtrfsQgroup(root(), quotas_.group));
    PGB_ASSIGN_OR_RETURN(BtrfsQgroup group, ReadBtrfsQgroup(root(), quotas_.group));
    PGB_ASSIGN_OR_RETURN(PoolUsage usage, Usage());
    uint64_t room = usage.free_bytes > bytes ? usage.free_bytes - bytes : 0;
    return SetBtrfsQgroupLimit(root(), quotas_.group, group.exclusive + room);
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
  Status CheckLimits() const {
    if (quotas_.mode != BtrfsQuotaMode::kOff) return Status::OK();
    return Status::NotSupported(fmt::format("no space limits in this pool: {}", quotas_.why_not));
  }

  // NotFound if the volume does not exist.
  Result<uint64_t> SubvolumeId(const std::string& volume) const {
    std::string path = VolumePath(volume);
    if (!PathExists(path)) return Status::NotFound(fmt::format("volume {} does not exist", volume));
    uint64_t id = 0;
    enum btrfs_util_error error = btrfs_util_subvolume_id(path.c_str(), &id);
    int err = errno;
    if (error != BTRFS_UTIL_OK) {
      return BtrfsError(fmt::format("subvolume id of {}", path), error, err);
    }
    return id;
  }

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

  const QuotaSupport quotas_;
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
  if (::geteuid() != 0) {
    // A pool whose branches could be made and never deleted is refused before it is made.
    PGB_ASSIGN_OR_RETURN(MountedFilesystem fs, FilesystemOf(root));
    if (!HasMountOption(fs, "user_subvol_rm_allowed")) {
      return Status::FailedPrecondition(fmt::format(
          "{} is on a Btrfs filesystem mounted without user_subvol_rm_allowed: {}; or choose "
          "--reflink or --copy",
          root, WithoutRootWhy(fs.target)));
    }
  }
  return MakePoolDirectories(root);
}

Result<std::unique_ptr<Pool>> OpenBtrfsPool(const std::string& root, std::string kind,
                                            std::string description) {
  PGB_RETURN_IF_ERROR(CheckBtrfsDirectory(root));
  PGB_RETURN_IF_ERROR(CheckPoolDirectories(root));
  QuotaSupport quotas;
  Result<BtrfsQuotaMode> mode = GetBtrfsQuotaMode(root);
  if (mode.ok()) {
    quotas.mode = *mode;
    if (*mode == BtrfsQuotaMode::kOff) {
      quotas.why_not =
          kind == "image" ? "this kernel has no Btrfs simple quotas (Linux 6.7+)"
                          : fmt::format(
                                "quotas are off on the Btrfs filesystem of {}; 'btrfs quota enable "
                                "--simple MOUNTPOINT' (btrfs-progs 6.7+, Linux 6.7+) turns them on "
                                "for the whole filesystem",
                                root);
    }
  } else {
    quotas.why_not = mode.status().message();
  }
  // The level-1 qgroup of this pool's limited volumes, named after where the pool is, so two
  // pools on one filesystem keep apart: the subvolume holding volumes/ and its inode number.
  uint64_t subvolume = 0;
  struct stat st {};
  std::string volumes = JoinPath(root, "volumes");
  if (btrfs_util_subvolume_id(volumes.c_str(), &subvolume) == BTRFS_UTIL_OK &&
      ::stat(volumes.c_str(), &st) == 0) {
    constexpr uint64_t kIdMask = (uint64_t{1} << 48) - 1;
    quotas.group = BtrfsLevel1Qgroup(((subvolume << 24) ^ st.st_ino) & kIdMask);
  }
  if (!quotas.why_not.empty()) {
    description += fmt::format(" (no per-branch space limits: {})", quotas.why_not);
  }
  return std::unique_ptr<Pool>(
      std::make_unique<BtrfsPool>(root, std::move(kind), std::move(description), quotas));
}

}  // namespace pgb
