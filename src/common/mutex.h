// A mutex the thread-safety analysis understands (common/thread_annotations.h).
//
// std::mutex carries no annotations in libstdc++, so members "guarded by" one are unchecked.
// Mutex is a std::mutex with the capability attributes, and MutexLock holds one for a scope:
//
//   class Cache {
//    public:
//     void Put(int k, int v) EXCLUDES(mu_) {
//       MutexLock lock(mu_);
//       map_[k] = v;
//     }
//    private:
//     Mutex mu_;
//     std::map<int, int> map_ GUARDED_BY(mu_);
//   };
//
// Thread-safety: a Mutex is used from many threads, by definition; a MutexLock belongs to the
// thread that made it. Neither is copyable or movable. Not reentrant.

#ifndef PGBRANCH_COMMON_MUTEX_H_
#define PGBRANCH_COMMON_MUTEX_H_

#include <mutex>

#include "common/thread_annotations.h"

namespace pgb {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  // Tells the analysis the caller holds the mutex (where it cannot see it); checks nothing.
  void AssertHeld() const ASSERT_CAPABILITY(this) {}

 private:
  std::mutex mu_;
};

// Holds `mu` from construction to the end of the scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : mu_(mu) { mu_.Lock(); }
  ~MutexLock() RELEASE() { mu_.Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mu_;
};

}  // namespace pgb

#endif  // PGBRANCH_COMMON_MUTEX_H_
