// The storage seam: where branch data lives and how it is snapshotted and cloned.
//
// A pool holds two kinds of objects, both named by the engine with storage/volume_name.h
// (never by a backend, never from user input):
//   - volumes: writable directories, each holding one PostgreSQL data directory at its root;
//   - snapshots: immutable point-in-time copies of one volume.
// A branch is a volume cloned from a snapshot. Backends (PoolConfig::kind):
//   "btrfs"   a directory on Btrfs: volumes are subvolumes, snapshots read-only snapshots,
//             clones writable snapshots of those (libbtrfsutil).
//   "zfs"     a ZFS dataset: volumes are child datasets, snapshots ZFS snapshots, clones
//             `zfs clone`s (the zfs/zpool commands, argv only). A clone pins its origin
//             snapshot; a destroyed volume with snapshots left is retired until they go.
//   "reflink" a directory on a filesystem with FICLONE (XFS reflink=1, Btrfs): snapshots and
//             clones are file-by-file reflinked copies of the tree; snapshots are immutable.
//   "copy"    any directory: like reflink, but full copies (correct, slow, no sharing).
//   "image"   an image file pgbranch formats (Btrfs, or XFS with reflink=1) and loop-mounts,
//             then used as "btrfs" or "reflink" at the mount point.
//
// Abstract so the engine can be tested against a fault-injecting wrapper (and audited by a
// forwarding one). A backend that cannot do something returns NotSupported; it never pretends
// to succeed. Thread-safety: the engine shares one Pool between its threads, so any call may
// run beside any other; mutations of one volume or snapshot are ordered by the engine's locks
// (engine/locks.h), and a backend that remembers something between calls guards it itself.
// Space limits and reservations (what keeps one branch from filling the pool) are described at
// SetSpaceLimit.

#ifndef PGBRANCH_STORAGE_POOL_H_
#define PGBRANCH_STORAGE_POOL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/time.h"

namespace pgb {

// How a pool is configured; stored in the catalog's settings by `pgbranch init`.
struct PoolConfig {
  std::string kind;          // "btrfs", "zfs", "reflink", "copy" or "image"
  std::string root;          // the directory volumes live under (image: the mount point;
                             // zfs: the dataset's mountpoint)
  std::string dataset;       // zfs: POOL/DATASET holding the volumes as child datasets
  std::string image;         // image: the image file (absolute path)
  uint64_t image_size = 0;   // image: its size in bytes (sparse)
  std::string fs = "btrfs";  // image: "btrfs" or "xfs" (made with reflink=1)
};

// What a backend can promise; the engine adapts to it.
struct PoolCapabilities {
  // CreateSnapshot captures every file of the volume at one instant (Btrfs, ZFS), so a copy of
  // a running PostgreSQL is crash-consistent. Without it (reflink, copy: file by file) the
  // engine brackets the copy with PostgreSQL's backup API (see SnapshotBracket).
  bool atomic_snapshots = true;
  // Clones share blocks with their snapshot until written (false only for "copy").
  bool copy_on_write = true;
  // A snapshot cannot be destroyed while volumes cloned from it exist (ZFS). The engine refuses
  // such deletes for every backend anyway, to keep lineage the same everywhere.
  bool clones_pin_snapshots = false;
  // SetSpaceLimit and GetSpaceLimit work: the filesystem itself refuses a volume's writes beyond
  // its limit (EDQUOT), so one branch cannot fill the pool. False where the backend or this
  // filesystem cannot (Describe() then says why).
  bool space_limits = false;
  // ReserveSpace works (see there for what it guarantees on each backend).
  bool space_reservations = false;
};

// How a non-atomic pool makes a consistent snapshot of a running PostgreSQL, following the
// low-level base backup recipe (PostgreSQL docs 26.3.3): the engine has called
// pg_backup_start() before CreateSnapshot; the pool copies the whole tree, then calls
// `between()` (the engine's pg_backup_stop(), which returns the backup_label), then copies
// `recopy_dirs` again, overwriting (pg_wal: it must hold the WAL up to the backup's end; the
// first pass keeps segments a checkpoint might recycle meanwhile), and finally writes the files
// `between()` returned at the snapshot's root before sealing it.
struct SnapshotBracket {
  std::vector<std::string> recopy_dirs;  // relative to the volume root, e.g. {"pg_wal"}
  // Returns files to add: relative path -> content (e.g. "backup_label" -> its text).
  std::function<Result<std::map<std::string, std::string>>()> between;
};

struct PoolUsage {
  uint64_t size_bytes = 0;  // capacity of the filesystem
  uint64_t used_bytes = 0;
  uint64_t free_bytes = 0;  // available to new data
};

struct SpaceUsage {
  uint64_t logical_bytes = 0;    // sum of file sizes (du --apparent-size)
  uint64_t exclusive_bytes = 0;  // allocated bytes no other volume or snapshot shares
};

// An object `Quarantine` moved aside instead of destroying it.
struct QuarantinedObject {
  std::string name;  // its volume or snapshot name ("v…" or "s…", storage/volume_name.h)
  bool is_snapshot = false;
  // Where its files (a PostgreSQL data directory) can be read now: <root>/quarantine/<name>@<since>
  // (QuarantineEntryName). Empty on ZFS while it is not mounted: what an interrupted Quarantine or
  // Purge leaves (calling it again finishes it).
  std::string path;
  TimePoint since;  // when it was quarantined (the `now` given), to the millisecond
};

// A volume's space limit as the filesystem holds it (GetSpaceLimit).
struct SpaceLimit {
  std::optional<uint64_t> limit_bytes;  // unset: no limit
  uint64_t used_bytes = 0;              // what counts against the limit now (same basis)
};

class Pool {
 public:
  virtual ~Pool() = default;

