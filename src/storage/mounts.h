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
  // Its mount options, VFS and filesystem ones together, comma-separated as in
  // /proc/self/mountinfo ("rw,relatime,space_cache=v2,user_subvol_rm_allowed").
  std::string options;
};

// Whether `fs` is mounted with `option` (a name, "user_subvol_rm_allowed"; with or without a
// value).
bool HasMountOption(const MountedFilesystem& fs, const std::string& option);

// The filesystem that holds `path` (an existing path): the mount whose target is the longest
// prefix of its canonical form. NotFound if `path` does not exist.
Result<MountedFilesystem> FilesystemOf(const std::string& path);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_MOUNTS_H_
