#include "storage/btrfs_quota.h"

#include <btrfsutil.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <thread>

#include "common/fs.h"

namespace pgb {
namespace {

// BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA of include/uapi/linux/btrfs.h, Linux 6.7+; Debian 12's
// kernel headers predate it.
constexpr uint64_t kQuotaCtlEnableSimpleQuota = 4;
// The value that clears a qgroup limit (btrfs-progs' `limit none`; CLEAR_VALUE in the kernel).
constexpr uint64_t kClearLimit = ~uint64_t{0};
constexpr auto kCleanerPoll = std::chrono::milliseconds(5);

// An O_RDONLY descriptor of `path` for ioctls, closed when it goes.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

Result<std::unique_ptr<Fd>> Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (fd < 0) {
    int err = errno;
    return PosixError(fmt::format("open {}", path), err);
  }
  return std::make_unique<Fd>(fd);
}

std::string QgroupName(uint64_t qgroupid) {
  return fmt::format("{}/{}", qgroupid >> 48, qgroupid & ((uint64_t{1} << 48) - 1));
}

// /sys/fs/btrfs/<fsid>/qgroups of the filesystem holding `path` (whether or not it exists).
Result<std::string> QgroupsDir(const std::string& path) {
  PGB_ASSIGN_OR_RETURN(auto fd, Open(path));
  struct btrfs_ioctl_fs_info_args info {};
  if (::ioctl(fd->get(), BTRFS_IOC_FS_INFO, &info) != 0) {
    int err = errno;
    return PosixError(fmt::format("read the Btrfs filesystem info of {}", path), err);
  }
  const uint8_t* u = info.fsid;
  return fmt::format(
      "/sys/fs/btrfs/{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
      "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}/qgroups",
      u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
      u[15]);
}

// A number sysfs printed ("1048576\n").
Result<uint64_t> ReadNumber(const std::string& file) {
  PGB_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return Status::Internal(fmt::format("{} holds \"{}\", not a number", file, text));
  }
  return value;
}

}  // namespace

Result<BtrfsQuotaMode> GetBtrfsQuotaMode(const std::string& path) {
  PGB_ASSIGN_OR_RETURN(std::string dir, QgroupsDir(path));
  if (!IsDirectory(dir)) return BtrfsQuotaMode::kOff;
  Result<std::string> mode = ReadFile(dir + "/mode");
  if (!mode.ok()) {
    // Kernels before 6.7 have only full qgroups, and no `mode` file.
    if (mode.status().Is(StatusCode::kNotFound)) return BtrfsQuotaMode::kFull;
    return mode.status();
  }
  if (mode->rfind("squota", 0) == 0) return BtrfsQuotaMode::kSimple;
  if (mode->rfind("qgroup", 0) == 0) return BtrfsQuotaMode::kFull;
  return BtrfsQuotaMode::kOff;  // "disabled"
}

Status EnableBtrfsSimpleQuotas(const std::string& path) {
  PGB_ASSIGN_OR_RETURN(BtrfsQuotaMode mode, GetBtrfsQuotaMode(path));
  if (mode != BtrfsQuotaMode::kOff) return Status::OK();
  PGB_ASSIGN_OR_RETURN(auto fd, Open(path));
  struct btrfs_ioctl_quota_ctl_args args {};
  args.cmd = kQuotaCtlEnableSimpleQuota;
  if (::ioctl(fd->get(), BTRFS_IOC_QUOTA_CTL, &args) == 0) return Status::OK();
  int err = errno;
  if (err == EINVAL) {
    return Status::NotSupported(
        "this kernel has no Btrfs simple quotas (they came with Linux 6.7)");
  }
  return PosixError(fmt::format("enable Btrfs simple quotas on {}", path), err);
}

Status SetBtrfsQgroupLimit(const std::string& path, uint64_t qgroupid,
                           std::optional<uint64_t> max_exclusive) {
  PGB_ASSIGN_OR_RETURN(auto fd, Open(path));
  struct btrfs_ioctl_qgroup_limit_args args {};
  args.qgroupid = qgroupid;
  args.lim.flags = BTRFS_QGROUP_LIMIT_MAX_EXCL;
  args.lim.max_excl = max_exclusive.value_or(kClearLimit);
  if (::ioctl(fd->get(), BTRFS_IOC_QGROUP_LIMIT, &args) == 0) return Status::OK();
  int err = errno;
  if (err == ENOENT) {
    return Status::NotFound(fmt::format("qgroup {} does not exist", QgroupName(qgroupid)));
  }
  return PosixError(fmt::format("limit qgroup {} on {}", QgroupName(qgroupid), path), err);
}