  // PoolConfig::kind of this pool.
  virtual std::string Kind() const = 0;
  virtual PoolCapabilities Capabilities() const = 0;
  // One line for people: "btrfs on image /var/lib/pgbranch/pool.img (64.0 GiB) at /var/...".
  virtual std::string Describe() const = 0;

  // The directory of a volume (the data directory of its PostgreSQL), whether or not it exists.
  virtual std::string VolumePath(const std::string& volume) const = 0;
  // The directory of a snapshot.
  virtual std::string SnapshotPath(const std::string& volume,
                                   const std::string& snapshot) const = 0;

  // Creates an empty writable volume with mode 0700 and owner `owner` (if set).
  // AlreadyExists if it exists.
  virtual Status CreateVolume(const std::string& volume, std::optional<FileOwner> owner) = 0;
  // Takes a read-only snapshot of `volume`. Atomic pools capture one instant (what makes a
  // copy of a running PostgreSQL crash-consistent) and ignore `bracket`; non-atomic pools copy
  // file by file and, given a `bracket`, follow it (see SnapshotBracket). NotFound if the volume
  // does not exist. On failure nothing of the snapshot remains.
  virtual Status CreateSnapshot(const std::string& volume, const std::string& snapshot,
                                const SnapshotBracket* bracket = nullptr) = 0;
  // Creates writable volume `new_volume` from a snapshot of `volume`, sharing its blocks.
  virtual Status CloneSnapshot(const std::string& volume, const std::string& snapshot,
                               const std::string& new_volume) = 0;
  // Removes a volume and everything in it. A missing volume is OK. Snapshots of it stay valid
  // (the engine destroys them itself): on ZFS, where snapshots live inside their volume, a
  // volume that still has snapshots is retired (unmounted, hidden from ListVolumes) and goes
  // with its last snapshot. A quarantined volume counts as missing (see Quarantine).
  virtual Status DestroyVolume(const std::string& volume) = 0;
  // Removes a snapshot. A missing snapshot is OK, and so is a quarantined one (left alone).
  // FailedPrecondition if clones pin it (ZFS).
  // In every snapshot call `volume` is a hint: snapshot names are unique in a pool, so a backend
  // finds the snapshot by name when it is not under `volume`, and
  // `volume` may be empty when unknown (doctor's orphans).
  virtual Status DestroySnapshot(const std::string& volume, const std::string& snapshot) = 0;

  // ---- Adoption: an existing data directory made a volume in place (project create --adopt) --
  //
  // AdoptVolume moves the directory at `path` (absolute) into the pool as volume `volume`
  // without copying a byte: a rename within one filesystem (btrfs: `path` must be a writable
  // subvolume; reflink, copy: a directory) or `zfs rename` within one ZFS pool (`path` must be
  // the mountpoint of a dataset with no snapshots and no children, which is then mounted where
  // VolumePath says). FailedPrecondition, nothing moved, when `path` is not such an object or
  // lives on another filesystem or ZFS pool than the pool's; AlreadyExists if `volume` exists.
  // ReleaseVolume is its inverse: volume `volume` goes back to `path` (which must not exist:
  // AlreadyExists), OK if the volume is gone and `path` exists (a finished earlier call).
  // Both durable when they return; a crash leaves the object whole in one place or the other.
  // Backends without them return NotSupported.
  virtual Status AdoptVolume(const std::string& path, const std::string& volume) {
    (void)path, (void)volume;
    return Status::NotSupported(Kind() + " pools cannot adopt a data directory in place");
  }
  virtual Status ReleaseVolume(const std::string& volume, const std::string& path) {
    (void)path, (void)volume;
    return Status::NotSupported(Kind() + " pools cannot hand back a data directory");
  }

