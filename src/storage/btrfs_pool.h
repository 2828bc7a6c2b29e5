// The Btrfs backend of storage/pool.h, on a directory of a mounted Btrfs filesystem.
//
// Layout under the pool root:
//   <root>/volumes/<volume>      a subvolume per volume (mode 0700, owned by PostgreSQL's user)
//   <root>/snapshots/<snapshot>  a read-only snapshot subvolume per snapshot
//   <root>/quarantine/<name>@<since>  a quarantined volume or snapshot (pool.h Quarantine),
//                                renamed there whole; a snapshot stays read-only
// Snapshot names are unique in the whole pool; the `volume` argument of the snapshot calls is
// accepted for symmetry with backends where a snapshot belongs to its dataset (ZFS). A clone is
// a writable snapshot of a snapshot. All of it goes through libbtrfsutil (ioctls); no `btrfs`
// command is run and no command output is parsed. Creating and destroying subvolumes needs
// root (CAP_SYS_ADMIN) unless the filesystem allows otherwise.
//
// Space: a volume's limit is its quota group's exclusive limit, and the pool's limited volumes
// share one level-1 quota group that ReserveSpace caps (storage/pool.h, storage/btrfs_quota.h).
// That needs quotas on the filesystem: the image pool turns on simple quotas itself; a Btrfs
// directory pool uses them only where an administrator did (else Describe() says how). Destroys
// wait until the kernel's cleaner has freed the subvolume (WaitForBtrfsCleaner), so Usage()
// shows the space at once rather than up to 30 s later.

#ifndef PGBRANCH_STORAGE_BTRFS_POOL_H_
#define PGBRANCH_STORAGE_BTRFS_POOL_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "storage/pool.h"

namespace pgb {

// OK if `dir` is an existing directory on a Btrfs filesystem. FailedPrecondition otherwise,
// saying what `dir` is and what to do instead.
Status CheckBtrfsDirectory(const std::string& dir);

// Makes `root` a pool: checks it (CheckBtrfsDirectory) and creates volumes/ and snapshots/
// (mode 0711, so PostgreSQL's user can reach its volume) if missing. On failure removes the
// directories this call created.
Status InitBtrfsPoolDirectory(const std::string& root);

// Opens the pool at `root` (an absolute path). `kind` and `description` are what Kind() and
// Describe() return, so the image backend can reuse this one. FailedPrecondition if `root` is
// not a Btrfs directory or lacks volumes/ or snapshots/.
Result<std::unique_ptr<Pool>> OpenBtrfsPool(const std::string& root, std::string kind,
                                            std::string description);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_BTRFS_POOL_H_
