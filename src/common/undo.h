// Steps with undo: how every multi-step operation cleans up after a failure.
//
// Each step that makes an artifact (a row, a snapshot, a volume, a running server) pushes the
// action that removes it. If the operation fails, Rollback() runs those actions newest first,
// so a failed create leaves nothing behind and the parent is never touched. On success,
// Commit() forgets them. Destroying an UndoStack that was neither committed nor rolled back
// rolls it back, so an early `return status;` cleans up too (the undo failures are then only
// logged; call Rollback() to report them).

#ifndef PGBRANCH_COMMON_UNDO_H_
#define PGBRANCH_COMMON_UNDO_H_

#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace pgb {

class UndoStack {
 public:
  UndoStack() = default;
  ~UndoStack();
  UndoStack(const UndoStack&) = delete;
  UndoStack& operator=(const UndoStack&) = delete;

  // Registers how to undo the step just done; `what` names it in messages ("destroy volume").
  void Push(std::string what, std::function<Status()> undo);

  // Keeps everything done so far.
  void Commit();

  // Undoes every registered step, newest first, even if some undo fails. Returns `cause`
  // unchanged when all undos succeed; otherwise `cause` with "; cleanup failed: ..." appended
  // (so the user learns what may be left behind).
  Status Rollback(Status cause);

 private:
  struct Step {
    std::string what;
    std::function<Status()> undo;
  };
  std::vector<Step> steps_;
};

}  // namespace pgb

#endif  // PGBRANCH_COMMON_UNDO_H_
