#include "storage/tree_copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "common/failpoint.h"
#include "common/fs.h"
#include "common/random.h"

namespace pgb {
namespace {

// Errors that mean "this entry vanished while we were looking": skip it, do not fail.
bool Vanished(int err) { return err == ENOENT || err == ESTALE; }

// Errors of FS_IOC_GETFLAGS/SETFLAGS that mean "this filesystem has no inode flags".
bool FlagsUnsupported(int err) { return err == ENOTTY || err == EOPNOTSUPP || err == ENOSYS; }

// Test builds: PGBRANCH_FAILPOINTS=storage.tree.no_immutable_flag plays a filesystem without
// FS_IMMUTABLE_FL, so the fallback of SealTree can be tested on XFS and Btrfs.
constexpr std::string_view kNoImmutableFailpoint = "storage.tree.no_immutable_flag";

// An owned file descriptor, closed when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  // Closes now and reports the error close(2) returns (EIO on some filesystems).
  int Close() {
    int rc = ::close(std::exchange(fd_, -1));
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

constexpr int kOpenDir = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// O_NONBLOCK: should a name have been replaced by a FIFO since readdir, do not hang on it.
constexpr int kOpenFile = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;

// statx of an open descriptor, with the mount id when the kernel has it (5.8+).
int StatFd(int fd, struct statx* st) {
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, st) != 0) return errno;
  return 0;
}

// Identifies the mount of `st`: the mount id, else (older kernels) the device. Btrfs subvolumes
// have a device of their own but the mount of their parent, so they count as inside.
uint64_t MountKey(const struct statx& st) {
  if ((st.stx_mask & STATX_MNT_ID) != 0) return st.stx_mnt_id;
  return (uint64_t{1} << 63) | (uint64_t{st.stx_dev_major} << 32) | st.stx_dev_minor;
}

Status AnotherMount(const std::string& path) {
  return Status::FailedPrecondition(
      fmt::format("{} is another filesystem mounted inside the tree; unmount it first", path));
}

// Times for futimens/utimensat: access and modification time of `st`.
void TimesOf(const struct statx& st, struct timespec times[2]) {
  times[0] = {st.stx_atime.tv_sec, st.stx_atime.tv_nsec};
  times[1] = {st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec};
}

// d_type of `name` in `dir_fd` when readdir did not say (DT_UNKNOWN), without following links.
// 0 if it vanished.
Result<unsigned char> EntryType(int dir_fd, const char* name, unsigned char type,
                                const std::string& path) {
  if (type != DT_UNKNOWN) return type;
  struct stat st {};
  if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    int err = errno;
    if (Vanished(err)) return static_cast<unsigned char>(0);
    return PosixError(fmt::format("stat {}", path), err);
  }
  return static_cast<unsigned char>(IFTODT(st.st_mode));
}

// Calls `fn(name, d_type)` for every entry of the open directory `dir_fd` but "." and "..",
// stopping at the first non-OK Status. Does not take ownership of `dir_fd`.
template <typename Fn>
Status ForEachEntry(int dir_fd, const std::string& path, Fn&& fn) {
  // fdopendir takes over its descriptor, so give it a duplicate.
  int dup = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    int err = errno;
    return PosixError(fmt::format("open directory {}", path), err);
  }
  DIR* dir = ::fdopendir(dup);
  if (dir == nullptr) {
    int err = errno;
    ::close(dup);
    return PosixError(fmt::format("open directory {}", path), err);
  }
  ::rewinddir(dir);
  Status status;
  for (;;) {
    errno = 0;
    struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      int err = errno;
      if (err != 0 && !Vanished(err)) {
        status = PosixError(fmt::format("read directory {}", path), err);
      }
      break;
    }
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    status = fn(name, entry->d_type);
    if (!status.ok()) break;
  }
  ::closedir(dir);
  return status;
}

// Clears the inode flags `mask` (by default FS_IMMUTABLE_FL and FS_APPEND_FL, what blocks
// removal) of the open `fd` where set. OK on a filesystem without inode flags.
Status ClearFlags(int fd, const std::string& path, int mask = FS_IMMUTABLE_FL | FS_APPEND_FL) {
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    int err = errno;
    if (FlagsUnsupported(err)) return Status::OK();
    return PosixError(fmt::format("get inode flags of {}", path), err);
  }
  if ((flags & mask) == 0) return Status::OK();
  flags &= ~mask;
  if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) {
    int err = errno;
    return PosixError(fmt::format("clear the immutable flag of {}", path), err);
  }
  return Status::OK();
}

