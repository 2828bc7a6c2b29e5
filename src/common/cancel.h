// Cancellation: how an interrupt (SIGINT/SIGTERM in the CLI, a cancelled request in the daemon)
// reaches every wait loop and long copy of the operation it interrupts.
//
// A CancelToken is set once and read from any thread. The engine binds the token of the
// operation a thread works for with a CancelScope; code deep below (lock waits, readiness
// polls, subprocesses, file-by-file copies) asks CheckCancelled() instead of taking a token
// parameter through every interface. Undo runs under an UncancellableScope: an interrupted
// operation must be able to clean up after itself.

#ifndef PGBRANCH_COMMON_CANCEL_H_
#define PGBRANCH_COMMON_CANCEL_H_

#include <atomic>
#include <string>

#include "common/status.h"

namespace pgb {

class CancelToken {
 public:
  // Marks the token cancelled with `reason` ("interrupted by SIGINT"). Async-signal-safe when
  // `reason` is a string literal: it only stores a pointer and a flag.
  void Cancel(const char* reason) {
    reason_.store(reason, std::memory_order_relaxed);
    cancelled_.store(true, std::memory_order_release);
  }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  const char* reason() const { return reason_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<const char*> reason_{""};
};

// The token bound to the calling thread, or null.
const CancelToken* CurrentCancelToken();

// Binds `token` (may be null) to the calling thread for the scope's lifetime; the previous
// binding comes back afterwards. Not copyable; scopes nest.
class CancelScope {
 public:
  explicit CancelScope(const CancelToken* token);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  const CancelToken* previous_;
};

// A scope in which nothing is cancellable (undo, and the bookkeeping that records it).
class UncancellableScope : public CancelScope {
 public:
  UncancellableScope() : CancelScope(nullptr) {}
};

// Cancelled("<reason>") when the calling thread's token is cancelled; else OK.
Status CheckCancelled();

}  // namespace pgb

#endif  // PGBRANCH_COMMON_CANCEL_H_
