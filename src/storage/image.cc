#include "storage/image.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <libmount/libmount.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/failpoint.h"
#include "common/fs.h"
#include "common/undo.h"
#include "storage/btrfs_pool.h"
#include "storage/btrfs_quota.h"
#include "storage/mounts.h"
#include "storage/tree_copy.h"
#include "storage/tree_pool.h"

namespace pgb {
namespace {

constexpr mode_t kImageMode = 0600;
// The mount point and any directory created on the way to it or to the image: PostgreSQL's
// user must be able to pass through them to reach its volume, but not list them.
constexpr mode_t kDirMode = 0711;
constexpr std::chrono::minutes kMkfsTimeout{2};
// mkfs.xfs refuses anything smaller ("Filesystem must be larger than 300MB", xfsprogs 6.1).
constexpr uint64_t kXfsMinImageSize = 300 * kMiB;

// The config with absolute, normalised paths, or why it cannot describe an image pool.
Result<PoolConfig> NormalizeConfig(const PoolConfig& config) {
  if (config.fs != "btrfs" && config.fs != "xfs") {
    return Status::InvalidArgument(
        fmt::format("unknown filesystem \"{}\" for an image pool; known: btrfs, xfs", config.fs));
  }
  if (config.image.empty()) return Status::InvalidArgument("image pool without an image file");
  if (config.root.empty()) return Status::InvalidArgument("image pool without a mount point");
  PoolConfig normal = config;
  PGB_ASSIGN_OR_RETURN(normal.image, AbsolutePath(config.image));
  PGB_ASSIGN_OR_RETURN(normal.root, AbsolutePath(config.root));
  return normal;
}

// The canonical form of an existing `path` (symlinks resolved), or NotFound.
Result<std::string> RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf) == nullptr) {
    int err = errno;
    return PosixError(fmt::format("resolve {}", path), err);
  }
  return std::string(buf);
}

// The source ("/dev/loop0") of the topmost filesystem mounted exactly at `dir`, or nullopt.
Result<std::optional<std::string>> MountSource(const std::string& dir) {
  Result<std::string> real = RealPath(dir);
  if (!real.ok()) {
    if (real.status().Is(StatusCode::kNotFound)) return std::optional<std::string>();
    return real.status();
  }
  struct libmnt_table* table = mnt_new_table_from_file("/proc/self/mountinfo");
  if (table == nullptr) return Status::IOError("cannot read /proc/self/mountinfo");
  std::optional<std::string> source;
  // The literal comparison suffices: `real` is canonical, as are the kernel's mount points.
  struct libmnt_fs* fs = mnt_table_find_target(table, real->c_str(), MNT_ITER_BACKWARD);
  if (fs != nullptr) {
    const char* src = mnt_fs_get_source(fs);
    source = src != nullptr ? src : "";
  }
  mnt_unref_table(table);
  return source;
}

// The file behind loop device `device` ("/dev/loop0" or "loop0"), or "" if `device` is not a
// bound loop device. The kernel appends " (deleted)" for a removed file: that never matches.
std::string LoopBackingFile(const std::string& device) {
  std::string name = device.substr(device.find_last_of('/') + 1);
  if (name.rfind("loop", 0) != 0) return "";
  Result<std::string> text = ReadFile(fmt::format("/sys/block/{}/loop/backing_file", name));
  if (!text.ok()) return "";
  std::string file = std::move(text).value();
  while (!file.empty() && file.back() == '\n') file.pop_back();
  return file;
}

// A libmount context that never runs a /sbin/mount.<type> helper: the mount(2) or umount(2)
// call is made here or not at all.
struct libmnt_context* NewMountContext() {
  struct libmnt_context* cxt = mnt_new_context();
  if (cxt != nullptr) mnt_context_disable_helpers(cxt, 1);
  return cxt;
}