// Removes trees, clearing the inode flags that forbid it. Never follows links, never leaves
// the mount it started on.
class TreeRemover {
 public:
  explicit TreeRemover(uint64_t mount) : mount_(mount) {}

  // Removes entry `name` of the directory `parent_fd`, whatever it is; a missing one is OK.
  // `type` is its d_type if known (DT_UNKNOWN otherwise).
  Status RemoveEntry(int parent_fd, const char* name, const std::string& path,
                     unsigned char type = DT_UNKNOWN) {
    if (type != DT_UNKNOWN && type != DT_DIR) return RemoveNonDirectory(parent_fd, name, path);
    Fd fd(::openat(parent_fd, name, kOpenDir));
    if (!fd.valid()) {
      int err = errno;
      if (Vanished(err)) return Status::OK();
      if (err == ENOTDIR || err == ELOOP) return RemoveNonDirectory(parent_fd, name, path);
      return PosixError(fmt::format("open directory {}", path), err);
    }
    struct statx st {};
    if (int err = StatFd(fd.get(), &st); err != 0) {
      return PosixError(fmt::format("stat {}", path), err);
    }
    if (MountKey(st) != mount_) return AnotherMount(path);
    PGB_RETURN_IF_ERROR(ClearFlags(fd.get(), path));
    // A tree sealed by write bits (SealTree's kWriteBits): its owner, unlike root, needs the
    // write permission back to unlink what is inside.
    if ((st.stx_mode & S_IWUSR) == 0 && st.stx_uid == ::geteuid() &&
        ::fchmod(fd.get(), (st.stx_mode & 07777) | S_IRWXU) != 0) {
      int err = errno;
      return PosixError(fmt::format("give write permission back to {}", path), err);
    }
    PGB_RETURN_IF_ERROR(ForEachEntry(fd.get(), path, [&](const char* child, unsigned char type) {
      return RemoveEntry(fd.get(), child, JoinPath(path, child), type);
    }));
    fd.Close();
    if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0) {
      int err = errno;
      if (Vanished(err)) return Status::OK();
      return PosixError(fmt::format("remove directory {}", path), err);
    }
    return Status::OK();
  }

 private:
  // Unlinks a file, symbolic link or special file. EPERM means an immutable or append-only
  // file: clear its flags and try again.
  Status RemoveNonDirectory(int parent_fd, const char* name, const std::string& path) {
    if (::unlinkat(parent_fd, name, 0) == 0) return Status::OK();
    int err = errno;
    if (Vanished(err)) return Status::OK();
    if (err == EPERM) {
      Fd fd(::openat(parent_fd, name, kOpenFile));
      if (fd.valid()) {
        PGB_RETURN_IF_ERROR(ClearFlags(fd.get(), path));
        fd.Close();
        if (::unlinkat(parent_fd, name, 0) == 0) return Status::OK();
        err = errno;
        if (Vanished(err)) return Status::OK();
      }
    }
    return PosixError(fmt::format("remove {}", path), err);
  }

  const uint64_t mount_;
};

// The process's umask, read without changing it (umask(2) can only set it, and setting it back
// races with other threads creating files). nullopt if /proc is not there to say.
std::optional<mode_t> CurrentUmask() {
  Result<std::string> status = ReadFile("/proc/self/status");
  if (!status.ok()) return std::nullopt;
  size_t at = status->find("\nUmask:");
  if (at == std::string::npos) return std::nullopt;
  return static_cast<mode_t>(std::strtoul(status->c_str() + at + 7, nullptr, 8));
}

// Copies entries between two open directories (see CopyTree).
class TreeCopier {
 public:
  TreeCopier(const CopyOptions& options, uint64_t mount)
      : options_(options), mount_(mount), umask_(CurrentUmask()) {}

