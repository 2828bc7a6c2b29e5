// Cron schedules: the five-field expressions of crontab(5), as Vixie cron and cronie read them,
// and the scheduler's rule for when a scheduled job is due.
//
// Syntax (crontab(5) of Vixie cron / cronie): five fields separated by blanks,
//
//   minute (0-59)  hour (0-23)  day-of-month (1-31)  month (1-12)  day-of-week (0-7)
//
// each a comma-separated list of items: `*` (every value), a number, a range `a-b` (a <= b;
// ranges do not wrap around), optionally followed by a step `/n` (`*/15`, `10-50/20`). Month
// and day-of-week also take three-letter English names (`jan`-`dec`, `sun`-`sat`, any case),
// also as range ends (`mon-fri`). Day-of-week 0 and 7 are both Sunday. One of the macros
// @hourly, @daily (= @midnight), @weekly, @monthly, @yearly (= @annually) may stand for the
// whole expression; @reboot is not supported (a schedule has no boot).
//
// The day rule, also Vixie's: when both day-of-month and day-of-week are restricted, a day
// matches if EITHER matches ("0 0 13 * fri" runs on every 13th and on every Friday). A field
// counts as unrestricted when its text starts with `*`, so, as in cronie, `*/2` in one of them
// makes the rule AND ("0 0 */2 * mon": odd days that are Mondays).
//
// Times are UTC, at minute resolution: seconds and below are ignored.

#ifndef PGBRANCH_COMMON_CRON_H_
#define PGBRANCH_COMMON_CRON_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/time.h"

namespace pgb {

// The longest expression ParseCron takes, in bytes.
inline constexpr size_t kMaxCronLength = 256;

// A parsed cron expression. Immutable once parsed: safe to share between threads and to call
// from several at once. Made only by ParseCron.
class CronSchedule {
 public:
  // The expression as given to ParseCron (blanks at either end dropped): "*/15 * * * *",
  // "@daily".
  const std::string& text() const { return text_; }

  // True if the minute `t` falls in (UTC, seconds ignored) is one of the schedule's.
  bool Matches(TimePoint t) const;

  // The first minute of the schedule strictly after `after` (so, with `after` at 10:00:30 and a
  // schedule of every minute, 10:01:00), whole minutes in UTC. The search goes month, day,
  // hour, minute, not minute by minute, and ends within one 400-year Gregorian cycle.
  // InvalidArgument if no day ever matches ("0 0 30 2 *": February never has a 30th), or if
  // the next minute lies beyond what TimePoint holds (after 2262).
  Result<TimePoint> Next(TimePoint after) const;

  // The last minute of the schedule at or before `at_or_before` and strictly after
  // `after`; nullopt if there is none in between (or none at all).
  std::optional<TimePoint> Last(TimePoint at_or_before, TimePoint after) const;

 private:
  friend Result<CronSchedule> ParseCron(std::string_view expr);
  CronSchedule() = default;

  // True if the date's month matches and its day by the day rule (weekday: Sunday 0).
  bool DayMatches(unsigned month, unsigned day, unsigned weekday) const;
  // True if some day of some year matches the month, day-of-month and day-of-week fields.
  bool AnyDayMatches() const;

  std::string text_;
  uint64_t minutes_ = 0;   // bit m: minute m, 0-59
  uint64_t hours_ = 0;     // bit h: hour h, 0-23
  uint64_t days_ = 0;      // bit d: day-of-month d, 1-31
  uint64_t months_ = 0;    // bit m: month m, 1-12
  uint64_t weekdays_ = 0;  // bit w: day-of-week w, 0-6 (Sunday 0; a 7 is folded into 0)
  // Vixie's DOM_STAR / DOW_STAR: the field's text starts with '*'. With either set a day must
  // match both fields, otherwise either.
  bool days_star_ = false;
  bool weekdays_star_ = false;
};

// Parses a cron expression (syntax above). On failure returns InvalidArgument with one line
// "parse schedule \"<expr>\": <cause>", the expression escaped for a terminal, for example
//   parse schedule "61 * * * *": minute 61 is out of range 0-59
//   parse schedule "* * * *": expected 5 fields, got 4
// Expressions longer than kMaxCronLength are refused before they are looked at.
Result<CronSchedule> ParseCron(std::string_view expr);

// The scheduler's rule: the slot to run now, if any. Returns the latest minute s of `schedule`
// with   since < s <= now,   where `since` is `last_run` if the job has run, else `created`
// (when the schedule was set, so that a new schedule does not fire for slots before it
// existed). nullopt if there is no such slot, also when `since` is at or after `now` (a clock
// that went back).
//
// Why only the latest: after downtime that covered many slots (the daemon stopped over a
// weekend under "0 * * * *"), the job runs once for all of them, not once per missed slot.
// Database Lab Engine's users saw schedules re-run in a burst after a restart; this rule is
// the fix. Record the returned slot (not the wall-clock time the run started) as the next
// call's `last_run`: a run that starts late must not swallow the slot after it.
std::optional<TimePoint> DueRun(const CronSchedule& schedule, std::optional<TimePoint> last_run,
                                TimePoint created, TimePoint now);

}  // namespace pgb

#endif  // PGBRANCH_COMMON_CRON_H_