// Frees `cxt` after an operation that returned `rc`, and turns the outcome into a Status: the
// code from the failed system call's errno, the message libmount's explanation.
Status FinishMountContext(struct libmnt_context* cxt, int rc, const std::string& what) {
  char message[512] = "";
  int exit_code = mnt_context_get_excode(cxt, rc, message, sizeof(message));
  int err = mnt_context_syscall_called(cxt) ? mnt_context_get_syscall_errno(cxt) : 0;
  mnt_free_context(cxt);
  if (exit_code == MNT_EX_SUCCESS) return Status::OK();
  Status status = err != 0 ? PosixError(what, err) : Status::IOError(what);
  if (message[0] == '\0') return status;
  return Status(status.code(), fmt::format("{}: {}", what, message));
}

// Mounts `image` (a filesystem of type `fs`: "btrfs" or "xfs") at `dir` through a loop device
// with `options` (comma-separated, as mount(8) -o takes them).
Status MountImage(const std::string& image, const std::string& dir, const std::string& fs,
                  const std::string& options = "loop,noatime") {
  struct libmnt_context* cxt = NewMountContext();
  if (cxt == nullptr) return Status::Internal("mnt_new_context failed");
  int rc = mnt_context_set_source(cxt, image.c_str());
  if (rc == 0) rc = mnt_context_set_target(cxt, dir.c_str());
  if (rc == 0) rc = mnt_context_set_fstype(cxt, fs.c_str());
  if (rc == 0) rc = mnt_context_set_options(cxt, options.c_str());
  if (rc == 0) rc = mnt_context_mount(cxt);
  return FinishMountContext(cxt, rc, fmt::format("mount {} at {}", image, dir));
}

// Unmounts the filesystem at `dir`. Unavailable while files under it are open (a PostgreSQL of
// the pool still running).
Status Unmount(const std::string& dir) {
  struct libmnt_context* cxt = NewMountContext();
  if (cxt == nullptr) return Status::Internal("mnt_new_context failed");
  int rc = mnt_context_set_target(cxt, dir.c_str());
  if (rc == 0) rc = mnt_context_umount(cxt);
  Status status = FinishMountContext(cxt, rc, fmt::format("unmount {}", dir));
  if (status.Is(StatusCode::kUnavailable)) {
    return Status::Unavailable(
        fmt::format("{}; the pool is busy: stop the branches that use it first", status.message()));
  }
  return status;
}

// OK if `dir` is missing or an empty directory with nothing mounted on it: a place to mount
// the pool without hiding anything.
Status CheckMountPoint(const std::string& dir) {
  if (!PathExists(dir)) return Status::OK();
  if (!IsDirectory(dir))
    return Status::FailedPrecondition(fmt::format("{} is not a directory", dir));
  PGB_ASSIGN_OR_RETURN(bool mounted, IsMounted(dir));
  if (mounted) {
    return Status::FailedPrecondition(
        fmt::format("{} has a filesystem mounted on it already", dir));
  }
  std::error_code ec;
  if (!std::filesystem::is_empty(dir, ec) || ec) {
    return Status::FailedPrecondition(fmt::format(
        "{} is not empty; mounting the pool there would hide its content: move it away", dir));
  }
  return Status::OK();
}

// True if `config.image` is mounted at `config.root`, false if nothing is. FailedPrecondition
// if something else is mounted there: that is never touched.
Result<bool> ImageMountedAtRoot(const PoolConfig& config) {
  PGB_ASSIGN_OR_RETURN(std::optional<std::string> source, MountSource(config.root));
  if (!source) return false;
  Result<std::string> image = RealPath(config.image);
  if (image.ok() && LoopBackingFile(*source) == *image) return true;
  return Status::FailedPrecondition(
      fmt::format("{} has {} mounted on it, not the image {}", config.root, *source, config.image));
}

