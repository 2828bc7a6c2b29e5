// Operations: each mutating request (create, reset, delete, snapshot, rename ...) as a durable
// record in the catalog's `operations` table, written as it runs.
//
// An operation has an owner (this process: boot id, pid and the pid's start time, so a reused
// pid is never mistaken for it), a kind and target, the steps done so far with their start and
// end, and a journal: the actions (Action below) that undo what was done, pushed *before* each
// step makes something, so a crash at any point leaves a record of everything that may exist.
// Until the operation commits, a failure, an interrupt (exit 130) or `doctor` after a crash
// runs the journal newest first: the same actions, from the catalog alone. At its commit (in
// the same catalog transaction as the rows that make the result real) the journal is replaced
// by the actions that finish it (destroy a reset's old volume, the branches a delete marked),
// which run forward, here or by doctor.
//
// Every step boundary is a fail point and a crash point (common/failpoint.h):
// "fail:<kind>:<step>" fails the operation just before the step, "crash:<kind>:<step>" ends
// the process there, "pause:<kind>:<step>" holds it there until it is interrupted; the crash
// sweep (tests/e2e/crash_e2e_test.cc) reads each operation's
// steps from this table and crashes at every one, so a step added later is swept too.
//
// Thread-safety: an Operation belongs to the thread that runs it.

#ifndef PGBRANCH_ENGINE_OPERATION_H_
#define PGBRANCH_ENGINE_OPERATION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "state/catalog.h"

namespace pgb {

// One journal entry: an action the engine can run from the catalog alone, in the process that
// wrote it or in doctor's after a crash. Idempotent: running it twice, or after its effect has
// already happened, is harmless. Serialized as a JSON object in operations.journal.
struct Action {
  // What to do (the engine's RunAction says exactly what each does):
  //   stop-server        stop (immediately) and forget the server of branch_id on `volume`
  //   destroy-volume     stop anything running on `volume`, then destroy it
  //   destroy-snapshot   the snapshot named `snapshot`, with its row unless a branch uses it
  //   remove-branch-row  branch_id's row (only while creating or deleting), log, archive, lock
  //   remove-project     project_id's row (only once it has no branches) and its directories
  //   remove-dir         `path`, a directory pgbranch made under $PGBRANCH_HOME/wal
  //   restart-branch     start branch_id's current data if it was running (`state`)
  //   set-state          branch_id's stored state back to `state`
  //   destroy-branch     branch_id entirely (a delete's finish): server, volume, snapshots, row
  //   sweep-snapshots    project_id's implicit snapshots no branch uses any more
  //   rename-instance    branch_id's instance was `text` (a container name); rename it to the
  //                      branch's current name and rewrite its pgbranch.conf
  //   move-dir           `from` to `path` (a renamed project's WAL archive), if not yet moved
  std::string kind;
  int64_t project_id = 0;
  int64_t branch_id = 0;
  std::string volume;
  std::string snapshot;
  std::string path;
  std::string from;
  std::string state;
  std::string text;
};

// The sweep-snapshots action of a project (the last finish step of deletes, resets and cleanups).
Action SweepSnapshotsAction(int64_t project_id, const std::string& project_name);

std::string ToJsonText(const std::vector<Action>& actions);
Result<std::vector<Action>> ActionsFromJson(const std::string& text);

// One step of an operation as recorded.
struct OperationStep {
  std::string name;
  std::string started_at;
  std::string ended_at;  // empty while it runs
};
Result<std::vector<OperationStep>> StepsFromJson(const std::string& text);

// "<boot id>/<pid>/<start ticks>" of the calling process.
std::string SelfOwner();
// Whether the process `owner` names still runs (same boot, same pid, same start time, not a
// zombie).
bool OwnerAlive(const std::string& owner);

class Operation {
 public:
  // Records a new running operation owned by this process. `command` is the pgbranch command
  // it serves ("branch create demo/dev"), for the record.
  static Result<std::unique_ptr<Operation>> Begin(Catalog& catalog, const Clock& clock,
                                                  std::string kind, std::string target,
                                                  std::optional<int64_t> project_id,
                                                  std::optional<int64_t> branch_id,
                                                  std::string command);
  // Takes over an interrupted operation (owner dead) for doctor: the record's owner becomes
  // this process. FailedPrecondition if its owner is alive or it has ended.
  static Result<std::unique_ptr<Operation>> Adopt(Catalog& catalog, const Clock& clock, int64_t id);
  ~Operation();
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

  int64_t id() const { return row_.id; }
  const std::string& kind() const { return row_.kind; }
  const std::string& target() const { return row_.target; }
  bool committed() const { return row_.state == kOpCommitted; }
  const OperationRow& row() const { return row_; }
  // "reset of demo/dev by pid 4242 (operation 17)": what lock waiters read.
  std::string HolderText() const;

  // Ends the step in progress and begins `name`: first the fail point "fail:<kind>:<name>" and
  // the crash point "crash:<kind>:<name>", then the calling thread's cancel token (Cancelled).
  Status Step(std::string_view name);
  // Records the project and branch the operation acts on, once they are known.
  Status SetIds(std::optional<int64_t> project_id, std::optional<int64_t> branch_id);

  // Records `undo`, which reverses what the caller is about to do, before it does it. Inside
  // the caller's catalog transaction when there is one (so the record and the row it guards
  // commit together). REQUIRES: not committed.
  Status PushUndo(Action undo);
  // Marks the point of no return. Call inside the catalog transaction that commits the
  // result: the undo journal is dropped and `finish` recorded in its place.
  Status MarkCommitted(std::vector<Action> finish);

  // Runs the journal: newest first before the commit (undo), in order after it (finish). Each
  // action that succeeds leaves the journal at once; one that fails stays, and the rest still
  // run. Returns the failures joined, or OK.
  Status RunJournal(const std::function<Status(const Action&)>& run);
  const std::vector<Action>& journal() const { return journal_; }

  // Ends the record: done (OK), undone (a doctor's repair), or failed with the status's
  // message (and what the journal still holds, for doctor).
  Status End(const Status& result, bool by_doctor = false);

 private:
  Operation(Catalog& catalog, const Clock& clock) : catalog_(catalog), clock_(clock) {}
  // Writes row_ (with steps_ and journal_) to the catalog; not synchronous, except inside a
  // caller's transaction, whose commit decides.
  Status Save();

  Catalog& catalog_;
  const Clock& clock_;
  OperationRow row_;
  std::vector<OperationStep> steps_;
  std::vector<Action> journal_;
  bool ended_ = false;
};

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_OPERATION_H_
