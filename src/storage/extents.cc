#include "storage/extents.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "common/fs.h"

namespace pgb {
namespace {

// Extents asked for per FIEMAP call: a 512-entry array is 28 KiB, and one call covers all the
// extents of nearly every file of a PostgreSQL data directory (1 GiB segments written in 8 KiB
// pages are usually a handful of extents, at most some thousands after heavy rewrites).
constexpr uint32_t kExtentsPerCall = 512;

// Errors that mean "this entry vanished while we were looking": skip it, do not fail.
bool Vanished(int err) { return err == ENOENT || err == ESTALE; }

class TreeMeasurer {
 public:
  TreeMeasurer()
      : buffer_(sizeof(struct fiemap) + kExtentsPerCall * sizeof(struct fiemap_extent)) {}

  // Measures the directory open at `dir_fd` (which this call closes) and everything below it
  // on device `dev`. `path` is for messages only.
  Status MeasureDir(int dir_fd, const std::string& path, dev_t dev);

  const SpaceUsage& usage() const { return usage_; }

 private:
  Status MeasureEntry(int dir_fd, const char* name, unsigned char type, const std::string& path,
                      dev_t dev);
  Status MeasureFile(int dir_fd, const char* name, const struct stat& st, const std::string& path);
  // Adds the non-shared extents of the open regular file `fd` of `size` bytes. NotSupported if
  // the filesystem has no FIEMAP.
  Status AddExclusiveExtents(int fd, uint64_t size, const std::string& path);

  SpaceUsage usage_;
  std::unordered_set<ino_t> linked_inodes_;  // inodes with st_nlink > 1 counted already
  std::vector<uint64_t> buffer_;             // struct fiemap + its extent array, aligned
};

Status TreeMeasurer::MeasureDir(int dir_fd, const std::string& path, dev_t dev) {
  DIR* dir = ::fdopendir(dir_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dir_fd);
    return PosixError(fmt::format("open directory {}", path), err);
  }
  Status status;
  for (;;) {
    errno = 0;
    struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      int err = errno;
      if (err != 0 && !Vanished(err))
        status = PosixError(fmt::format("read directory {}", path), err);
      break;
    }
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    status = MeasureEntry(::dirfd(dir), name, entry->d_type, path, dev);
    if (!status.ok()) break;
  }
  ::closedir(dir);
  return status;
}

Status TreeMeasurer::MeasureEntry(int dir_fd, const char* name, unsigned char type,
                                  const std::string& path, dev_t dev) {
  if (type != DT_DIR && type != DT_REG && type != DT_UNKNOWN) return Status::OK();
  std::string child = JoinPath(path, name);
  struct stat st {};
  if (::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    int err = errno;
    if (Vanished(err)) return Status::OK();
    return PosixError(fmt::format("stat {}", child), err);
  }
  if (st.st_dev != dev) return Status::OK();  // another filesystem or Btrfs subvolume
  if (S_ISREG(st.st_mode)) return MeasureFile(dir_fd, name, st, child);
  if (!S_ISDIR(st.st_mode)) return Status::OK();

  int fd = ::openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (Vanished(err)) return Status::OK();
    return PosixError(fmt::format("open directory {}", child), err);
  }
  return MeasureDir(fd, child, dev);
}

Status TreeMeasurer::MeasureFile(int dir_fd, const char* name, const struct stat& st,
                                 const std::string& path) {
  if (st.st_nlink > 1 && !linked_inodes_.insert(st.st_ino).second) return Status::OK();
  usage_.logical_bytes += static_cast<uint64_t>(st.st_size);
  // st_blocks includes delalloc bytes on Btrfs, ext4 and XFS: zero means no data at all, and
  // we save the open and the ioctl (many files of a data directory are empty).
  if (st.st_blocks == 0) return Status::OK();

  // O_NONBLOCK: should the name have been replaced by a FIFO since the stat, do not hang.
  int fd = ::openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (Vanished(err)) return Status::OK();
    return PosixError(fmt::format("open {}", path), err);
  }
  Status status = AddExclusiveExtents(fd, static_cast<uint64_t>(st.st_size), path);
  ::close(fd);
  if (status.Is(StatusCode::kNotSupported)) {
    usage_.exclusive_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    return Status::OK();
  }
  return status;
}

Status TreeMeasurer::AddExclusiveExtents(int fd, uint64_t size, const std::string& path) {
  auto* map = reinterpret_cast<struct fiemap*>(buffer_.data());
  uint64_t start = 0;
  for (;;) {
    std::memset(map, 0, sizeof(*map));
    map->fm_start = start;
    map->fm_length = FIEMAP_MAX_OFFSET - start;
    map->fm_flags = 0;  // no FIEMAP_FLAG_SYNC: measuring must not force writeback
    map->fm_extent_count = kExtentsPerCall;
    if (::ioctl(fd, FS_IOC_FIEMAP, map) != 0) {
      int err = errno;
      if (err == EOPNOTSUPP || err == ENOTTY) return Status::NotSupported("no FIEMAP");
      return PosixError(fmt::format("map extents of {}", path), err);
    }
    if (map->fm_mapped_extents == 0) return Status::OK();
    const struct fiemap_extent* last = nullptr;
    for (uint32_t i = 0; i < map->fm_mapped_extents; ++i) {
      const struct fiemap_extent& extent = map->fm_extents[i];
      if ((extent.fe_flags & FIEMAP_EXTENT_SHARED) != 0) {
        // Shared with another file, snapshot or clone: not ours alone.
      } else if ((extent.fe_flags & FIEMAP_EXTENT_DATA_INLINE) != 0) {
        // Btrfs keeps files under 2 KiB inside its metadata and reports them as one inline
        // extent of a whole sector (4 KiB), never flagged shared even while the metadata leaf
        // is. Count the bytes stored, not the sector, so a fresh clone of a data directory with
        // hundreds of tiny files does not look like it owns megabytes.
        uint64_t stored = size > extent.fe_logical ? size - extent.fe_logical : 0;
        usage_.exclusive_bytes += std::min<uint64_t>(extent.fe_length, stored);
      } else {
        usage_.exclusive_bytes += extent.fe_length;
      }
      last = &extent;
    }
    if ((last->fe_flags & FIEMAP_EXTENT_LAST) != 0) return Status::OK();
    uint64_t next = last->fe_logical + last->fe_length;
    if (next <= start) return Status::OK();  // no progress: never loop forever
    start = next;
  }
}

}  // namespace

Result<SpaceUsage> MeasureTree(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return PosixError(fmt::format("open directory {}", dir), err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return PosixError(fmt::format("stat {}", dir), err);
  }
  TreeMeasurer measurer;
  PGB_RETURN_IF_ERROR(measurer.MeasureDir(fd, dir, st.st_dev));
  return measurer.usage();
}

}  // namespace pgb