  // Copies every entry of `src_fd` into `dst_fd`. With `overwrite`, entries present in the
  // target are replaced (directories merged); otherwise the target directory is fresh.
  Status CopyChildren(int src_fd, int dst_fd, const std::string& src_path,
                      const std::string& dst_path, bool overwrite) {
    return ForEachEntry(src_fd, src_path, [&](const char* name, unsigned char type) {
      return CopyEntry(src_fd, dst_fd, name, type, JoinPath(src_path, name),
                       JoinPath(dst_path, name), overwrite);
    });
  }

  Status CopyEntry(int src_dir, int dst_dir, const char* name, unsigned char type,
                   const std::string& src, const std::string& dst, bool overwrite) {
    PGB_ASSIGN_OR_RETURN(type, EntryType(src_dir, name, type, src));
    switch (type) {
      case DT_REG:
        return CopyFile(src_dir, dst_dir, name, src, dst, overwrite);
      case DT_DIR:
        return CopyDirectory(src_dir, dst_dir, name, src, dst, overwrite);
      case DT_LNK:
        return CopySymlink(src_dir, dst_dir, name, src, dst, overwrite);
      default:
        return Status::OK();  // sockets, FIFOs, devices: nothing PostgreSQL needs copied
    }
  }

  // Gives the copied directory `dst_fd` the mode, owner and times of `st`. Called after its
  // entries were copied, since adding them changed its times.
  Status FinishDirectory(int dst_fd, const struct statx& st, const std::string& dst) {
    return SetAttributes(dst_fd, st, dst);
  }

