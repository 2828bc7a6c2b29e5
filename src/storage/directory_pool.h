// The part of a pool that keeps volumes and snapshots as directories under one root:
// `<root>/volumes/<volume>` and `<root>/snapshots/<snapshot>` (names by storage/volume_name.h).
// Btrfs (subvolumes) and the tree pools (reflink and copy) share it: they make, clone and
// destroy in their own way; this class names, lists and measures (FIEMAP, statvfs).

#ifndef PGBRANCH_STORAGE_DIRECTORY_POOL_H_
#define PGBRANCH_STORAGE_DIRECTORY_POOL_H_

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

 protected:
  const std::string& root() const { return root_; }

 private:
  const std::string root_;
  const std::string volumes_dir_;
  const std::string snapshots_dir_;
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