  // Names of all volumes / snapshots present (for doctor and tests), sorted.
  virtual Result<std::vector<std::string>> ListVolumes() = 0;
  virtual Result<std::vector<std::string>> ListSnapshots() = 0;

  // Logical and exclusive bytes of a volume or snapshot path (see SpaceUsage).
  virtual Result<SpaceUsage> VolumeSpace(const std::string& volume) = 0;
  virtual Result<SpaceUsage> SnapshotSpace(const std::string& volume,
                                           const std::string& snapshot) = 0;
  // Capacity of the whole pool. Space a destroyed volume or snapshot held counts as free once
  // DestroyVolume/DestroySnapshot returned (Btrfs: they wait for the cleaner, see there).
  virtual Result<PoolUsage> Usage() = 0;

  // ---- Quarantine: what doctor moves aside instead of destroying (issue 10) ----------------
  //
  // A quarantined object keeps its name and its files, but the calls above no longer see it:
  // ListVolumes and ListSnapshots leave it out, and DestroyVolume and DestroySnapshot treat it as
  // missing (OK, nothing touched), so a stale catalog row can never destroy it. Its time goes
  // with it into the pool (the entry name or a ZFS user property), so ListQuarantined needs no
  // catalog: the catalog may be what was lost. Where it goes:
  //   btrfs, reflink, copy (and image):  renamed to <root>/quarantine/<name>@<since> (the
  //       directory 0700, made on first use); snapshots stay sealed there.
  //   zfs:  marked with the user property pgbranch:quarantined=<since> on the volume or
  //       snapshot itself; a volume's mountpoint moves to <root>/quarantine/<name>@<since>; a
  //       snapshot is mounted there as a read-only clone <dataset>/<name> (zfs-fuse has no .zfs
  //       directory), which pins it until Release or Purge.
  // A volume's snapshots are objects of their own: quarantining a volume leaves them live (on
  // ZFS they stay inside it), and quarantining a snapshot leaves its clones alone.
  // Each step keeps the object either live or quarantined, so a crash never loses it; calling
  // Quarantine, Release or Purge again finishes what an interrupted call left undone.
  // `since` is kept to the millisecond.

  // Moves volume or snapshot `name` aside: afterwards it is absent from ListVolumes/
  // ListSnapshots (so it can never be mistaken for a branch's data or an orphan again), its files
  // stay intact and readable at QuarantinedObject::path, and ListQuarantined lists it with `now`.
  // OK, keeping its first time, if it is quarantined already (finishing an interrupted call).
  // NotFound if the pool has no volume or snapshot of that name; InvalidArgument for a malformed
  // name; AlreadyExists if a live and a quarantined object both have that name. A running server
  // on a volume is the caller's business (the engine stops it first): on ZFS a volume in use is
  // Unavailable and stays live. Durable when it returns.
  virtual Status Quarantine(const std::string& name, TimePoint now) = 0;
  // Everything quarantined, oldest first (then by name).
  virtual Result<std::vector<QuarantinedObject>> ListQuarantined() = 0;
  // Puts a quarantined object back under its own name (for `doctor --adopt`), where VolumePath
  // and SnapshotPath say, sealed again if it is a snapshot. NotFound if it is not quarantined;
  // AlreadyExists if a live object has that name; InvalidArgument for a malformed name;
  // Unavailable if its files are in use (ZFS). Durable when it returns.
  virtual Status Release(const std::string& name) = 0;
  // Destroys a quarantined object for good (`doctor --purge`). NotFound if it is not quarantined;
  // InvalidArgument for a malformed name; FailedPrecondition if storage still needs it: a ZFS
  // snapshot that volumes are cloned from. A ZFS volume whose snapshots remain is retired as by
  // DestroyVolume (unmounted, hidden, destroyed with its last snapshot): live snapshots are never
  // taken along. Unavailable if its files are in use (ZFS).
  virtual Status Purge(const std::string& name) = 0;