 private:
  Status CopyFile(int src_dir, int dst_dir, const char* name, const std::string& src,
                  const std::string& dst, bool overwrite) {
    Fd in(::openat(src_dir, name, kOpenFile));
    if (!in.valid()) {
      int err = errno;
      if (Vanished(err)) return Status::OK();
      return PosixError(fmt::format("open {}", src), err);
    }
    struct statx st {};
    if (int err = StatFd(in.get(), &st); err != 0) {
      return PosixError(fmt::format("stat {}", src), err);
    }
    if (!S_ISREG(st.stx_mode)) return Status::OK();  // replaced since readdir
    if (overwrite) PGB_RETURN_IF_ERROR(RemoveTarget(dst_dir, name, dst));
    mode_t mode = FinalMode(st);
    Fd out(
        ::openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777));
    if (!out.valid()) {
      int err = errno;
      return PosixError(fmt::format("create {}", dst), err);
    }
    if (st.stx_size > 0) {
      if (options_.method == CopyMethod::kReflink) {
        if (::ioctl(out.get(), FICLONE, in.get()) != 0) {
          int err = errno;
          return PosixError(fmt::format("clone {} to {} (FICLONE)", src, dst), err);
        }
      } else {
        PGB_RETURN_IF_ERROR(CopyBytes(in.get(), out.get(), st.stx_size, src, dst));
      }
    }
    // Every attribute change is a filesystem transaction, and they are most of the cost of a
    // reflink copy: set the mode only when creating the file could not (umask, set-id bits,
    // which the chown clears).
    bool mode_set = umask_.has_value() && (mode & (*umask_ | 07000)) == 0;
    PGB_RETURN_IF_ERROR(SetAttributes(out.get(), st, dst, /*set_mode=*/!mode_set));
    if (int err = out.Close(); err != 0) return PosixError(fmt::format("close {}", dst), err);
    return Status::OK();
  }

  // Copies the data segments of `in` to `out` with sendfile, leaving holes as holes, then gives
  // `out` the size `size` (a hole at the end has no segment). A file still growing is copied to
  // where it ends when read.
  static Status CopyBytes(int in, int out, uint64_t size, const std::string& src,
                          const std::string& dst) {
    constexpr off_t kNoHole = std::numeric_limits<off_t>::max();
    constexpr size_t kMaxChunk = size_t{1} << 30;
    off_t pos = 0;
    for (;;) {
      off_t data = ::lseek(in, pos, SEEK_DATA);
      off_t hole = kNoHole;
      if (data < 0) {
        int err = errno;
        if (err == ENXIO) break;  // only a hole (or nothing) after `pos`
        if (err != EINVAL && err != EOPNOTSUPP) {
          return PosixError(fmt::format("find data in {}", src), err);
        }
        data = pos;  // no SEEK_DATA here: everything is data
      } else {
        hole = ::lseek(in, data, SEEK_HOLE);
        if (hole < 0) hole = kNoHole;
      }
      if (::lseek(out, data, SEEK_SET) < 0) {
        int err = errno;
        return PosixError(fmt::format("seek in {}", dst), err);
      }
      off_t offset = data;
      bool at_end = false;
      while (offset < hole) {
        size_t chunk = static_cast<size_t>(std::min<off_t>(hole - offset, kMaxChunk));
        ssize_t n = ::sendfile(out, in, &offset, chunk);
        if (n < 0) {
          int err = errno;
          if (err == EINTR) continue;
          return PosixError(fmt::format("copy {} to {}", src, dst), err);
        }
        if (n == 0) {
          at_end = true;
          break;
        }
      }
      pos = offset;
      if (at_end) break;
    }
    if (static_cast<uint64_t>(pos) < size && ::ftruncate(out, static_cast<off_t>(size)) != 0) {
      int err = errno;
      return PosixError(fmt::format("resize {}", dst), err);
    }
    return Status::OK();
  }

  Status CopyDirectory(int src_dir, int dst_dir, const char* name, const std::string& src,
                       const std::string& dst, bool overwrite) {
    Fd in(::openat(src_dir, name, kOpenDir));
    if (!in.valid()) {
      int err = errno;
      if (Vanished(err)) return Status::OK();
      return PosixError(fmt::format("open directory {}", src), err);
    }
    struct statx st {};
    if (int err = StatFd(in.get(), &st); err != 0) {
      return PosixError(fmt::format("stat {}", src), err);
    }
    if (MountKey(st) != mount_) return AnotherMount(src);
    // 0700 until its entries are in: nobody else enters a half-made directory.
    if (::mkdirat(dst_dir, name, 0700) != 0) {
      int err = errno;
      if (err != EEXIST || !overwrite) {
        return PosixError(fmt::format("create directory {}", dst), err);
      }
    }
    Fd out(::openat(dst_dir, name, kOpenDir));
    if (!out.valid() && overwrite && (errno == ENOTDIR || errno == ELOOP)) {
      // Overwriting a file or link of the same name: replace it by the directory.
      PGB_RETURN_IF_ERROR(RemoveTarget(dst_dir, name, dst));
      if (::mkdirat(dst_dir, name, 0700) != 0) {
        int err = errno;
        return PosixError(fmt::format("create directory {}", dst), err);
      }
      out = Fd(::openat(dst_dir, name, kOpenDir));
    }
    if (!out.valid()) {
      int err = errno;
      return PosixError(fmt::format("open directory {}", dst), err);
    }
    PGB_RETURN_IF_ERROR(CopyChildren(in.get(), out.get(), src, dst, overwrite));
    return FinishDirectory(out.get(), st, dst);
  }

  Status CopySymlink(int src_dir, int dst_dir, const char* name, const std::string& src,
                     const std::string& dst, bool overwrite) {
    struct statx st {};
    if (::statx(src_dir, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) != 0) {
      int err = errno;
      if (Vanished(err)) return Status::OK();
      return PosixError(fmt::format("stat {}", src), err);
    }
    if (!S_ISLNK(st.stx_mode)) return Status::OK();  // replaced since readdir
    char target[PATH_MAX];
    ssize_t n = ::readlinkat(src_dir, name, target, sizeof(target));
    if (n < 0) {
      int err = errno;
      if (Vanished(err)) return Status::OK();
      return PosixError(fmt::format("read link {}", src), err);
    }
    if (static_cast<size_t>(n) >= sizeof(target)) {
      return Status::IOError(fmt::format("read link {}: target too long", src));
    }
    target[n] = '\0';
    if (overwrite) PGB_RETURN_IF_ERROR(RemoveTarget(dst_dir, name, dst));
    if (::symlinkat(target, dst_dir, name) != 0) {
      int err = errno;
      return PosixError(fmt::format("create link {}", dst), err);
    }
    if (::fchownat(dst_dir, name, st.stx_uid, st.stx_gid, AT_SYMLINK_NOFOLLOW) != 0) {
      int err = errno;
      return PosixError(fmt::format("chown {}", dst), err);
    }
    struct timespec times[2];
    TimesOf(st, times);
    if (::utimensat(dst_dir, name, times, AT_SYMLINK_NOFOLLOW) != 0) {
      int err = errno;
      return PosixError(fmt::format("set times of {}", dst), err);
    }
    return Status::OK();
  }

  // The permission bits the copy of `st` gets.
  mode_t FinalMode(const struct statx& st) const {
    mode_t mode = st.stx_mode & 07777;
    if (options_.add_owner_write) mode |= S_IWUSR;
    return mode;
  }

  // Owner, then mode (chown clears set-id bits), then times (chmod does not change mtime).
  Status SetAttributes(int fd, const struct statx& st, const std::string& dst,
                       bool set_mode = true) {
    if (::fchown(fd, st.stx_uid, st.stx_gid) != 0) {
      int err = errno;
      return PosixError(fmt::format("chown {}", dst), err);
    }
    if (set_mode && ::fchmod(fd, FinalMode(st)) != 0) {
      int err = errno;
      return PosixError(fmt::format("chmod {}", dst), err);
    }
    struct timespec times[2];
    TimesOf(st, times);
    if (::futimens(fd, times) != 0) {
      int err = errno;
      return PosixError(fmt::format("set times of {}", dst), err);
    }
    return Status::OK();
  }

  // Makes room for a new entry `name` in `dst_dir` (overwrite mode): whatever is there goes.
  Status RemoveTarget(int dst_dir, const char* name, const std::string& dst) {
    if (::unlinkat(dst_dir, name, 0) == 0) return Status::OK();
    int err = errno;
    if (err == ENOENT) return Status::OK();
    if (err == EISDIR || err == EPERM) {
      return TreeRemover(mount_).RemoveEntry(dst_dir, name, dst);
    }
    return PosixError(fmt::format("remove {}", dst), err);
  }

  const CopyOptions options_;
  const uint64_t mount_;
  const std::optional<mode_t> umask_;
};