// Creates `dir` and its missing parents with kDirMode, and records their removal in
// `undo`. An existing `dir` is left as it is.
Status CreateMissingDirs(const std::string& dir, UndoStack& undo) {
  std::vector<std::string> missing;  // deepest first
  for (std::string cur = dir; cur != "/" && cur != "." && !PathExists(cur); cur = Dirname(cur)) {
    missing.push_back(cur);
  }
  if (missing.empty()) return Status::OK();
  undo.Push("remove the directories created", [missing] {
    for (const std::string& d : missing) PGB_RETURN_IF_ERROR(RemoveEmptyDir(d));
    return Status::OK();
  });
  return EnsureDir(dir, kDirMode);
}

// Creates `path` as an empty sparse file of `size` bytes, mode 0600. AlreadyExists if it exists.
Status CreateSparseFile(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kImageMode);
  if (fd < 0) {
    int err = errno;
    return PosixError(fmt::format("create image {}", path), err);
  }
  // Where the image itself lives on Btrfs, copy-on-write of the image file under a Btrfs that
  // already does copy-on-write inside it only fragments it: switch it off while the file is
  // still empty (the only time the flag can be set). Elsewhere the ioctl fails; that is fine.
  int attr = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
    attr |= FS_NOCOW_FL;
    (void)::ioctl(fd, FS_IOC_SETFLAGS, &attr);
  }
  Status status;
  if (::fchmod(fd, kImageMode) != 0) {
    int err = errno;
    status = PosixError(fmt::format("chmod {}", path), err);
  } else if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    status = PosixError(fmt::format("resize {} to {}", path, FormatBytes(size)), err);
  }
  ::close(fd);
  // The file is ours (O_EXCL): a failed create leaves none, or a retry would find a 0-byte
  // "image" and try to mount it.
  if (!status.ok()) {
    Status removed = RemoveFile(path);
    if (!removed.ok()) {
      return Status(status.code(), fmt::format("{}; removing it failed too: {}", status.message(),
                                               removed.message()));
    }
  }
  return status;
}

std::string DescribeImagePool(const PoolConfig& config) {
  struct stat st {};
  uint64_t size = ::stat(config.image.c_str(), &st) == 0 ? st.st_size : config.image_size;
  std::string fs = config.fs == "xfs" ? "xfs (reflink)" : config.fs;
  return fmt::format("{} on image {} ({}) at {}", fs, config.image, FormatBytes(size), config.root);
}

// A Btrfs image's filesystem is pgbranch's own, so it turns on simple quotas there: they are
// what per-branch space limits need (storage/pool.h SetSpaceLimit), and they cost little (see
// README, "Space limits"). A kernel without them leaves the pool without limits (Describe()
// says so), not without a pool.
Status EnableQuotas(const std::string& root) {
  Status status = EnableBtrfsSimpleQuotas(root);
  return status.Is(StatusCode::kNotSupported) ? Status::OK() : status;
}

// The argv that formats `config.image` with `config.fs`.
std::vector<std::string> MkfsArgv(const PoolConfig& config) {
  if (config.fs == "xfs") {
    return {"mkfs.xfs", "-q", "-L", "pgbranch", "-m", "reflink=1", config.image};
  }
  return {"mkfs.btrfs", "-q", "-L", "pgbranch", config.image};
}

// Checks that an image of config.image_size fits where config.image goes and that config.root
// can be mounted on, then makes the image file (sparse, mode 0600, and the directories on the
// way) and formats it. What it made is on `undo`.
Status MakeImageFile(const PoolConfig& config, ProcessRunner& runner, UndoStack& undo) {
  PGB_ASSIGN_OR_RETURN(uint64_t free, FreeSpaceFor(config.image));
  if (config.image_size > free) {
    return Status::ResourceExhausted(fmt::format(
        "an image of {} does not fit in the {} free where {} would go (a sparse image larger "
        "than the free space fails with I/O errors once the disk fills up); choose a smaller "
        "size",
        FormatBytes(config.image_size), FormatBytes(free), config.image));
  }
  PGB_RETURN_IF_ERROR(CheckMountPoint(config.root));
  PGB_RETURN_IF_ERROR(CreateMissingDirs(Dirname(config.image), undo));
  PGB_RETURN_IF_ERROR(CreateSparseFile(config.image, config.image_size));
  undo.Push("remove the image", [image = config.image] { return RemoveFile(image); });
  Command mkfs;
  mkfs.argv = MkfsArgv(config);
  mkfs.timeout = kMkfsTimeout;
  return RunChecked(runner, mkfs).status();
}

}  // namespace

