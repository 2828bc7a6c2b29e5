#include "storage/tree_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <string_view>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/random.h"
#include "common/undo.h"
#include "storage/directory_pool.h"
#include "storage/extents.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kVolumeMode = 0700;
constexpr mode_t kBracketFileMode = 0600;

// A file the bracket asks us to add must land directly at the snapshot's root: a plain name,
// so no directory of the copied tree (which PostgreSQL's user controls) is ever walked through.
Status CheckRootFileName(const std::string& name) {
  if (!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos) {
    return Status::OK();
  }
  return Status::InvalidArgument(fmt::format(
      "invalid snapshot file name \"{}\": expected a plain name at the snapshot's root", name));
}

// Creates `name` in the directory `dir` holding `content`, with `mode` and `owner`, replacing a
// file of that name. No fsync and no temp-and-rename: this writes into a snapshot nobody sees
// yet, whose creation ends with one syncfs, and whose remains a crash leaves are removed whole.
Status WriteSnapshotFile(const std::string& dir, const std::string& name,
                         const std::string& content, mode_t mode, FileOwner owner) {
  std::string path = JoinPath(dir, name);
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return PosixError(fmt::format("open directory {}", dir), errno);
  Status status;
  if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
    status = PosixError(fmt::format("remove {}", path), errno);
  }
  int fd = -1;
  if (status.ok()) {
    fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) status = PosixError(fmt::format("create {}", path), errno);
  }
  for (size_t done = 0; status.ok() && done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = PosixError(fmt::format("write {}", path), errno);
    if (n > 0) done += static_cast<size_t>(n);
  }
  if (status.ok() && ::fchown(fd, owner.uid, owner.gid) != 0) {
    status = PosixError(fmt::format("chown {}", path), errno);
  }
  if (status.ok() && ::fchmod(fd, mode) != 0) {
    status = PosixError(fmt::format("chmod {}", path), errno);
  }
  if (fd >= 0 && ::close(fd) != 0 && status.ok()) {
    status = PosixError(fmt::format("close {}", path), errno);
  }
  ::close(dir_fd);
  return status;
}

// ENOSPC/EDQUOT say the pool is full: say so, and what to do.
Status WithFullPoolHint(Status status) {
  if (!status.Is(StatusCode::kResourceExhausted)) return status;
  return Status::ResourceExhausted(fmt::format(
      "{}: the pool is full; delete branches or snapshots, or grow the pool", status.message()));
}

// Why a tree pool cannot limit a branch's space, for people (Describe, NotSupported).
// Limits here would need the filesystem's project quotas (a project id per volume directory,
// `xfs_quota -x -c 'limit -p bhard=...'`). XFS counts a file's quota by the blocks it maps, so
// every reflinked file is charged its full size, shared or not (the rule its reflink code and
// fstests' generic/305 follow): a limit could only bound a branch's whole size (its clone's
// size plus what it adds), not what it writes, and overwriting shared blocks would use new
// space the quota never sees. The kernel this project is tested on also lacks
// CONFIG_XFS_QUOTA (and ext4's quota format), so none of it could be tested.
std::string NoLimitsReason(CopyMethod method) {
  std::string why =
      method == CopyMethod::kReflink
          ? "a reflink pool would need XFS project quotas, which charge every reflinked file "
            "its full size and which pgbranch does not manage"
          : "a copy pool would need the filesystem's project quotas, which pgbranch does not "
            "manage";
  // /proc/fs/xfs/xqmstat exists only in kernels built with XFS quota support.
  if (method == CopyMethod::kReflink && !PathExists("/proc/fs/xfs/xqmstat")) {
    why += "; this kernel has no XFS quota support";
  }
  return why;
}

class TreePool : public DirectoryPool {
 public:
  TreePool(std::string root, CopyMethod method, std::string kind, std::string description)
      : DirectoryPool(std::move(root), std::move(kind),
                      fmt::format("{} (no per-branch space limits: {})", description,
                                  NoLimitsReason(method))),
        method_(method) {}

