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
#include "storage/extents.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kPoolDirMode = 0711;
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

Status CheckVolumeName(const std::string& name) {
  if (IsVolumeName(name)) return Status::OK();
  return Status::InvalidArgument(
      fmt::format("invalid volume name \"{}\": expected 'v' and 16 lower-case hex digits", name));
}

Status CheckSnapshotName(const std::string& name) {
  if (IsSnapshotName(name)) return Status::OK();
  return Status::InvalidArgument(
      fmt::format("invalid snapshot name \"{}\": expected 's' and 16 lower-case hex digits", name));
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
Result<std::vector<std::string>> ListNames(const std::string& dir,
                                           bool (*valid)(std::string_view)) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    int err = errno;
    return PosixError(fmt::format("open directory {}", dir), err);
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* entry = ::readdir(d);
    if (entry == nullptr) break;
    if (valid(entry->d_name)) names.emplace_back(entry->d_name);
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return PosixError(fmt::format("read directory {}", dir), err);
  std::sort(names.begin(), names.end());
  return names;
}

class BtrfsPool : public Pool {
 public:
  BtrfsPool(std::string root, std::string kind, std::string description)
      : root_(std::move(root)),
        volumes_dir_(JoinPath(root_, "volumes")),
        snapshots_dir_(JoinPath(root_, "snapshots")),
        kind_(std::move(kind)),
        description_(std::move(description)) {}

  std::string Kind() const override { return kind_; }
  PoolCapabilities Capabilities() const override { return PoolCapabilities{}; }
  std::string Describe() const override { return description_; }

  std::string VolumePath(const std::string& volume) const override {
    return JoinPath(volumes_dir_, volume);
  }
  std::string SnapshotPath(const std::string& volume, const std::string& snapshot) const override {
    return JoinPath(snapshots_dir_, snapshot);
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

  Result<std::vector<std::string>> ListVolumes() override {
    return ListNames(volumes_dir_, IsVolumeName);
  }
  Result<std::vector<std::string>> ListSnapshots() override {
    return ListNames(snapshots_dir_, IsSnapshotName);
  }

  Result<SpaceUsage> VolumeSpace(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    return MeasureTree(VolumePath(volume));
  }

  Result<SpaceUsage> SnapshotSpace(const std::string& volume,
                                   const std::string& snapshot) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    return MeasureTree(SnapshotPath(volume, snapshot));
  }

  Result<PoolUsage> Usage() override {
    struct statvfs st {};
    if (::statvfs(root_.c_str(), &st) != 0) {
      int err = errno;
      return PosixError(fmt::format("statvfs {}", root_), err);
    }
    PoolUsage usage;
    usage.size_bytes = static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
    usage.used_bytes = static_cast<uint64_t>(st.f_blocks - st.f_bfree) * st.f_frsize;
    usage.free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    return usage;
  }

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

  const std::string root_;
  const std::string volumes_dir_;
  const std::string snapshots_dir_;
  const std::string kind_;
  const std::string description_;
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
  std::vector<std::string> created;
  for (const char* name : {"volumes", "snapshots"}) {
    std::string dir = JoinPath(root, name);
    bool existed = PathExists(dir);
    Status status = EnsureDir(dir, kPoolDirMode);
    if (!status.ok()) {
      for (auto it = created.rbegin(); it != created.rend(); ++it) (void)RemoveEmptyDir(*it);
      return status;
    }
    if (!existed) created.push_back(dir);
  }
  return Status::OK();
}

Result<std::unique_ptr<Pool>> OpenBtrfsPool(const std::string& root, std::string kind,
                                            std::string description) {
  PGB_RETURN_IF_ERROR(CheckBtrfsDirectory(root));
  for (const char* name : {"volumes", "snapshots"}) {
    std::string dir = JoinPath(root, name);
    if (!IsDirectory(dir)) {
      return Status::FailedPrecondition(fmt::format(
          "pool {} has no {}/ directory; was it created with pgbranch init?", root, name));
    }
  }
  return std::unique_ptr<Pool>(
      std::make_unique<BtrfsPool>(root, std::move(kind), std::move(description)));
}

}  // namespace pgb
