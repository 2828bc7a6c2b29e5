// How much space a directory tree takes, and how much of it is its own.
//
// On a copy-on-write filesystem a clone shares its blocks with the snapshot it came from, so
// "du" says nothing about what deleting it would free. MeasureTree asks the filesystem for the
// extent map of every regular file (FIEMAP) and counts the extents that the filesystem does not
// flag as shared. Used by the Btrfs pool and by any backend that shares blocks by reflink.

#ifndef PGBRANCH_STORAGE_EXTENTS_H_
#define PGBRANCH_STORAGE_EXTENTS_H_

#include <string>

#include "common/status.h"
#include "storage/pool.h"

namespace pgb {

// Walks the tree under `dir` and returns, in bytes:
//   logical_bytes:   the sum of st_size of its regular files (du --apparent-size);
//   exclusive_bytes: the length of the data extents of those files that FIEMAP does not flag
//                    FIEMAP_EXTENT_SHARED. Data written but not yet allocated (delalloc) and
//                    preallocated (unwritten) extents count: they belong to this tree alone.
//                    Holes do not count. Compressed extents count their uncompressed length.
//                    Files small enough for Btrfs to keep inline in its metadata count their
//                    size: Btrfs never flags those as shared, so each tiny file counts as
//                    exclusive even right after a snapshot (at most 2 KiB per file).
//                    On a filesystem without FIEMAP a file counts its st_blocks * 512.
// Symbolic links are not followed and the walk stays on the device of `dir`: it does not enter
// other filesystems mounted below, nor nested Btrfs subvolumes (they have their own st_dev).
// A file with several hard links counts once. Directories and metadata do not count.
// Files that vanish during the walk (a running PostgreSQL removes some) are skipped.
// On failure returns NotFound if `dir` does not exist, else the first error that stopped the
// walk (IOError, FailedPrecondition for permissions). Thread-safe: no shared state.
Result<SpaceUsage> MeasureTree(const std::string& dir);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_EXTENTS_H_