  PoolCapabilities Capabilities() const override {
    PoolCapabilities capabilities;
    capabilities.atomic_snapshots = false;
    capabilities.copy_on_write = method_ == CopyMethod::kReflink;
    capabilities.clones_pin_snapshots = false;
    return capabilities;
  }

  Status CreateVolume(const std::string& volume, std::optional<FileOwner> owner) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    std::string path = VolumePath(volume);
    if (::mkdir(path.c_str(), kVolumeMode) != 0) {
      int err = errno;
      if (err == EEXIST) return Status::AlreadyExists(fmt::format("volume {} exists", volume));
      return WithFullPoolHint(PosixError(fmt::format("create directory {}", path), err));
    }
    Status status = SetMode(path, kVolumeMode, owner);
    if (!status.ok()) {
      (void)RemoveEmptyDir(path);  // undo; the chmod/chown failure is what the caller needs
      return status;
    }
    return Status::OK();
  }

  // Copies the volume, then (with a bracket) calls between(), copies the recopy_dirs again and
  // adds the files between() returned; finally seals the copy and syncs the filesystem.
  Status CreateSnapshot(const std::string& volume, const std::string& snapshot,
                        const SnapshotBracket* bracket) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    if (bracket != nullptr) {
      for (const std::string& dir : bracket->recopy_dirs)
        PGB_RETURN_IF_ERROR(CheckRelativePath(dir));
    }
    std::string source = VolumePath(volume);
    std::string target = SnapshotPath(volume, snapshot);
    struct stat source_st {};
    if (::lstat(source.c_str(), &source_st) != 0 || !S_ISDIR(source_st.st_mode)) {
      return Status::NotFound(fmt::format("volume {} does not exist", volume));
    }
    if (PathExists(target))
      return Status::AlreadyExists(fmt::format("snapshot {} exists", snapshot));

    CopyOptions options;
    options.method = method_;
    // CopyTree removes what it made if it fails.
    PGB_RETURN_IF_ERROR(WithFullPoolHint(CopyTree(source, target, options)));
    UndoStack undo;
    undo.Push("remove the partial snapshot", [target] { return RemoveTree(target); });
    if (bracket != nullptr) {
      Status status = FollowBracket(*bracket, source, target, source_st, options);
      if (!status.ok()) return undo.Rollback(WithFullPoolHint(status));
    }
    Result<SealMethod> sealed = SealTree(target);
    if (!sealed.ok()) return undo.Rollback(sealed.status());
    if (*sealed == SealMethod::kWriteBits && ::geteuid() == 0) {
      // (Without root the flag is out of reach whatever the filesystem: nothing to warn of.)
      spdlog::warn(
          "snapshot {}: the filesystem of {} has no immutable flag; the snapshot was made "
          "read-only by permissions only, which do not stop root",
          snapshot, root());
    }
    Status synced = SyncFs(target);
    if (!synced.ok()) return undo.Rollback(synced);
    undo.Commit();
    return Status::OK();
  }

  Status CloneSnapshot(const std::string& volume, const std::string& snapshot,
                       const std::string& new_volume) override {
    // `volume` is only a hint (pool.h): snapshots live in one directory by their unique name.
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    PGB_RETURN_IF_ERROR(CheckVolumeName(new_volume));
    std::string source = SnapshotPath(volume, snapshot);
    std::string target = VolumePath(new_volume);
    struct stat source_st {};
    if (::lstat(source.c_str(), &source_st) != 0 || !S_ISDIR(source_st.st_mode)) {
      return Status::NotFound(fmt::format("snapshot {} does not exist", snapshot));
    }
    if (PathExists(target))
      return Status::AlreadyExists(fmt::format("volume {} exists", new_volume));

    CopyOptions options;
    options.method = method_;
    // A snapshot SealTree could only seal by permissions lost the owner's write permission
    // everywhere (its root says so); the clone gets it back. PostgreSQL's own files and
    // directories are always writable by their owner.
    options.add_owner_write = (source_st.st_mode & S_IWUSR) == 0;
    PGB_RETURN_IF_ERROR(WithFullPoolHint(CopyTree(source, target, options)));
    UndoStack undo;
    undo.Push("remove the partial volume", [target] { return RemoveTree(target); });
    Status status = SetMode(target, kVolumeMode);
    if (status.ok()) status = SyncFs(target);
    if (!status.ok()) return undo.Rollback(status);
    undo.Commit();
    return Status::OK();
  }

  Status DestroyVolume(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    return RemoveTree(VolumePath(volume));
  }

  Status DestroySnapshot(const std::string& volume, const std::string& snapshot) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    return RemoveTree(SnapshotPath(volume, snapshot));
  }

 protected:
  // ---- Quarantine (DirectoryPool moves; this seals and destroys) ----

  // Only the snapshot's root directory: its immutable flag stops rename(2) (EPERM), the flags
  // inside do not. A snapshot sealed by write bits moves as it is.
  Status SetSealed(const std::string& path, bool sealed) override {
    return SetImmutableFlag(path, sealed);
  }

  Status RemoveObject(const std::string& path) override { return RemoveTree(path); }


  Status SetSpaceLimit(const std::string& volume, std::optional<uint64_t> /*bytes*/) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    return NoLimits();
  }
  Result<SpaceLimit> GetSpaceLimit(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    return NoLimits();
  }
  Status ReserveSpace(const std::string& volume, uint64_t /*bytes*/) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    return NoLimits();
  }

 private:
  Status NoLimits() const {
    return Status::NotSupported(
        fmt::format("no space limits in this pool: {}", NoLimitsReason(method_)));
  }

  // The second half of a bracketed snapshot (see SnapshotBracket): between(), the second pass
  // over recopy_dirs, then the returned files, owned like the volume's root.
  static Status FollowBracket(const SnapshotBracket& bracket, const std::string& source,
                              const std::string& target, const struct stat& source_st,
                              const CopyOptions& options) {
    std::map<std::string, std::string> files;
    if (bracket.between) {
      PGB_ASSIGN_OR_RETURN(files, bracket.between());
    }
    for (const std::string& dir : bracket.recopy_dirs) {
      PGB_RETURN_IF_ERROR(RecopyPath(source, target, dir, options));
    }
    FileOwner owner{source_st.st_uid, source_st.st_gid};
    for (const auto& [name, content] : files) {
      PGB_RETURN_IF_ERROR(CheckRootFileName(name));
      PGB_RETURN_IF_ERROR(WriteSnapshotFile(target, name, content, kBracketFileMode, owner));
    }
    return Status::OK();
  }

  const CopyMethod method_;
};