  // ---- Space limits ------------------------------------------------------------------------
  // A branch's limit is on the data it writes itself: what it shares with its origin (the
  // snapshot it was cloned from) is not counted, whatever its size. Sizes are bytes. Writes
  // beyond the limit fail inside that volume only, with EDQUOT ("Disk quota exceeded"), which
  // PostgreSQL reports as "could not extend file ...: Disk quota exceeded" (or, for WAL, as a
  // PANIC of that branch's server only). Limits are kept by the filesystem, so they survive
  // remounts and reboots; nothing is stored elsewhere. Where the backend gets its semantics:
  //   btrfs  quota groups (qgroups), preferably simple quotas ("squota", Linux 6.7+): each
  //          extent is charged, for its whole life, to the subvolume that wrote it, so a clone
  //          is charged only its own writes (btrfs-quota(8) "SIMPLE QUOTAS", kernel commit
  //          "btrfs: qgroup: add new quota mode for simple quotas"). The limit is the qgroup's
  //          max exclusive (`btrfs qgroup limit -e`). With full qgroups (enabled by an admin)
  //          the same limit applies to the volume's exclusive bytes (btrfs-qgroup(8)).
  //          An image pool turns simple quotas on itself (its filesystem is pgbranch's); a
  //          Btrfs directory pool uses quotas only if they are on for that filesystem already.
  //   zfs    on OpenZFS, the `quota` property of the volume's dataset: a clone's `used` counts
  //          only what it wrote (and what its own snapshots keep), never its origin's data
  //          (zfsprops(7): quota, used). Not in zfs-fuse (NotSupported): it has the property,
  //          but its daemon dies when a dataset of pgbranch's reaches its quota, taking every
  //          dataset with it (measured with zfs-fuse 0.7.0).
  //   reflink, copy: no limits (NotSupported). They would need project quotas, which this
  //          code does not manage: XFS charges every reflinked file its full size (quota
  //          counts blocks mapped, not blocks owned), so a limit there could only bound a
  //          branch's whole size, and kernels built without CONFIG_XFS_QUOTA have none.
  // Calls on one volume are ordered by the engine's lock of its branch. The Btrfs group of
  // limited volumes (see ReserveSpace) is shared by all projects of a pool: two calls racing
  // each leave a value computed from the usage they saw.

  // Limits the new data `volume` may write to `bytes` (> 0), or removes its limit (nullopt).
  // On Btrfs the limit may be below what the volume already holds (it then cannot grow any
  // more); ZFS refuses that (InvalidArgument). NotSupported (saying why) where
  // Capabilities().space_limits is false; NotFound if the volume does not exist;
  // InvalidArgument for 0 or a bad name.
  virtual Status SetSpaceLimit(const std::string& volume, std::optional<uint64_t> bytes) = 0;
  // The limit and what counts against it, read back from the filesystem. NotSupported and
  // NotFound as for SetSpaceLimit.
  virtual Result<SpaceLimit> GetSpaceLimit(const std::string& volume) = 0;
  // Keeps room for `bytes` of new data in `volume` (a volume without a limit: a project's
  // main) against what volumes with limits (its branches) write:
  //   zfs    on OpenZFS, `refreservation` on the volume: a standing guarantee, renewed by
  //          every snapshot of it, that it can write `bytes` more than its snapshots hold,
  //          whatever any other dataset writes (zfsprops(7) refreservation). Not in zfs-fuse.
  //   btrfs  (simple quotas only) every volume with a limit is also in one level-1 qgroup of
  //          the pool, which this call caps at what those volumes hold now plus the free space
  //          less `bytes`: when they are all full, `bytes` are still free. It holds as of this
  //          call: the volume's own growth since, and volumes without limits, are not covered;
  //          call it again (the engine does, at every branch create) to renew it.
  // NotSupported (saying why) where Capabilities().space_reservations is false; NotFound if
  // the volume does not exist; ResourceExhausted if the pool cannot give that much.
  virtual Status ReserveSpace(const std::string& volume, uint64_t bytes) = 0;
};

// Makes a pool usable for the first time (`pgbranch init`, or the embedded default):
//   zfs:   creates `dataset` if missing (mountpoint `root`), else adopts it (its mountpoint
//          becomes `root`); FailedPrecondition if the zfs tools or the ZFS pool are missing.
//   reflink: checks `root` is a directory whose filesystem clones files (FICLONE works there).
//   copy:  checks `root` is a writable directory.
//   image: refuses an existing image file (AlreadyExists); creates it sparse with `image_size`
//          bytes, formats it (mkfs.btrfs, or mkfs.xfs -m reflink=1, through `runner`),
//          loop-mounts it at `root` (created
//          0711) with noatime, creates the volumes/ and snapshots/ directories.
//   btrfs: checks `root` is a directory on Btrfs (FailedPrecondition otherwise) and creates the
//          volumes/ and snapshots/ directories.
// On success returns the effective configuration (absolute paths; zfs: `root` filled in), to be
// stored and passed to OpenPool. On failure everything this call created is removed again.
Result<PoolConfig> CreatePool(const PoolConfig& config, ProcessRunner& runner);

// Opens a configured pool. For "image" it mounts the image again if it is not mounted (e.g.
// after a reboot); for "zfs" it mounts the dataset if needed. FailedPrecondition if the pool's
// directory is missing or not of the kind configured.
Result<std::unique_ptr<Pool>> OpenPool(const PoolConfig& config, ProcessRunner& runner);

// Unmounts an image pool (loop device released). OK if not mounted. Other kinds: OK, no-op
// (a ZFS pool belongs to the machine's ZFS, not to pgbranch).
Status ClosePool(const PoolConfig& config);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_POOL_H_
