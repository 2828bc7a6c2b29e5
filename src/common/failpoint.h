// Named fail points for end-to-end crash and undo tests (DuckDB's debug_force_* habit).
//
// In builds configured with -DPGBRANCH_FAILPOINTS=ON, the environment variable
// PGBRANCH_FAILPOINTS holds a comma-separated list of names; Failpoint(name) returns an
// Internal status for a listed name, so the caller fails exactly there, as a real fault would.
// In other builds Failpoint always returns OK and the variable is ignored.

#ifndef PGBRANCH_COMMON_FAILPOINT_H_
#define PGBRANCH_COMMON_FAILPOINT_H_

#include <string_view>

#include "common/status.h"

namespace pgb {

// True when `name` is switched on (always false in builds without fail points).
bool FailpointEnabled(std::string_view name);

// Internal("fail point <name>") when switched on, else OK.
Status Failpoint(std::string_view name);

// Ends the process at once with exit status 70 when `name` is switched on: no undo runs and no
// destructor, as in a crash between two steps. For tests of `doctor --fix`.
void CrashPoint(std::string_view name);

// When "pause:<name>" is switched on, holds the calling thread at `name`: it creates the file
// $PGBRANCH_PAUSE_DIR/<name> and waits until that file is gone (the test removes it), the
// process is cancelled (common/cancel.h), or a minute passes. For tests of what may happen
// between two steps of a command that is not an Operation (those pause in Operation::Step).
void PausePoint(std::string_view name);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_FAILPOINT_H_