// Opens the directory `path` (not following a final symbolic link) and stats it.
Status OpenDirectory(const std::string& path, Fd& fd, struct statx& st) {
  fd = Fd(::open(path.c_str(), kOpenDir));
  if (!fd.valid()) {
    int err = errno;
    return PosixError(fmt::format("open directory {}", path), err);
  }
  if (int err = StatFd(fd.get(), &st); err != 0) {
    return PosixError(fmt::format("stat {}", path), err);
  }
  return Status::OK();
}

// The last component of `path` ("/a/b" -> "b").
std::string Basename(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// Splits a relative path into components; InvalidArgument for anything that could leave the
// tree or is ambiguous.
Result<std::vector<std::string>> RelativeComponents(const std::string& relative) {
  auto invalid = [&] {
    return Status::InvalidArgument(fmt::format(
        "invalid path \"{}\": expected a relative path without \".\" or \"..\"", relative));
  };
  if (relative.empty() || relative.front() == '/') return invalid();
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = relative.find('/', start);
    std::string part = relative.substr(start, slash == std::string::npos ? slash : slash - start);
    if (part.empty() || part == "." || part == "..") return invalid();
    parts.push_back(std::move(part));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return parts;
}

// Applies `fn(fd, path)` to the root `dir` and to every directory and regular file below it
// (children first), not following links.
template <typename Fn>
Status ForEachInode(int dir_fd, const std::string& path, Fn& fn) {
  PGB_RETURN_IF_ERROR(ForEachEntry(dir_fd, path, [&](const char* name, unsigned char type) {
    std::string child = JoinPath(path, name);
    PGB_ASSIGN_OR_RETURN(type, EntryType(dir_fd, name, type, child));
    if (type != DT_DIR && type != DT_REG) return Status::OK();
    Fd fd(::openat(dir_fd, name, type == DT_DIR ? kOpenDir : kOpenFile));
    if (!fd.valid()) {
      int err = errno;
      return PosixError(fmt::format("open {}", child), err);
    }
    if (type == DT_DIR) PGB_RETURN_IF_ERROR(ForEachInode(fd.get(), child, fn));
    return fn(fd.get(), child);
  }));
  return Status::OK();
}

// Sets FS_IMMUTABLE_FL on `fd`. Returns the errno (0 on success).
int SetImmutable(int fd) {
  if (FailpointEnabled(kNoImmutableFailpoint)) return EOPNOTSUPP;
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) return errno;
  if ((flags & FS_IMMUTABLE_FL) != 0) return 0;
  flags |= FS_IMMUTABLE_FL;
  if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) return errno;
  return 0;
}

}  // namespace