Status CreateBtrfsQgroup(const std::string& path, uint64_t qgroupid) {
  PGB_ASSIGN_OR_RETURN(auto fd, Open(path));
  struct btrfs_ioctl_qgroup_create_args args {};
  args.create = 1;
  args.qgroupid = qgroupid;
  if (::ioctl(fd->get(), BTRFS_IOC_QGROUP_CREATE, &args) == 0) return Status::OK();
  int err = errno;
  if (err == EEXIST) return Status::OK();
  return PosixError(fmt::format("create qgroup {} on {}", QgroupName(qgroupid), path), err);
}

Status AssignBtrfsQgroup(const std::string& path, uint64_t child, uint64_t parent) {
  PGB_ASSIGN_OR_RETURN(auto fd, Open(path));
  struct btrfs_ioctl_qgroup_assign_args args {};
  args.assign = 1;
  args.src = child;
  args.dst = parent;
  int rc = ::ioctl(fd->get(), BTRFS_IOC_QGROUP_ASSIGN, &args);
  int err = errno;
  if (rc < 0 && err != EEXIST) {
    return PosixError(
        fmt::format("add qgroup {} to {} on {}", QgroupName(child), QgroupName(parent), path), err);
  }
  // A positive return says the accounting is now inconsistent until a rescan (full qgroups).
  if (rc > 0) {
    return Status::FailedPrecondition(fmt::format(
        "adding qgroup {} to {} left the quota accounting of {} inconsistent; run btrfs quota "
        "rescan",
        QgroupName(child), QgroupName(parent), path));
  }
  return Status::OK();
}

Result<BtrfsQgroup> ReadBtrfsQgroup(const std::string& path, uint64_t qgroupid) {
  PGB_ASSIGN_OR_RETURN(std::string dir, QgroupsDir(path));
  std::string qgroup_dir = fmt::format("{}/{}", dir, QgroupName(qgroupid));
  std::replace(qgroup_dir.begin() + dir.size() + 1, qgroup_dir.end(), '/', '_');
  if (!IsDirectory(qgroup_dir)) {
    return Status::NotFound(fmt::format("qgroup {} does not exist", QgroupName(qgroupid)));
  }
  BtrfsQgroup q;
  PGB_ASSIGN_OR_RETURN(q.referenced, ReadNumber(qgroup_dir + "/referenced"));
  PGB_ASSIGN_OR_RETURN(q.exclusive, ReadNumber(qgroup_dir + "/exclusive"));
  PGB_ASSIGN_OR_RETURN(uint64_t flags, ReadNumber(qgroup_dir + "/limit_flags"));
  if (flags & BTRFS_QGROUP_LIMIT_MAX_EXCL) {
    PGB_ASSIGN_OR_RETURN(q.max_exclusive, ReadNumber(qgroup_dir + "/max_exclusive"));
  }
  if (flags & BTRFS_QGROUP_LIMIT_MAX_RFER) {
    PGB_ASSIGN_OR_RETURN(q.max_referenced, ReadNumber(qgroup_dir + "/max_referenced"));
  }
  return q;
}

bool WaitForBtrfsCleaner(const std::string& path, uint64_t subvolume_id,
                         std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  if (btrfs_util_sync(path.c_str()) != BTRFS_UTIL_OK) return false;
  for (;;) {
    uint64_t* ids = nullptr;
    size_t count = 0;
    if (btrfs_util_deleted_subvolumes(path.c_str(), &ids, &count) != BTRFS_UTIL_OK) return false;
    bool pending = std::find(ids, ids + count, subvolume_id) != ids + count;
    std::free(ids);
    // Dropped: the extents it freed stay pinned until the cleaner's transaction commits.
    if (!pending) return btrfs_util_sync(path.c_str()) == BTRFS_UTIL_OK;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kCleanerPoll);
  }
}

}  // namespace pgb
