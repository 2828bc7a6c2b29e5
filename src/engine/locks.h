// The engine's locks: one header says it all (DESIGN.md "Locks").
//
// Three levels, always taken in this order, each a FileLock under $PGBRANCH_HOME/locks:
//
//   home     locks/home.lock, shared by every command that reads or changes projects;
//            exclusive for what changes the home itself: init (the pool), catalog restore,
//            doctor --adopt.
//   project  locks/project-<id>.lock, exclusive, held only for the moments a project's lineage
//            changes: a branch's parent checked, its snapshot taken and recorded; a subtree
//            marked for deletion; a snapshot's users checked before it goes; a project created,
//            renamed or deleted. Never held across long work (copying data, recovery, start).
//   branch   locks/branch-<id>.lock, exclusive, held for a whole operation on that branch:
//            start, stop, reset, delete, snapshot, rename, and the new branch of a create
//            (from the moment its row exists until it runs). Several branch locks are taken in
//            ascending id order (a parent before its children: ids grow with creation).
//
// The rules, checked at run time (a violation is an Internal error, i.e. a bug): a thread takes
// home before project before branch; a thread holding a branch lock never waits for a project
// lock (it releases its branch locks first); branch locks in ascending id order. Long work
// holds only its own branch lock, so a copy-pool clone or a point-in-time recovery of
// project/x does not stop other branches of the project from being created or reset.
//
// Every wait is bounded (kLockWait), cancellable (common/cancel.h) and says what it waits for:
// after a second the caller's `on_wait` hears "waiting for demo/dev: reset of demo/dev by pid
// 4242 (operation 17) since 12 s". `doctor` takes the same locks and skips what is held.
//
// Thread-safety: a Locks object may be used from many threads; each held lock belongs to the
// thread that took it and must be released there.

#ifndef PGBRANCH_ENGINE_LOCKS_H_
#define PGBRANCH_ENGINE_LOCKS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/file_lock.h"
#include "common/status.h"

namespace pgb {

inline constexpr auto kLockWait = std::chrono::seconds(120);

enum class LockLevel { kHome = 0, kProject = 1, kBranch = 2 };

// A lock the calling thread holds; released when destroyed.
class HeldLock {
 public:
  HeldLock(std::unique_ptr<FileLock> lock, LockLevel level, int64_t id);
  ~HeldLock();
  HeldLock(const HeldLock&) = delete;
  HeldLock& operator=(const HeldLock&) = delete;

 private:
  std::unique_ptr<FileLock> lock_;
  LockLevel level_;
  int64_t id_;
};

using LockHandle = std::unique_ptr<HeldLock>;

class Locks {
 public:
  // `dir` is $PGBRANCH_HOME/locks (made by the engine). `on_wait` hears the waiting notes.
  Locks(std::string dir, std::function<void(const std::string&)> on_wait);

  // `holder` describes the caller for waiters ("reset of demo/dev by pid 4242 (operation 17)").
  // `wait` overrides kLockWait (doctor passes a short one: it skips what is busy).
  Result<LockHandle> Home(LockMode mode, const std::string& holder,
                          std::chrono::milliseconds wait = kLockWait);
  Result<LockHandle> Project(int64_t project_id, const std::string& project_name,
                             const std::string& holder, std::chrono::milliseconds wait = kLockWait);
  Result<LockHandle> Branch(int64_t branch_id, const std::string& branch_ref,
                            const std::string& holder, std::chrono::milliseconds wait = kLockWait);

  // The lock files of a deleted project or branch (ids are never reused, so a waiter that gets
  // an unlinked file finds the row gone when it looks again, as it must).
  void RemoveProjectLock(int64_t project_id);
  void RemoveBranchLock(int64_t branch_id);

  // Levels the calling thread holds, for tests: e.g. "home,project,branch:7".
  static std::string HeldByThisThread();

 private:
  Result<LockHandle> Take(LockLevel level, int64_t id, const std::string& file, LockMode mode,
                          const std::string& what, const std::string& holder,
                          std::chrono::milliseconds wait);
  std::string dir_;
  std::function<void(const std::string&)> on_wait_;
};

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_LOCKS_H_
