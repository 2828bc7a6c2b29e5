// Small filesystem helpers; every errno goes through PosixError.

#ifndef PGBRANCH_COMMON_FS_H_
#define PGBRANCH_COMMON_FS_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/status.h"

namespace pgb {

// Who should own a file we create on behalf of another account (PostgreSQL's).
struct FileOwner {
  uid_t uid;
  gid_t gid;
};

// Writes `data` to `path` atomically: a temporary file in the same directory, fsync, chmod
// `mode`, optional chown, rename over `path`, fsync of the directory (leveldb SetCurrentFile).
// Readers see the old or the new content, never a mix. On failure `path` is unchanged.
Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode,
                       std::optional<FileOwner> owner = std::nullopt);

// Reads a whole file. NotFound if it does not exist.
Result<std::string> ReadFile(const std::string& path);

// The last `max_bytes` bytes of a file (the whole file if smaller). NotFound if missing.
Result<std::string> ReadFileTail(const std::string& path, size_t max_bytes);

// Creates `path` and missing parents. The last component gets `mode` (and `owner`), also when
// it exists already; parents created on the way get `mode` too.
Status EnsureDir(const std::string& path, mode_t mode,
                 std::optional<FileOwner> owner = std::nullopt);

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);

// Removes a file; a missing file is OK.
Status RemoveFile(const std::string& path);

// Removes an empty directory; a missing one is OK.
Status RemoveEmptyDir(const std::string& path);

// Adds the permission bits `bits` to an existing path's mode and removes none (a sticky bit,
// group or world access stay as they were); nothing is written if it has them all already.
Status AddModeBits(const std::string& path, mode_t bits);

// Sets mode (and owner) of an existing path.
Status SetMode(const std::string& path, mode_t mode, std::optional<FileOwner> owner = std::nullopt);

// The parent directory of `path` ("/a/b" -> "/a"; "b" -> ".").
std::string Dirname(const std::string& path);

// `a` + "/" + `b`, without doubling the separator.
std::string JoinPath(const std::string& a, const std::string& b);

// Makes `path` absolute against the current directory and removes "." and ".." lexically.
Result<std::string> AbsolutePath(const std::string& path);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_FS_H_
