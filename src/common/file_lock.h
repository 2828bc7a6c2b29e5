// Advisory whole-file locks (flock) that serialise pgbranch's work on one home, project or
// branch across processes and threads.
//
// flock locks belong to an open file description, so two FileLocks on one path conflict
// whether they are taken by two processes or by two threads of one process (each Acquire opens
// the file anew). The kernel drops a lock when its descriptor closes, so a killed holder never
// leaves a lock behind. The holder of an exclusive lock writes one line into the file saying
// who it is and since when; a waiter reads it to say what it waits for ("waiting for demo/dev:
// reset by pid 4242 (operation 17) since 12 s"). The engine's lock hierarchy is engine/locks.h.

#ifndef PGBRANCH_COMMON_FILE_LOCK_H_
#define PGBRANCH_COMMON_FILE_LOCK_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace pgb {

enum class LockMode { kShared, kExclusive };

class FileLock {
 public:
  struct Options {
    LockMode mode = LockMode::kExclusive;
    // How long to wait for a holder to let go; zero tries once.
    std::chrono::milliseconds wait{0};
    // What the lock protects, for messages ("demo/dev", "project demo", "the home").
    std::string what;
    // Exclusive locks: written into the file while held, for waiters to read ("reset of
    // demo/dev by pid 4242 (operation 17)"). Empty: nothing written.
    std::string holder;
    // Called when a wait has lasted `note_after`, and every `note_every` after that, with
    // "waiting for <what>: <holder> since N s" (may be null).
    std::function<void(const std::string&)> on_wait;
    std::chrono::milliseconds note_after{1000};
    std::chrono::milliseconds note_every{10000};
  };

  // Takes the lock on `path` (created 0600 if missing). While waiting, checks the calling
  // thread's cancel token (common/cancel.h) every few milliseconds. Unavailable after `wait`,
  // naming what holds it ("demo/dev is busy: reset of demo/dev by pid 4242 since 2 min; try
  // again when it finishes"); Cancelled when interrupted; IOError if the file cannot be opened.
  static Result<std::unique_ptr<FileLock>> Acquire(const std::string& path, const Options& options);
  // An exclusive lock with no holder line, waiting up to `wait`.
  static Result<std::unique_ptr<FileLock>> Acquire(const std::string& path,
                                                   std::chrono::milliseconds wait);

  // The holder line of `path` with its age ("reset of demo/dev by pid 4242 since 12 s"), or
  // empty if none is written (free, shared, or held by an older pgbranch).
  static std::string DescribeHolder(const std::string& path);

  // Releases the lock (an exclusive holder's line is erased first).
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  FileLock(int fd, bool wrote_holder) : fd_(fd), wrote_holder_(wrote_holder) {}
  int fd_;
  bool wrote_holder_;
};

}  // namespace pgb

#endif  // PGBRANCH_COMMON_FILE_LOCK_H_