// OK if we can create files in `dir`: creates and removes a probe.
Status CheckWritable(const std::string& dir) {
  std::string probe = JoinPath(dir, ".pgbranch-probe-" + RandomHex(6));
  PGB_RETURN_IF_ERROR(WriteFileAtomic(probe, "", 0600));
  return RemoveFile(probe);
}

}  // namespace

Status InitTreePoolDirectory(const std::string& root, CopyMethod method) {
  if (!PathExists(root)) {
    return Status::FailedPrecondition(fmt::format("{} does not exist; create it first", root));
  }
  if (!IsDirectory(root)) {
    return Status::FailedPrecondition(fmt::format("{} is not a directory", root));
  }
  if (method == CopyMethod::kReflink) {
    PGB_RETURN_IF_ERROR(CheckReflinkSupport(root));
  } else {
    PGB_RETURN_IF_ERROR(CheckWritable(root));
  }
  return MakePoolDirectories(root);
}

Result<std::unique_ptr<Pool>> OpenTreePool(const std::string& root, CopyMethod method,
                                           std::string kind, std::string description) {
  if (!IsDirectory(root)) {
    return Status::FailedPrecondition(
        fmt::format("pool directory {} does not exist or is not a directory", root));
  }
  PGB_RETURN_IF_ERROR(CheckPoolDirectories(root));
  return std::unique_ptr<Pool>(
      std::make_unique<TreePool>(root, method, std::move(kind), std::move(description)));
}

}  // namespace pgb