Result<bool> IsMounted(const std::string& dir) {
  PGB_ASSIGN_OR_RETURN(std::optional<std::string> source, MountSource(dir));
  return source.has_value();
}

Result<std::vector<std::string>> LoopDevicesBackedBy(const std::string& image) {
  Result<std::string> real = RealPath(image);
  std::string wanted = real.ok() ? *real : image;
  DIR* dir = ::opendir("/sys/block");
  if (dir == nullptr) {
    int err = errno;
    return PosixError("open directory /sys/block", err);
  }
  std::vector<std::string> devices;
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    std::string backing = LoopBackingFile(name);
    if (backing == wanted || backing == wanted + " (deleted)") devices.push_back("/dev/" + name);
  }
  ::closedir(dir);
  return devices;
}

Status CreateImagePool(const PoolConfig& raw_config, ProcessRunner& runner) {
  PGB_ASSIGN_OR_RETURN(PoolConfig config, NormalizeConfig(raw_config));
  if (config.image_size == 0) return Status::InvalidArgument("image pool of size 0");
  if (config.fs == "xfs" && config.image_size < kXfsMinImageSize) {
    return Status::InvalidArgument(fmt::format("an XFS image pool needs at least {}, not {}",
                                               FormatBytes(kXfsMinImageSize),
                                               FormatBytes(config.image_size)));
  }

  // Check everything before changing anything, so a refusal leaves no trace.
  if (PathExists(config.image)) {
    return Status::AlreadyExists(fmt::format(
        "image file {} exists already; open it as a pool, or remove it first", config.image));
  }
  UndoStack undo;
  PGB_RETURN_IF_ERROR(MakeImageFile(config, runner, undo));
  PGB_RETURN_IF_ERROR(CreateMissingDirs(config.root, undo));
  PGB_RETURN_IF_ERROR(MountImage(config.image, config.root, config.fs));
  undo.Push("unmount the image", [root = config.root] { return Unmount(root); });
  PGB_RETURN_IF_ERROR(Failpoint("storage.image_pool.after_mount"));

  // The root directory of the new filesystem hides the mount point's mode: set it again.
  PGB_RETURN_IF_ERROR(SetMode(config.root, kDirMode));
  if (config.fs == "xfs") {
    PGB_RETURN_IF_ERROR(InitTreePoolDirectory(config.root, CopyMethod::kReflink));
  } else {
    PGB_RETURN_IF_ERROR(InitBtrfsPoolDirectory(config.root));
    PGB_RETURN_IF_ERROR(EnableQuotas(config.root));
  }
  undo.Commit();
  return Status::OK();
}

Result<uint64_t> DefaultImageSize(const std::string& image, uint64_t max) {
  PGB_ASSIGN_OR_RETURN(uint64_t avail, FreeSpaceFor(image));
  uint64_t size = std::min(max, avail / 10 * 8) / kGiB * kGiB;
  if (size < kMinImagePoolSize) {
    return Status::ResourceExhausted(
        fmt::format("only {} free next to {}; an image pool needs at least 1.25 GiB free",
                    FormatBytes(avail), image));
  }
  return size;
}