Status CopyTree(const std::string& source, const std::string& target, const CopyOptions& options) {
  Fd in;
  struct statx st {};
  PGB_RETURN_IF_ERROR(OpenDirectory(source, in, st));
  if (::mkdir(target.c_str(), 0700) != 0) {
    int err = errno;
    return PosixError(fmt::format("create directory {}", target), err);
  }
  Fd out(::open(target.c_str(), kOpenDir));
  TreeCopier copier(options, MountKey(st));
  Status status;
  if (!out.valid()) {
    int err = errno;
    status = PosixError(fmt::format("open directory {}", target), err);
  } else {
    status = copier.CopyChildren(in.get(), out.get(), source, target, /*overwrite=*/false);
    if (status.ok()) status = copier.FinishDirectory(out.get(), st, target);
  }
  if (status.ok()) return status;
  out = Fd();
  Status removed = RemoveTree(target);
  if (!removed.ok()) {
    return Status(status.code(),
                  fmt::format("{}; cleanup failed: {}", status.message(), removed.message()));
  }
  return status;
}

Status CheckRelativePath(const std::string& relative) {
  return RelativeComponents(relative).status();
}

Status RecopyPath(const std::string& source, const std::string& target, const std::string& relative,
                  const CopyOptions& options) {
  PGB_ASSIGN_OR_RETURN(std::vector<std::string> parts, RelativeComponents(relative));
  Fd in, out;
  struct statx st {};
  PGB_RETURN_IF_ERROR(OpenDirectory(source, in, st));
  struct statx target_st {};
  PGB_RETURN_IF_ERROR(OpenDirectory(target, out, target_st));
  std::string src = source, dst = target;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    src = JoinPath(src, parts[i]);
    dst = JoinPath(dst, parts[i]);
    Fd next_in(::openat(in.get(), parts[i].c_str(), kOpenDir));
    if (!next_in.valid()) {
      int err = errno;
      if (Vanished(err)) return Status::OK();  // nothing to copy again
      if (err == ENOTDIR || err == ELOOP) {
        return Status::FailedPrecondition(fmt::format("{} is not a directory", src));
      }
      return PosixError(fmt::format("open directory {}", src), err);
    }
    Fd next_out(::openat(out.get(), parts[i].c_str(), kOpenDir));
    if (!next_out.valid()) {
      int err = errno;
      if (err == ENOENT || err == ENOTDIR || err == ELOOP) {
        return Status::FailedPrecondition(fmt::format("{} is not a directory", dst));
      }
      return PosixError(fmt::format("open directory {}", dst), err);
    }
    in = std::move(next_in);
    out = std::move(next_out);
  }
  const std::string& last = parts.back();
  TreeCopier copier(options, MountKey(st));
  return copier.CopyEntry(in.get(), out.get(), last.c_str(), DT_UNKNOWN, JoinPath(src, last),
                          JoinPath(dst, last), /*overwrite=*/true);
}

Result<SealMethod> SealTree(const std::string& dir) {
  Fd root;
  struct statx st {};
  PGB_RETURN_IF_ERROR(OpenDirectory(dir, root, st));
  // The root goes first and decides for the whole tree (one filesystem): flagging a directory
  // immutable does not stop us from flagging the entries inside it.
  int err = SetImmutable(root.get());
  // EPERM: the flag needs CAP_LINUX_IMMUTABLE, which a user without root lacks.
  bool unprivileged = err == EPERM && ::geteuid() != 0;
  if (err == 0) {
    auto seal = [](int fd, const std::string& path) {
      int err = SetImmutable(fd);
      if (err != 0) return PosixError(fmt::format("set the immutable flag on {}", path), err);
      return Status::OK();
    };
    PGB_RETURN_IF_ERROR(ForEachInode(root.get(), dir, seal));
    return SealMethod::kImmutableFlag;
  }
  if (!FlagsUnsupported(err) && !unprivileged) {
    return PosixError(fmt::format("set the immutable flag on {}", dir), err);
  }
  auto drop_write = [](int fd, const std::string& path) {
    struct stat file_st {};
    if (::fstat(fd, &file_st) != 0 || ::fchmod(fd, file_st.st_mode & 07555) != 0) {
      int err = errno;
      return PosixError(fmt::format("remove write permission from {}", path), err);
    }
    return Status::OK();
  };
  PGB_RETURN_IF_ERROR(ForEachInode(root.get(), dir, drop_write));
  PGB_RETURN_IF_ERROR(drop_write(root.get(), dir));
  return SealMethod::kWriteBits;
}

