// Copying, sealing and removing directory trees file by file: the machinery of the "reflink"
// and "copy" pools (storage/tree_pool.h).
//
// A copy keeps what PostgreSQL's data directory needs: regular files (content, mode, owner,
// times; holes stay holes), directories (mode, owner, times) and symbolic links (copied as links,
// never followed: pg_tblspc holds links to tablespaces outside the tree). Sockets, FIFOs and
// device nodes are skipped; a file with several hard links becomes several files. Extended
// attributes and inode flags are not copied: a copy of an immutable file is an ordinary one.
//
// Every path below the given roots is opened relative to its parent's descriptor with
// O_NOFOLLOW, so a symbolic link planted inside a tree (by PostgreSQL's user, who owns it) never
// makes us read or write outside it, and the walk never leaves the mount of the root: a
// directory of another mount inside the tree is an error, not something silently skipped or
// deleted. Files that vanish while being copied (a running PostgreSQL removes WAL segments and
// temporary files) are skipped.
//
// Two ways to copy file data (CopyMethod):
//   kReflink  ioctl(FICLONE): the copy shares all blocks with its source until either is
//             written (XFS with reflink=1, Btrfs). There is no fallback to copying bytes: a pool
//             that was promised sharing fails loudly instead of silently filling up.
//   kFull     sendfile(2) of each data segment (SEEK_DATA/SEEK_HOLE): real, unshared copies.
//             Not copy_file_range(2), which may itself reflink on XFS and Btrfs.
//
// No call fsyncs the files it writes: a caller that needs the result durable calls SyncFs once
// at the end (one log force instead of a thousand fsyncs). Not thread-safe per tree; distinct
// trees can be handled from several threads.

#ifndef PGBRANCH_STORAGE_TREE_COPY_H_
#define PGBRANCH_STORAGE_TREE_COPY_H_

#include <string>

#include "common/status.h"

namespace pgb {

enum class CopyMethod {
  kReflink,  // FICLONE per file
  kFull,     // byte copies
};

struct CopyOptions {
  CopyMethod method = CopyMethod::kReflink;
  // Adds owner write permission (u+w) to every directory and regular file of the copy: for
  // copying a tree that SealTree could only seal by dropping write permission (see SealTree).
  bool add_owner_write = false;
};

// Copies the directory `source` to `target`, which must not exist (AlreadyExists otherwise) but
// whose parent must. The target root gets the source root's mode, owner and times.
// On failure removes everything this call created and returns the first error: NotFound if
// `source` is missing, ResourceExhausted when the filesystem is full (ENOSPC, EDQUOT),
// FailedPrecondition for another mount inside the tree, IOError for the rest (FICLONE refused:
// EOPNOTSUPP, EXDEV across filesystems).
Status CopyTree(const std::string& source, const std::string& target, const CopyOptions& options);

// Copies `relative` (a path below `source`, e.g. "pg_wal") again to the same path below
// `target`, overwriting: every entry present in the source replaces its namesake in the target
// (a file is copied anew, a directory merged into recursively); entries of the target that the
// source no longer has are kept. This is the second pass of a non-atomic snapshot. OK with
// nothing done if `relative` is missing in the source. InvalidArgument if `relative` is
// absolute, empty or has "." or ".." components; FailedPrecondition if one of its leading
// components is not a directory (a symbolic link is never followed) in either tree. On failure
// the target may hold a mix of old and new files: remove it.
Status RecopyPath(const std::string& source, const std::string& target, const std::string& relative,
                  const CopyOptions& options);

// OK if `relative` is a path RecopyPath accepts: relative, not empty, without "." or ".."
// components (InvalidArgument otherwise). For checking a request before copying anything.
Status CheckRelativePath(const std::string& relative);

// How SealTree made a tree read-only.
enum class SealMethod {
  kImmutableFlag,  // FS_IMMUTABLE_FL on every directory and regular file: not even root can
                   // write, rename, remove or chmod anything until the flag is cleared
  kWriteBits,      // no immutable flag (the filesystem lacks it, or the caller is not root):
                   // write permission removed (a-w) from every directory and regular file;
                   // root, and the owner after a chmod, can still write
};

// Makes the tree at `dir` read-only: sets FS_IMMUTABLE_FL (FS_IOC_SETFLAGS) on every directory
// and regular file, the root included (symbolic links cannot carry it; in an immutable
// directory they cannot be replaced either). If the filesystem refuses the flag (ENOTTY,
// EOPNOTSUPP: e.g. NFS), or the caller may not set it (EPERM without root: the flag needs
// CAP_LINUX_IMMUTABLE), removes all write permission instead. Returns which was done, or the
// first error (the tree is then partly sealed: RemoveTree still removes it).
Result<SealMethod> SealTree(const std::string& dir);

// Sets or clears FS_IMMUTABLE_FL on the directory `dir` alone, not on what is inside: what
// renaming a sealed tree needs (rename(2) of an immutable directory is EPERM; the flags inside
// do not matter). OK, with nothing done, where the flag is as wanted already or the filesystem
// has no inode flags (a tree sealed by write bits, which do not stop root, moves as it is).
// NotFound if `dir` does not exist.
Status SetImmutableFlag(const std::string& dir, bool immutable);

// True if `dir` carries FS_IMMUTABLE_FL. NotFound if it does not exist.
Result<bool> IsImmutable(const std::string& dir);

// Removes the tree at `path` (a directory; a missing one is OK), first clearing the immutable
// and append-only flags wherever they block removal. Never follows symbolic links and never
// descends into another mount (FailedPrecondition: unmount it first).
Status RemoveTree(const std::string& path);

// OK if files in `dir` can be cloned with FICLONE: clones a small probe file there and removes
// both files again. FailedPrecondition "<dir> does not support reflinks (FICLONE): <cause>"
// otherwise; an error creating the probe is returned as it is.
Status CheckReflinkSupport(const std::string& dir);

// Commits the whole filesystem holding `path` to stable storage (syncfs(2)): all data and
// metadata written there by anyone, so costlier when other writers are busy.
Status SyncFs(const std::string& path);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_TREE_COPY_H_
