#include "storage/directory_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <tuple>

#include "common/fs.h"
#include "common/undo.h"
#include "storage/extents.h"
#include "storage/tree_copy.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kPoolDirMode = 0711;
// Quarantined data is nobody's but root's: no server of the pool's OS user reaches it.
constexpr mode_t kQuarantineDirMode = 0700;

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
      quarantine_dir_(JoinPath(root_, kQuarantineDir)),
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

// ---- Quarantine ----------------------------------------------------------------------------

Status DirectoryPool::Quarantine(const std::string& name, TimePoint now) {
  PGB_RETURN_IF_ERROR(CheckVolumeOrSnapshotName(name));
  const bool is_snapshot = IsSnapshotName(name);
  PGB_ASSIGN_OR_RETURN(std::optional<QuarantinedObject> held, FindQuarantined(name));
  const std::string live = LivePath(name);
  if (!PathExists(live)) {
    if (!held) return Status::NotFound(fmt::format("no volume or snapshot {} in the pool", name));
    // Quarantined already. A crash between the rename and sealing left it unsealed: seal it.
    return is_snapshot ? SetSealed(held->path, true) : Status::OK();
  }
  if (held) {
    return Status::AlreadyExists(fmt::format(
        "{} is live, and quarantined too since {} at {}; release or purge that one first", name,
        FormatTimestamp(held->since), held->path));
  }
  PGB_RETURN_IF_ERROR(EnsureDir(quarantine_dir_, kQuarantineDirMode));
  return Move(live, JoinPath(quarantine_dir_, QuarantineEntryName(name, now)), is_snapshot);
}

Result<std::vector<QuarantinedObject>> DirectoryPool::ListQuarantined() {
  std::vector<QuarantinedObject> objects;
  if (!IsDirectory(quarantine_dir_)) return objects;  // nothing was ever quarantined
  auto is_entry = [](std::string_view entry) {
    return ParseQuarantineEntryName(entry).has_value();
  };
  PGB_ASSIGN_OR_RETURN(std::vector<std::string> entries, ListNames(quarantine_dir_, is_entry));
  for (const std::string& entry : entries) {
    std::optional<QuarantineEntry> parsed = ParseQuarantineEntryName(entry);
    objects.push_back({parsed->name, IsSnapshotName(parsed->name), JoinPath(quarantine_dir_, entry),
                       parsed->since});
  }
  std::sort(objects.begin(), objects.end(), [](const auto& a, const auto& b) {
    return std::tie(a.since, a.name) < std::tie(b.since, b.name);
  });
  return objects;
}

Status DirectoryPool::Release(const std::string& name) {
  PGB_RETURN_IF_ERROR(CheckVolumeOrSnapshotName(name));
  PGB_ASSIGN_OR_RETURN(std::optional<QuarantinedObject> held, FindQuarantined(name));
  if (!held) return Status::NotFound(fmt::format("{} is not quarantined", name));
  const std::string live = LivePath(name);
  if (PathExists(live)) {
    return Status::AlreadyExists(fmt::format("a live {} {} exists; its quarantined namesake stays",
                                             held->is_snapshot ? "snapshot" : "volume", name));
  }
  return Move(held->path, live, held->is_snapshot);
}

Status DirectoryPool::Purge(const std::string& name) {
  PGB_RETURN_IF_ERROR(CheckVolumeOrSnapshotName(name));
  PGB_ASSIGN_OR_RETURN(std::optional<QuarantinedObject> held, FindQuarantined(name));
  if (!held) return Status::NotFound(fmt::format("{} is not quarantined", name));
  return RemoveObject(held->path);
}

std::string DirectoryPool::LivePath(const std::string& name) const {
  return IsSnapshotName(name) ? SnapshotPath("", name) : VolumePath(name);
}

Result<std::optional<QuarantinedObject>> DirectoryPool::FindQuarantined(const std::string& name) {
  PGB_ASSIGN_OR_RETURN(std::vector<QuarantinedObject> objects, ListQuarantined());
  for (QuarantinedObject& object : objects) {
    if (object.name == name) return std::optional(std::move(object));
  }
  return std::optional<QuarantinedObject>();
}

Status DirectoryPool::Move(const std::string& from, const std::string& to, bool is_snapshot) {
  if (is_snapshot) PGB_RETURN_IF_ERROR(SetSealed(from, false));
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    Status status = PosixError(fmt::format("move {} to {}", from, to), err);
    if (!is_snapshot) return status;
    Status sealed = SetSealed(from, true);
    if (sealed.ok()) return status;
    return Status(status.code(), fmt::format("{}; sealing it again failed: {}", status.message(),
                                             sealed.message()));
  }
  if (is_snapshot) PGB_RETURN_IF_ERROR(SetSealed(to, true));
  return SyncFs(to);
}

Status DirectoryPool::CheckAdoptable(const std::string& path) {
  if (!IsDirectory(path)) return Status::FailedPrecondition(path + " is not a directory");
  return Status::OK();
}

Status DirectoryPool::AdoptVolume(const std::string& path, const std::string& volume) {
  const std::string to = VolumePath(volume);
  if (PathExists(to)) return Status::AlreadyExists(fmt::format("volume {} exists", volume));
  PGB_RETURN_IF_ERROR(CheckAdoptable(path));
  if (::renameat2(AT_FDCWD, path.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EXDEV) {
      return Status::FailedPrecondition(fmt::format(
          "{} is on another filesystem than the pool at {}; adopting moves it by a rename, "
          "which stays within one filesystem",
          path, root_));
    }
    return PosixError(fmt::format("move {} to {}", path, to), err);
  }
  return SyncFs(to);
}

Status DirectoryPool::ReleaseVolume(const std::string& volume, const std::string& path) {
  const std::string from = VolumePath(volume);
  if (!PathExists(from)) {
    if (PathExists(path)) return Status::OK();
    return Status::NotFound(fmt::format("volume {} does not exist", volume));
  }
  if (PathExists(path)) {
    return Status::AlreadyExists(
        fmt::format("{} exists; move it away so volume {} can go back there", path, volume));
  }
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    return PosixError(fmt::format("move {} to {}", from, path), errno);
  }
  return SyncFs(path);
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