Status SetImmutableFlag(const std::string& dir, bool immutable) {
  Fd fd;
  struct statx st {};
  PGB_RETURN_IF_ERROR(OpenDirectory(dir, fd, st));
  if (!immutable) return ClearFlags(fd.get(), dir, FS_IMMUTABLE_FL);
  int err = SetImmutable(fd.get());
  if (err == 0 || FlagsUnsupported(err)) return Status::OK();
  // Without root (no CAP_LINUX_IMMUTABLE), a tree sealed by write bits stays sealed by them.
  if (err == EPERM && ::geteuid() != 0 && (st.stx_mode & S_IWUSR) == 0) return Status::OK();
  return PosixError(fmt::format("set the immutable flag on {}", dir), err);
}

Result<bool> IsImmutable(const std::string& path) {
  Fd fd(::open(path.c_str(), kOpenFile));
  if (!fd.valid()) {
    int err = errno;
    return PosixError(fmt::format("open {}", path), err);
  }
  int flags = 0;
  if (::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0) {
    int err = errno;
    if (FlagsUnsupported(err)) return false;
    return PosixError(fmt::format("get inode flags of {}", path), err);
  }
  return (flags & FS_IMMUTABLE_FL) != 0;
}

Status RemoveTree(const std::string& path) {
  if (!PathExists(path)) return Status::OK();
  std::string parent = Dirname(path);
  Fd parent_fd;
  struct statx st {};
  PGB_RETURN_IF_ERROR(OpenDirectory(parent, parent_fd, st));
  return TreeRemover(MountKey(st)).RemoveEntry(parent_fd.get(), Basename(path).c_str(), path);
}

Status CheckReflinkSupport(const std::string& dir) {
  std::string probe = JoinPath(dir, ".pgbranch-reflink-probe-" + RandomHex(6));
  std::string clone = probe + ".clone";
  Fd in(::open(probe.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!in.valid()) {
    int err = errno;
    return PosixError(fmt::format("create {}", probe), err);
  }
  std::string block(4096, 'p');
  Status written;
  if (::write(in.get(), block.data(), block.size()) != static_cast<ssize_t>(block.size())) {
    written = PosixError(fmt::format("write {}", probe), errno != 0 ? errno : EIO);
  }
  int clone_err = 0;
  if (written.ok()) {
    Fd out(::open(clone.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out.valid()) {
      written = PosixError(fmt::format("create {}", clone), errno);
    } else if (::ioctl(out.get(), FICLONE, in.get()) != 0) {
      clone_err = errno;
    }
  }
  in = Fd();
  Status removed = RemoveFile(clone);
  Status removed_probe = RemoveFile(probe);
  PGB_RETURN_IF_ERROR(written);
  if (clone_err != 0) {
    return Status::FailedPrecondition(fmt::format(
        "{} does not support reflinks (FICLONE): {}; choose a directory on XFS (made with "
        "reflink=1) or Btrfs, or a pool of kind \"copy\" (full copies)",
        dir, std::strerror(clone_err)));
  }
  PGB_RETURN_IF_ERROR(removed);
  return removed_probe;
}

Status SyncFs(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    return PosixError(fmt::format("open {}", path), err);
  }
  if (::syncfs(fd.get()) != 0) {
    int err = errno;
    return PosixError(fmt::format("sync the filesystem of {}", path), err);
  }
  return Status::OK();
}

}  // namespace pgb
