// The storage seam: where branch data lives and how it is snapshotted and cloned.
//
// A pool holds two kinds of objects, both named by the engine with storage/volume_name.h
// (never by a backend, never from user input):
//   - volumes: writable directories, each holding one PostgreSQL data directory at its root;
//   - snapshots: immutable, atomic point-in-time copies of one volume.
// A branch is a volume cloned from a snapshot. Backends: "btrfs" (a directory on a Btrfs
// filesystem: volumes are subvolumes, snapshots are read-only snapshots, clones are writable
// snapshots of those) and "image" (an image file pgbranch formats as Btrfs and loop-mounts, then
// used exactly like "btrfs"). More backends (zfs, reflink, copy) implement the same interface.
//
// Abstract so the engine can be tested against a fault-injecting wrapper. A backend that cannot
// do something returns NotSupported; it never pretends to succeed. Not thread-safe: callers
// hold the project lock for mutations.

#ifndef PGBRANCH_STORAGE_POOL_H_
#define PGBRANCH_STORAGE_POOL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/status.h"
#include "common/subprocess.h"

namespace pgb {

// How a pool is configured; stored in the catalog's settings by `pgbranch init`.
struct PoolConfig {
  std::string kind;          // "btrfs" or "image"
  std::string root;          // btrfs: the directory volumes live in; image: the mount point
  std::string image;         // image: the image file (absolute path)
  uint64_t image_size = 0;   // image: its size in bytes (sparse)
  std::string fs = "btrfs";  // image: the filesystem it is formatted with
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

class Pool {
 public:
  virtual ~Pool() = default;

  // "btrfs" or "image".
  virtual std::string Kind() const = 0;
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
  // Takes an atomic, read-only snapshot of `volume`: every file as of one instant (what makes a
  // copy of a running PostgreSQL crash-consistent). NotFound if the volume does not exist.
  virtual Status CreateSnapshot(const std::string& volume, const std::string& snapshot) = 0;
  // Creates writable volume `new_volume` from a snapshot of `volume`, sharing its blocks.
  virtual Status CloneSnapshot(const std::string& volume, const std::string& snapshot,
                               const std::string& new_volume) = 0;
  // Removes a volume and everything in it. A missing volume is OK.
  virtual Status DestroyVolume(const std::string& volume) = 0;
  // Removes a snapshot. A missing snapshot is OK.
  virtual Status DestroySnapshot(const std::string& volume, const std::string& snapshot) = 0;

  // Names of all volumes / snapshots present (for doctor and tests), sorted.
  virtual Result<std::vector<std::string>> ListVolumes() = 0;
  virtual Result<std::vector<std::string>> ListSnapshots() = 0;

  // Logical and exclusive bytes of a volume or snapshot path (see SpaceUsage).
  virtual Result<SpaceUsage> VolumeSpace(const std::string& volume) = 0;
  virtual Result<SpaceUsage> SnapshotSpace(const std::string& volume,
                                           const std::string& snapshot) = 0;
  // Capacity of the whole pool.
  virtual Result<PoolUsage> Usage() = 0;
};

// Makes a pool usable for the first time (`pgbranch init`, or the embedded default):
//   image: refuses an existing image file (AlreadyExists); creates it sparse with `image_size`
//          bytes, formats it (mkfs.btrfs through `runner`), loop-mounts it at `root` (created
//          0711) with noatime, creates the volumes/ and snapshots/ directories.
//   btrfs: checks `root` is a directory on Btrfs (FailedPrecondition otherwise) and creates the
//          volumes/ and snapshots/ directories.
// On failure everything this call created is removed again.
Status CreatePool(const PoolConfig& config, ProcessRunner& runner);

// Opens a configured pool. For "image" it mounts the image again if it is not mounted (e.g.
// after a reboot). FailedPrecondition if the pool's directory is missing or not Btrfs.
Result<std::unique_ptr<Pool>> OpenPool(const PoolConfig& config, ProcessRunner& runner);

// Unmounts an image pool (loop device released). OK if not mounted. For "btrfs": OK, no-op.
Status ClosePool(const PoolConfig& config);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_POOL_H_
