// Wall-clock time: an injectable clock and ISO 8601 text (Howard Hinnant's date library).

#ifndef PGBRANCH_COMMON_TIME_H_
#define PGBRANCH_COMMON_TIME_H_

#include <chrono>
#include <string>

#include "common/status.h"

namespace pgb {

using TimePoint = std::chrono::system_clock::time_point;

// Abstract so tests can fix "now". The real one reads the system clock. Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// The system clock.
const Clock& SystemClock();

// "2026-11-21T14:30:00.123Z": UTC, milliseconds. The format stored in the catalog and
// printed in JSON.
std::string FormatTimestamp(TimePoint t);

// Parses what FormatTimestamp writes, and ISO 8601 with a numeric offset
// ("2026-11-21T15:30:00+01:00") or none (then UTC). InvalidArgument otherwise, also for a
// well-formed time TimePoint cannot hold (nanoseconds since 1970 in 64 bits: before 1678 or
// after 2261) rather than a wrapped-around one.
Result<TimePoint> ParseTimestamp(const std::string& text);

// The largest day count a command takes (`snapshot cleanup --days`, `wal cleanup --days`):
// 100 years. Far inside what TimePoint spans, so a cutoff of now - kMaxDays never wraps around
// to the future (a day count near 107,000 did: it deleted snapshots made seconds earlier).
inline constexpr int kMaxDays = 36500;

// `now` minus `days` whole days of 86400 s, in date::days. InvalidArgument naming the range
// unless 0 <= days <= kMaxDays (and, for a clock set before 1778, unless the result is one
// TimePoint can hold).
Result<TimePoint> DaysBefore(TimePoint now, int days);

// The whole seconds from `from` to `to` (negative when `to` is earlier), computed in seconds so
// that no two TimePoints are too far apart.
std::chrono::seconds SecondsBetween(TimePoint from, TimePoint to);

// A compact duration for tables: "45s", "12m", "3h05m", "2d04h".
std::string FormatAge(std::chrono::seconds age);

// Seconds with two decimals, "0.03s", for step timings.
std::string FormatSeconds(std::chrono::nanoseconds d);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_TIME_H_
