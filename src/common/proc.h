// The process table as /proc shows it (proc(5)): what a pid is now, when it started, and which
// boot this is. Used to tell a live process from a zombie or a reused pid.

#ifndef PGBRANCH_COMMON_PROC_H_
#define PGBRANCH_COMMON_PROC_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/time.h"

namespace pgb {

// One process as /proc/<pid>/stat shows it.
struct ProcInfo {
  char state = '?';                    // R, S, D, Z (zombie), X (dead), ...
  std::string comm;                    // executable name, at most 15 characters
  unsigned long long start_ticks = 0;  // start time in clock ticks after boot (field 22)
  bool Dead() const { return state == 'Z' || state == 'X'; }
};

// nullopt if there is no such process.
std::optional<ProcInfo> ReadProc(pid_t pid);

// When a process started, from its start ticks and the boot time in /proc/stat.
std::optional<TimePoint> StartTime(unsigned long long start_ticks);

// This boot's random id (/proc/sys/kernel/random/boot_id), or "" if unreadable.
std::string BootId();

}  // namespace pgb

#endif  // PGBRANCH_COMMON_PROC_H_
