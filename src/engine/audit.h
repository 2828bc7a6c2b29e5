// The audit trail: every storage and runtime operation, and every external command, that a
// pgbranch command performs — what, on which object, how (call arguments or argv), how long,
// and how it ended.
//
// Forwarding wrappers (leveldb's EnvWrapper habit) sit between the engine and the real Pool,
// Runtime and ProcessRunner and note each mutating call in an AuditLog; the engine writes the
// log to the catalog in one transaction when the command ends (Engine::FlushAudit), whether it
// succeeded or not. Reads (Inspect, sizes, listings) are not audited: they change nothing.
// Secrets never reach the trail: they are never in argv, and stdin is not recorded.

#ifndef PGBRANCH_ENGINE_AUDIT_H_
#define PGBRANCH_ENGINE_AUDIT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "runtime/runtime.h"
#include "state/catalog.h"
#include "storage/pool.h"

namespace pgb {

// Collects audit rows in memory. Not thread-safe.
class AuditLog {
 public:
  explicit AuditLog(const Clock& clock) : clock_(clock) {}

  // The command the following rows serve ("branch create demo/dev").
  void SetCommand(std::string command) { command_ = std::move(command); }

  // Runs `body`, recording its operation, object, detail, duration and result.
  Status Record(std::string operation, std::string object, std::string detail,
                const std::function<Status()>& body);

  // The rows collected so far; the log is empty afterwards.
  std::vector<AuditRow> Take();

 private:
  const Clock& clock_;
  std::string command_;
  std::vector<AuditRow> rows_;
};

// Wrappers that forward every call to `target` and record the mutating ones in `log`.
// `target` and `log` must outlive them.
std::unique_ptr<Pool> NewAuditedPool(std::unique_ptr<Pool> target, AuditLog& log);
std::unique_ptr<Runtime> NewAuditedRuntime(std::unique_ptr<Runtime> target, AuditLog& log);
std::unique_ptr<ProcessRunner> NewAuditedRunner(ProcessRunner& target, AuditLog& log);

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_AUDIT_H_
