// Advisory whole-file locks (flock) that serialise pgbranch commands on one project.
//
// Two pgbranch processes (CLI or server) that touch the same project take its lock first; the
// catalog's transactions then keep each row change atomic. The lock is released when the
// FileLock is destroyed or the process dies (the kernel drops flock locks with the descriptor).

#ifndef PGBRANCH_COMMON_FILE_LOCK_H_
#define PGBRANCH_COMMON_FILE_LOCK_H_

#include <chrono>
#include <memory>
#include <string>

#include "common/status.h"

namespace pgb {

class FileLock {
 public:
  // Takes an exclusive lock on `path` (created 0600 if missing), waiting up to `wait`.
  // Unavailable if another process still holds it after `wait`.
  static Result<std::unique_ptr<FileLock>> Acquire(const std::string& path,
                                                   std::chrono::milliseconds wait);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace pgb

#endif  // PGBRANCH_COMMON_FILE_LOCK_H_
