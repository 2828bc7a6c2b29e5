// The part of a pool that keeps volumes and snapshots as directories under one root:
// `<root>/volumes/<volume>` and `<root>/snapshots/<snapshot>` (names by storage/volume_name.h).
// Btrfs (subvolumes) and the tree pools (reflink and copy) share it: they make, clone and
// destroy in their own way; this class names, lists and measures (FIEMAP, statvfs).
//
// It also quarantines (pool.h) for both: an object is renamed, whole and atomically, between its
// place and `<root>/quarantine/<name>@<since>` (QuarantineEntryName; the directory is made 0700
// on first use). A rename is all or nothing, so after a crash the object is in one place or the
// other. Sealed snapshots cannot be moved as they are (checked on Linux 6.18): an immutable
// directory cannot be renamed at all (EPERM), and a read-only Btrfs subvolume not into another
// directory (EROFS: moving a directory rewrites its ".." entry, so vfs_rename in fs/namei.c asks
// for write permission on it). So the backend unseals the snapshot's root for the rename and
// seals it again where it lands (SetSealed). A crash in between leaves an unsealed snapshot,
// intact, in one place or the other; Quarantine or Release of it seals it again. Renames use
// RENAME_NOREPLACE and end with one syncfs(2), so they never replace anything and are durable when
// they return.

#ifndef PGBRANCH_STORAGE_DIRECTORY_POOL_H_
#define PGBRANCH_STORAGE_DIRECTORY_POOL_H_

#include <optional>
#include <string>
#include <vector>

#include "storage/pool.h"

namespace pgb {

class DirectoryPool : public Pool {
 public:
  DirectoryPool(std::string root, std::string kind, std::string description);

  std::string Kind() const override { return kind_; }
  std::string Describe() const override { return description_; }
  std::string VolumePath(const std::string& volume) const override;
  // `volume` is only a hint (pool.h): snapshots live in one directory by their unique name.
  std::string SnapshotPath(const std::string& volume, const std::string& snapshot) const override;
  Result<std::vector<std::string>> ListVolumes() override;
  Result<std::vector<std::string>> ListSnapshots() override;
  Result<SpaceUsage> VolumeSpace(const std::string& volume) override;
  Result<SpaceUsage> SnapshotSpace(const std::string& volume, const std::string& snapshot) override;
  Result<PoolUsage> Usage() override;

  // ---- Adoption (pool.h): renames within the pool's filesystem, RENAME_NOREPLACE + syncfs ----
  Status AdoptVolume(const std::string& path, const std::string& volume) override;
  Status ReleaseVolume(const std::string& volume, const std::string& path) override;

  // ---- Quarantine (see the top of this file) ----
  Status Quarantine(const std::string& name, TimePoint now) override;
  Result<std::vector<QuarantinedObject>> ListQuarantined() override;
  Status Release(const std::string& name) override;
  Status Purge(const std::string& name) override;

 protected:
  const std::string& root() const { return root_; }

  // Seals (true) or unseals (false) the snapshot at `path` as far as moving it needs: Btrfs sets
  // or clears the subvolume's read-only flag, the tree pools the root directory's immutable flag.
  // OK if it is so already.
  virtual Status SetSealed(const std::string& path, bool sealed) = 0;
  // OK if the directory at `path` can become a volume by a rename (AdoptVolume): any directory
  // for the tree pools; Btrfs needs a writable subvolume (else FailedPrecondition saying so).
  virtual Status CheckAdoptable(const std::string& path);
  // Destroys the volume or snapshot at `path` (a quarantined one) with everything in it.
  virtual Status RemoveObject(const std::string& path) = 0;

 private:
  // Where the live object `name` is (VolumePath or SnapshotPath).
  std::string LivePath(const std::string& name) const;
  // The quarantined object named `name` (the oldest, should there be several); nullopt if none.
  Result<std::optional<QuarantinedObject>> FindQuarantined(const std::string& name);
  // Renames `from` to `to` (which must not exist), unsealing and sealing a snapshot around it,
  // then syncs the filesystem.
  Status Move(const std::string& from, const std::string& to, bool is_snapshot);

  const std::string root_;
  const std::string volumes_dir_;
  const std::string snapshots_dir_;
  const std::string quarantine_dir_;
  const std::string kind_;
  const std::string description_;
};

// Creates `<root>/volumes` and `<root>/snapshots` (mode 0711: the servers' OS user passes
// through, without listing) where missing; on failure removes the ones it created.
Status MakePoolDirectories(const std::string& root);

// FailedPrecondition unless both directories exist (the pool was made by pgbranch init).
Status CheckPoolDirectories(const std::string& root);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_DIRECTORY_POOL_H_
