// The audit trail: every storage and runtime operation, and every external command, that a
// pgbranch command performs — what, on which object, how (call arguments or argv), how long,
// and how it ended.
//
// Forwarding wrappers (leveldb's EnvWrapper habit) sit between the engine and the real Pool,
// Runtime and ProcessRunner and note each mutating call in an AuditLog, which hands each row to
// its sink (the engine's: the catalog) as soon as the call ends, so a command killed half-way
// leaves the rows of what it did. Each row names the command, operation and step it served,
// from the calling thread's AuditScope. Reads (Inspect, sizes, listings) are not audited: they
// change nothing. Secrets never reach the trail: they are never in argv, and stdin is not
// recorded.

#ifndef PGBRANCH_ENGINE_AUDIT_H_
#define PGBRANCH_ENGINE_AUDIT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "common/thread_annotations.h"
#include "common/time.h"
#include "runtime/runtime.h"
#include "state/catalog.h"
#include "storage/pool.h"

namespace pgb {

// What the calling thread's audit rows serve: set for the lifetime of the scope (scopes nest).
class AuditScope {
 public:
  AuditScope(std::string command, std::optional<int64_t> operation_id);
  ~AuditScope();
  AuditScope(const AuditScope&) = delete;
  AuditScope& operator=(const AuditScope&) = delete;

 private:
  struct Saved;
  std::unique_ptr<Saved> saved_;
};
// The step of the calling thread's operation that the next rows serve (engine/operation.h).
void SetAuditStep(std::string step);

// Records audit rows. Thread-safe.
class AuditLog {
 public:
  using Sink = std::function<Status(const AuditRow&)>;
  explicit AuditLog(const Clock& clock) : clock_(clock) {}

  // Rows go to `sink` as they are recorded; a sink that fails is warned about and the row kept
  // in memory. Without a sink, rows stay in memory until Take().
  void SetSink(Sink sink) EXCLUDES(mu_);
  // The command rows serve on threads without an AuditScope ("branch create demo/dev").
  void SetCommand(std::string command) EXCLUDES(mu_);

  // Runs `body`, recording its operation, object, detail, duration and result.
  Status Record(std::string operation, std::string object, std::string detail,
                const std::function<Status()>& body) EXCLUDES(mu_);

  // The rows kept in memory so far; empty afterwards.
  std::vector<AuditRow> Take() EXCLUDES(mu_);

 private:
  const Clock& clock_;
  Mutex mu_;
  Sink sink_ GUARDED_BY(mu_);
  std::string command_ GUARDED_BY(mu_);
  std::vector<AuditRow> rows_ GUARDED_BY(mu_);
};

// Wrappers that forward every call to `target` and record the mutating ones in `log`.
// `target` and `log` must outlive them.
std::unique_ptr<Pool> NewAuditedPool(std::unique_ptr<Pool> target, AuditLog& log);
std::unique_ptr<Runtime> NewAuditedRuntime(std::unique_ptr<Runtime> target, AuditLog& log);
std::unique_ptr<ProcessRunner> NewAuditedRunner(ProcessRunner& target, AuditLog& log);

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_AUDIT_H_
