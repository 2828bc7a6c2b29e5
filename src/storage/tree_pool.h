// The "reflink" and "copy" backends of storage/pool.h: a pool of plain directory trees.
//
// Layout under the pool root (as for Btrfs):
//   <root>/volumes/<volume>      a directory per volume (mode 0700, owned by PostgreSQL's user)
//   <root>/snapshots/<snapshot>  a sealed copy per snapshot: every directory and file carries
//                                FS_IMMUTABLE_FL, so even root cannot change or remove it
//                                until DestroySnapshot clears the flag
//   <root>/quarantine/<name>@<since>  a quarantined volume or snapshot (pool.h Quarantine),
//                                renamed there whole; a snapshot stays sealed
// Snapshots and clones are file-by-file copies of a tree (storage/tree_copy.h): with FICLONE
// ("reflink": XFS with reflink=1, Btrfs) they share every block with their source and take
// milliseconds; with byte copies ("copy": any filesystem) they take as long as copying the data.
// Either way a snapshot is not atomic (Capabilities().atomic_snapshots is false): of a running
// PostgreSQL the engine takes it inside the backup API, through a SnapshotBracket.
//
// A snapshot or clone interrupted by a crash stays behind under its final name, unsealed; the
// engine's catalog never recorded it, so doctor removes it as an orphan. A completed one is
// durable: CreateSnapshot and CloneSnapshot end with one syncfs(2) of the pool's filesystem.

#ifndef PGBRANCH_STORAGE_TREE_POOL_H_
#define PGBRANCH_STORAGE_TREE_POOL_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "storage/pool.h"
#include "storage/tree_copy.h"

namespace pgb {

// Makes `root` a pool: checks that it is an existing directory, that we can write there and,
// for kReflink, that FICLONE works there (CheckReflinkSupport); then creates volumes/ and
// snapshots/ (mode 0711, so PostgreSQL's user can reach its volume) if missing.
// FailedPrecondition if `root` is missing, not a directory or cannot clone files. On failure
// removes the directories this call created.
Status InitTreePoolDirectory(const std::string& root, CopyMethod method);

// Opens the pool at `root` (an absolute path). `kind` and `description` are what Kind() and
// Describe() return, so the image backend can reuse this one. FailedPrecondition if `root`
// lacks volumes/ or snapshots/.
Result<std::unique_ptr<Pool>> OpenTreePool(const std::string& root, CopyMethod method,
                                           std::string kind, std::string description);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_TREE_POOL_H_
