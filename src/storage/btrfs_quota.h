// Btrfs quota groups (qgroups) and subvolume deletion, for the Btrfs backend's space limits
// (storage/pool.h SetSpaceLimit) and its prompt space accounting after a delete.
//
// Everything goes through ioctls on the mounted filesystem (linux/btrfs.h, libbtrfsutil) and
// reads /sys/fs/btrfs/<fsid>/qgroups/ (the kernel's sysfs interface for qgroups, Linux 5.9+,
// documented in btrfs-progs' ch-sysfs.rst); no `btrfs` command runs and no output is parsed.
// Why not the btrfs CLI: Debian 12's btrfs-progs (6.2) cannot enable simple quotas (`quota
// enable --simple` came with 6.7), while the kernel's ioctl can; and one `btrfs qgroup limit`
// process costs ~36 ms here against microseconds for the ioctl.
//
// Every call needs CAP_SYS_ADMIN (root), as the ioctls do. Not thread-safe beyond what the
// kernel serializes.

#ifndef PGBRANCH_STORAGE_BTRFS_QUOTA_H_
#define PGBRANCH_STORAGE_BTRFS_QUOTA_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace pgb {

// How the filesystem holding a path accounts space per subvolume.
enum class BtrfsQuotaMode {
  kOff,     // quotas disabled
  kFull,    // classic qgroups: referenced/exclusive by backref walks
  kSimple,  // simple quotas (squota): each extent charged to the subvolume that wrote it
};

// The quota mode of the Btrfs filesystem holding `path`, from sysfs (`qgroups/mode` on Linux
// 6.7+; a `qgroups` directory without it means full qgroups).
Result<BtrfsQuotaMode> GetBtrfsQuotaMode(const std::string& path);

// Turns on simple quotas on the filesystem holding `path` (BTRFS_IOC_QUOTA_CTL with
// BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA). OK if quotas are on already, in either mode.
// NotSupported if the kernel has no simple quotas (before 6.7). It sets an incompat flag:
// older kernels can no longer mount the filesystem. Data written before is charged to nobody.
Status EnableBtrfsSimpleQuotas(const std::string& path);

// The qgroup id of subvolume `subvolume_id` (level 0) and of a level-1 group.
constexpr uint64_t BtrfsLevel0Qgroup(uint64_t subvolume_id) { return subvolume_id; }
constexpr uint64_t BtrfsLevel1Qgroup(uint64_t id) { return (uint64_t{1} << 48) | id; }

// Sets qgroup `qgroupid`'s limit on exclusive bytes (`btrfs qgroup limit -e`), or clears it
// (nullopt). `path` is anywhere on the filesystem. NotFound if the qgroup does not exist.
Status SetBtrfsQgroupLimit(const std::string& path, uint64_t qgroupid,
                           std::optional<uint64_t> max_exclusive);

// Creates qgroup `qgroupid` (level > 0); OK if it exists.
Status CreateBtrfsQgroup(const std::string& path, uint64_t qgroupid);

// Makes qgroup `child` a member of `parent`; OK if it is already. With full qgroups the kernel
// may mark the accounting inconsistent (a rescan fixes it): FailedPrecondition then.
Status AssignBtrfsQgroup(const std::string& path, uint64_t child, uint64_t parent);

// A qgroup as sysfs shows it (bytes; limits unset when not limited). NotFound if it does not
// exist (quotas off, or a subvolume already cleaned up).
struct BtrfsQgroup {
  uint64_t referenced = 0;
  uint64_t exclusive = 0;
  std::optional<uint64_t> max_exclusive;
  std::optional<uint64_t> max_referenced;
};
Result<BtrfsQgroup> ReadBtrfsQgroup(const std::string& path, uint64_t qgroupid);

// After subvolume `subvolume_id` of the filesystem holding `path` was deleted: waits until
// the kernel has really freed its space. Btrfs drops a deleted subvolume later, in its cleaner
// thread, which otherwise wakes once per commit interval (30 s): until then the space stays
// used, `df` says so, and its qgroup still counts. Syncing the filesystem (BTRFS_IOC_SYNC)
// wakes the cleaner; this then polls the list of deleted-but-not-cleaned subvolumes
// (libbtrfsutil) until `subvolume_id` is no longer in it, for at most `wait`, and syncs again:
// the extents the cleaner freed are pinned until its transaction commits. True if it was
// cleaned in time; false on timeout or when the list cannot be read (it needs CAP_SYS_ADMIN),
// in which case the space shows up later by itself.
bool WaitForBtrfsCleaner(const std::string& path, uint64_t subvolume_id,
                         std::chrono::milliseconds wait);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_BTRFS_QUOTA_H_
