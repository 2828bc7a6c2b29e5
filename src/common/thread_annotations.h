// Clang's thread-safety attributes (clang.llvm.org/docs/ThreadSafetyAnalysis.html) as macros,
// so a comment like "guarded by mu_" becomes something the compiler checks.
//
// The `thread-safety` build (scripts/build.sh thread-safety) compiles with clang and
// -Wthread-safety -Werror=thread-safety: reading or writing a GUARDED_BY member without its
// mutex, calling a REQUIRES function without it, or calling an EXCLUDES function with it held
// is a compile error there. Other compilers see nothing: every macro expands to nothing.
//
// The words, as used in this tree:
//   GUARDED_BY(mu)      a member that may only be read or written with `mu` held
//   PT_GUARDED_BY(mu)   a pointer member whose *pointee* needs `mu` (the pointer itself does not)
//   REQUIRES(mu)        a function whose caller holds `mu`
//   EXCLUDES(mu)        a function whose caller does not hold `mu` (it takes it itself)
//   ACQUIRE / RELEASE   a function that takes / lets go of a capability (a lock's own methods)
//   CAPABILITY("mutex") a class that is a lock; SCOPED_CAPABILITY one that holds a lock for its
//                       lifetime (common/mutex.h MutexLock)
// Locks the analysis cannot see through (flock files of engine/locks.h, SQLite's own locking)
// are not annotated; their order is checked at run time instead.

#ifndef PGBRANCH_COMMON_THREAD_ANNOTATIONS_H_
#define PGBRANCH_COMMON_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define PGB_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PGB_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(name) PGB_THREAD_ANNOTATION(capability(name))
#define SCOPED_CAPABILITY PGB_THREAD_ANNOTATION(scoped_lockable)

#define GUARDED_BY(mu) PGB_THREAD_ANNOTATION(guarded_by(mu))
#define PT_GUARDED_BY(mu) PGB_THREAD_ANNOTATION(pt_guarded_by(mu))

#define ACQUIRED_BEFORE(...) PGB_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) PGB_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))

#define REQUIRES(...) PGB_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) PGB_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define EXCLUDES(...) PGB_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))

#define ACQUIRE(...) PGB_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) PGB_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) PGB_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) PGB_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) PGB_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))

#define ASSERT_CAPABILITY(x) PGB_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) PGB_THREAD_ANNOTATION(lock_returned(x))

// For the rare function whose locking the analysis cannot follow; say why next to it.
#define NO_THREAD_SAFETY_ANALYSIS PGB_THREAD_ANNOTATION(no_thread_safety_analysis)

#endif  // PGBRANCH_COMMON_THREAD_ANNOTATIONS_H_
