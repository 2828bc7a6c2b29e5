#include "storage/directory_pool.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>

#include "common/fs.h"
#include "common/undo.h"
#include "storage/extents.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kPoolDirMode = 0711;

// The entries of `dir` that `valid` accepts, sorted.
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

}  // namespace

DirectoryPool::DirectoryPool(std::string root, std::string kind, std::string description)
    : root_(std::move(root)),
      volumes_dir_(JoinPath(root_, "volumes")),
      snapshots_dir_(JoinPath(root_, "snapshots")),
      kind_(std::move(kind)),
      description_(std::move(description)) {}

std::string DirectoryPool::VolumePath(const std::string& volume) const {
  return JoinPath(volumes_dir_, volume);
}

std::string DirectoryPool::SnapshotPath(const std::string& /*volume*/,
                                        const std::string& snapshot) const {
  return JoinPath(snapshots_dir_, snapshot);
}

Result<std::vector<std::string>> DirectoryPool::ListVolumes() {
  return ListNames(volumes_dir_, IsVolumeName);
}

Result<std::vector<std::string>> DirectoryPool::ListSnapshots() {
  return ListNames(snapshots_dir_, IsSnapshotName);
}

Result<SpaceUsage> DirectoryPool::VolumeSpace(const std::string& volume) {
  PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
  return MeasureTree(VolumePath(volume));
}

Result<SpaceUsage> DirectoryPool::SnapshotSpace(const std::string& volume,
                                                const std::string& snapshot) {
  PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
  return MeasureTree(SnapshotPath(volume, snapshot));
}

Result<PoolUsage> DirectoryPool::Usage() {
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

Status MakePoolDirectories(const std::string& root) {
  UndoStack undo;
  for (const char* name : {"volumes", "snapshots"}) {
    std::string dir = JoinPath(root, name);
    bool existed = PathExists(dir);
    PGB_RETURN_IF_ERROR(EnsureDir(dir, kPoolDirMode));
    if (!existed) undo.Push("remove " + dir, [dir] { return RemoveEmptyDir(dir); });
  }
  undo.Commit();
  return Status::OK();
}

Status CheckPoolDirectories(const std::string& root) {
  for (const char* name : {"volumes", "snapshots"}) {
    if (!IsDirectory(JoinPath(root, name))) {
      return Status::FailedPrecondition(fmt::format(
          "pool {} has no {}/ directory; was it created with pgbranch init?", root, name));
    }
  }
  return Status::OK();
}

}  // namespace pgb
