// The "image" backend of storage/pool.h: a sparse file that pgbranch formats (Btrfs, or XFS
// with reflink=1) and loop-mounts itself, for hosts without such a filesystem to give it.
//
// Once mounted at the pool root, a Btrfs image pool is a Btrfs pool (storage/btrfs_pool.h) and
// an XFS image pool a reflink pool (storage/tree_pool.h). Mounting and unmounting go through
// libmount (no mount(8), no shell); the "loop" option makes libmount attach a loop device with
// autoclear set, so the kernel releases the device when the filesystem is unmounted. Formatting
// runs mkfs.btrfs or mkfs.xfs through the injected ProcessRunner. A Btrfs image gets simple
// quotas (Linux 6.7+), when it is made and when a pool made before is opened, for the
// per-branch space limits (storage/pool.h SetSpaceLimit).

#ifndef PGBRANCH_STORAGE_IMAGE_H_
#define PGBRANCH_STORAGE_IMAGE_H_

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/subprocess.h"
#include "storage/pool.h"

namespace pgb {

// CreatePool, OpenPool and ClosePool (storage/pool.h) for config.kind == "image".
// InvalidArgument if config.image or config.root is empty, image_size is 0 (for XFS: below
// 300 MiB, the least mkfs.xfs accepts), or config.fs is neither "btrfs" nor "xfs".
Status CreateImagePool(const PoolConfig& config, ProcessRunner& runner);
Result<std::unique_ptr<Pool>> OpenImagePool(const PoolConfig& config, ProcessRunner& runner);
Status CloseImagePool(const PoolConfig& config);

// True when a filesystem is mounted exactly at `dir` (not merely somewhere above it), as
// /proc/self/mountinfo says. A missing `dir` is not mounted. IOError if mountinfo cannot be read.
Result<bool> IsMounted(const std::string& dir);

// The loop devices ("/dev/loop3") whose backing file is `image` (also after `image` was
// removed), from /sys/block; empty when none. For checking that unmounting released them.
Result<std::vector<std::string>> LoopDevicesBackedBy(const std::string& image);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_IMAGE_H_
