// What is mounted where (libmount over /proc/self/mountinfo).

#ifndef PGBRANCH_STORAGE_MOUNTS_H_
#define PGBRANCH_STORAGE_MOUNTS_H_

#include <string>

#include "common/status.h"

namespace pgb {

struct MountedFilesystem {
  std::string target;  // its mount point
  std::string type;    // "btrfs", "xfs", "ext4", "zfs", "fuse", ...
  std::string source;  // "/dev/loop0", or for ZFS the dataset ("tank/home")
};

// The filesystem that holds `path` (an existing path): the mount whose target is the longest
// prefix of its canonical form. NotFound if `path` does not exist.
Result<MountedFilesystem> FilesystemOf(const std::string& path);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_MOUNTS_H_