Result<bool> SetUpUserImage(const std::string& image, const std::string& dir, uint64_t size,
                            const FileOwner& owner, ProcessRunner& runner) {
  PoolConfig raw;
  raw.kind = "image";
  raw.image = image;
  raw.root = dir;
  raw.image_size = size;
  PGB_ASSIGN_OR_RETURN(PoolConfig config, NormalizeConfig(raw));
  UndoStack undo;
  bool made = false;
  if (!PathExists(config.image)) {
    // Checked before anything is made, as CreateImagePool does.
    if (size < kMinImagePoolSize) {
      return Status::InvalidArgument(fmt::format(
          "an image needs at least {}, not {}", FormatBytes(kMinImagePoolSize), FormatBytes(size)));
    }
    PGB_RETURN_IF_ERROR(MakeImageFile(config, runner, undo));
    made = true;
  }
  PGB_ASSIGN_OR_RETURN(bool mounted, ImageMountedAtRoot(config));
  if (!mounted) {
    PGB_RETURN_IF_ERROR(CheckMountPoint(config.root));
    PGB_RETURN_IF_ERROR(CreateMissingDirs(config.root, undo));
    PGB_RETURN_IF_ERROR(
        MountImage(config.image, config.root, "btrfs", "loop,noatime,user_subvol_rm_allowed"));
    undo.Push("unmount the image", [root = config.root] { return Unmount(root); });
  } else {
    PGB_ASSIGN_OR_RETURN(MountedFilesystem fs, FilesystemOf(config.root));
    if (!HasMountOption(fs, "user_subvol_rm_allowed")) {
      return Status::FailedPrecondition(
          fmt::format("{} is mounted at {} without user_subvol_rm_allowed; unmount it first",
                      config.image, config.root));
    }
  }
  // The filesystem's root is the user's, and theirs alone.
  PGB_RETURN_IF_ERROR(SetMode(config.root, 0700, owner));
  undo.Commit();
  return made;
}

Result<std::unique_ptr<Pool>> OpenImagePool(const PoolConfig& raw_config, ProcessRunner& runner) {
  PGB_ASSIGN_OR_RETURN(PoolConfig config, NormalizeConfig(raw_config));
  if (!PathExists(config.image)) {
    return Status::FailedPrecondition(fmt::format(
        "image file {} does not exist; create the pool with pgbranch init", config.image));
  }
  PGB_ASSIGN_OR_RETURN(bool mounted, ImageMountedAtRoot(config));
  UndoStack undo;
  if (!mounted) {
    // After a reboot: mount it again where it was.
    PGB_RETURN_IF_ERROR(CheckMountPoint(config.root));
    PGB_RETURN_IF_ERROR(CreateMissingDirs(config.root, undo));
    PGB_RETURN_IF_ERROR(MountImage(config.image, config.root, config.fs));
    undo.Push("unmount the image", [root = config.root] { return Unmount(root); });
  }
  std::unique_ptr<Pool> pool;
  if (config.fs == "xfs") {
    PGB_ASSIGN_OR_RETURN(
        pool, OpenTreePool(config.root, CopyMethod::kReflink, "image", DescribeImagePool(config)));
  } else {
    // Pools made before pgbranch limited branches get their quotas now.
    PGB_RETURN_IF_ERROR(EnableQuotas(config.root));
    PGB_ASSIGN_OR_RETURN(pool, OpenBtrfsPool(config.root, "image", DescribeImagePool(config)));
  }
  undo.Commit();
  return pool;
}

Status CloseImagePool(const PoolConfig& raw_config) {
  PGB_ASSIGN_OR_RETURN(PoolConfig config, NormalizeConfig(raw_config));
  PGB_ASSIGN_OR_RETURN(bool mounted, ImageMountedAtRoot(config));
  if (!mounted) return Status::OK();
  return Unmount(config.root);
}

Status RemoveImagePool(const PoolConfig& raw_config) {
  PGB_ASSIGN_OR_RETURN(PoolConfig config, NormalizeConfig(raw_config));
  PGB_RETURN_IF_ERROR(CloseImagePool(config));
  PGB_RETURN_IF_ERROR(RemoveFile(config.image));
  return RemoveEmptyDir(config.root);
}

Result<uint64_t> FreeSpaceFor(const std::string& path) {
  PGB_ASSIGN_OR_RETURN(std::string dir, AbsolutePath(path));
  while (dir != "/" && !IsDirectory(dir)) dir = Dirname(dir);
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) {
    int err = errno;
    return PosixError(fmt::format("statvfs {}", dir), err);
  }
  return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

}  // namespace pgb
