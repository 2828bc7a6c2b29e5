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

#include "common/bytes.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "storage/pool.h"

namespace pgb {

// The smallest image `pgbranch init --size` accepts, and the smallest automatic image pool:
// 1 GiB. Below that the WAL of one busy branch alone fills the pool (max_wal_size is 1 GB by
// default, and the engine counts a pool with less than 64 MiB free as full); 1 GiB is also the
// smallest image the end-to-end tests make. The unit tests make 300 MiB images through
// CreateImagePool directly, which only insists on what mkfs needs.
inline constexpr uint64_t kMinImagePoolSize = kGiB;

// CreatePool, OpenPool and ClosePool (storage/pool.h) for config.kind == "image".
// CreateImagePool checks everything before it creates anything, and a failure at any step
// after that (the image cannot be sized, mkfs or the mount fails) removes what it made: the
// image file, the mount point and the directories created for them. InvalidArgument if
// config.image or config.root is empty, image_size is 0 (for XFS: below 300 MiB, the least
// mkfs.xfs accepts), or config.fs is neither "btrfs" nor "xfs"; ResourceExhausted if
// image_size is more than the space free where the image would go (a sparse image larger than
// its filesystem's free space fails with I/O errors once that fills up).
Status CreateImagePool(const PoolConfig& config, ProcessRunner& runner);
Result<std::unique_ptr<Pool>> OpenImagePool(const PoolConfig& config, ProcessRunner& runner);
Status CloseImagePool(const PoolConfig& config);

// The size of an image made at `image` when none is asked for: at most `max`, and at most 80%
// of what is free next to it (sparse, but a sparse image larger than the free space fails with
// I/O errors when the host fills up), in whole GiB. ResourceExhausted below kMinImagePoolSize.
Result<uint64_t> DefaultImageSize(const std::string& image, uint64_t max);

// `pgbranch setup --user`: a Btrfs filesystem a user without root can keep a pool in. Makes
// the image file `image` of `size` bytes if it is missing (sparse, mode 0600, mkfs.btrfs; the
// same checks as CreateImagePool first), loop-mounts it at `dir` with user_subvol_rm_allowed
// (without it Btrfs lets no unprivileged user delete a subvolume; btrfs(5), MOUNT OPTIONS)
// unless it is mounted there already, and gives the filesystem's root directory to `owner`,
// mode 0700. Idempotent: after a reboot it mounts the image again. Returns whether it made the
// image. On failure, what it made is removed. FailedPrecondition if something else is mounted
// at `dir`, `dir` is not empty, or the image is mounted there without the option. Root only.
Result<bool> SetUpUserImage(const std::string& image, const std::string& dir, uint64_t size,
                            const FileOwner& owner, ProcessRunner& runner);

// Undoes a CreateImagePool whose pool was never used: unmounts config.root if the image is
// mounted there, removes the image file and the mount point if it is empty. For a caller whose
// own next step failed. Unavailable if the pool is busy.
Status RemoveImagePool(const PoolConfig& config);

// The bytes an unprivileged user may still write on the filesystem that holds `path`, or would
// hold it (the nearest existing directory above a missing `path`), from statvfs(2).
Result<uint64_t> FreeSpaceFor(const std::string& path);

// True when a filesystem is mounted exactly at `dir` (not merely somewhere above it), as
// /proc/self/mountinfo says. A missing `dir` is not mounted. IOError if mountinfo cannot be read.
Result<bool> IsMounted(const std::string& dir);

// The loop devices ("/dev/loop3") whose backing file is `image` (also after `image` was
// removed), from /sys/block; empty when none. For checking that unmounting released them.
Result<std::vector<std::string>> LoopDevicesBackedBy(const std::string& image);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_IMAGE_H_
