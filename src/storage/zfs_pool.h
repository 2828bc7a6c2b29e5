// The ZFS backend of storage/pool.h, on a dataset of an existing ZFS pool.
//
// Layout, for PoolConfig::dataset "tank/pgbranch" mounted at PoolConfig::root "/var/lib/pgb":
//   tank/pgbranch                  the pool dataset (mountpoint=<root>, recordsize=8k,
//                                  compression=lz4, or lzjb where lz4 is refused)
//   tank/pgbranch/<volume>         a child dataset per volume, mounted at <root>/<volume> by
//                                  inheriting the mountpoint; its root directory is mode 0700
//                                  and owned by PostgreSQL's user
//   tank/pgbranch/<volume>@<snap>  a ZFS snapshot per snapshot (atomic, read-only)
//   tank/pgbranch/<clone>          a `zfs clone` of a snapshot, which it depends on
//
// Quarantine (pool.h): a quarantined volume or snapshot carries the user property
// pgbranch:quarantined=<since> (FormatTimestamp) set on itself; ListVolumes and ListSnapshots
// leave it out and DestroyVolume and DestroySnapshot leave it alone (one `zfs get` each first).
//   tank/pgbranch/<volume>         quarantined: mountpoint=<root>/quarantine/<volume>@<since>
//                                  (still mounted, so its files stay readable there)
//   tank/pgbranch/<snapshot>       a read-only clone of a quarantined snapshot, mounted at
//                                  <root>/quarantine/<snapshot>@<since>: zfs-fuse has no .zfs
//                                  directory, so a clone is the only way to read a snapshot.
//                                  It pins the snapshot until Release or Purge destroys it.
// Quarantine marks first and moves second; Release moves back first and unmarks last. So a
// crash leaves the object live, or marked and so quarantined (ListQuarantined's `path` is where
// it is mounted now, "" if nowhere), never lost; calling the same again finishes. Only the mark
// set on the object itself counts: a volume's user properties are inherited by its snapshots,
// which stay live when it is quarantined. Retired volumes (DestroyVolume) are not live: Quarantine
// is NotFound for them. Purging a volume whose snapshots remain retires it (the mark goes last);
// a volume whose Purge was interrupted after canmount=off is refused by Quarantine and Release
// (FailedPrecondition: purge it again). The other calls do not check the mark: unlike on the
// directory pools, where the object is gone from its path, CreateSnapshot, CloneSnapshot,
// SnapshotPath and the space calls still reach a quarantined object by its name.
//
// Everything goes through the zfs and zpool commands of the host (OpenZFS 2.x, or Debian's
// zfs-fuse 0.7), run by the injected ProcessRunner from argv vectors with a timeout; a failed
// command's Status carries its argv and stderr. Differences between the two are found by trying
// and falling back, never by version checks: lz4 -> lzjb; `written` and `logicalreferenced`
// are used where the properties exist; "... is busy" (zfs-fuse says so just after an unmount;
// a volume in use says so too) is retried for up to ~3 s on destroy and promote, and then
// Unavailable, with the volume mounted again (zfs-fuse leaves it unmounted).
//
// Lineage: a clone pins its origin snapshot. DestroySnapshot refuses a pinned snapshot
// (FailedPrecondition naming the clones). DestroyVolume of a volume whose snapshots are pinned
// first `zfs promote`s a clone, which takes those snapshots over (vA@s1 becomes vB@s1), then
// destroys the volume and its remaining snapshots (`zfs destroy -r`, never `-R`). Snapshot
// names are unique in the whole pool, so the snapshot calls look a snapshot up by its name when
// it is no longer at `volume@snapshot`.
//
// Sizes are ZFS's accounting, as of the last transaction group the pool committed (up to a few
// seconds behind recent writes; zfs-fuse: up to ~30 s).
//
// Space: on OpenZFS a volume's limit is its dataset's `quota` and a reservation its
// `refreservation` (storage/pool.h). In zfs-fuse both are NotSupported: its daemon dies when a
// dataset with pgbranch's settings reaches its quota (measured), which would take every branch
// down rather than one. A pool knows it runs in zfs-fuse by its mount (a FUSE filesystem).
//
// The ProcessRunner must outlive the pool. Not thread-safe (like every Pool).

#ifndef PGBRANCH_STORAGE_ZFS_POOL_H_
#define PGBRANCH_STORAGE_ZFS_POOL_H_

#include <memory>
#include <string>

#include "common/status.h"
#include "common/subprocess.h"
#include "storage/pool.h"

namespace pgb {

// OK if `dataset` is a dataset name pgbranch accepts: "POOL/NAME[/NAME...]", each component of
// letters, digits and "_-.:", none empty or "."/".." or starting with '-', the pool name
// starting with a letter. InvalidArgument otherwise (so no name can pass as an option to zfs).
Status CheckZfsDatasetName(const std::string& dataset);

// CreatePool for config.kind == "zfs" (see storage/pool.h). If config.dataset exists it is
// adopted: mounted if it is not, and its mountpoint becomes the returned config's `root`.
// Otherwise it is created (with missing parents, `zfs create -p`) with mountpoint config.root
// (made absolute; the directory gets mode 0711), recordsize=8k and lz4 (or lzjb) compression.
// Fails with InvalidArgument for a bad dataset name or, when the dataset must be created, an
// empty root; FailedPrecondition if the zfs/zpool commands are missing (naming the packages),
// the ZFS daemon or module is not there, the ZFS pool does not exist, or an adopted dataset has
// no mountpoint. On failure, what this call created is destroyed again.
Result<PoolConfig> CreateZfsPool(const PoolConfig& config, ProcessRunner& runner);

// OpenPool for config.kind == "zfs": the dataset must exist with mountpoint config.root
// (FailedPrecondition otherwise); it and any of its volumes that are not mounted are mounted.
// The pool runs its commands through `runner`, which must outlive it.
Result<std::unique_ptr<Pool>> OpenZfsPool(const PoolConfig& config, ProcessRunner& runner);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_ZFS_POOL_H_
