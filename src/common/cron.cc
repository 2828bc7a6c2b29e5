#include "common/cron.h"

#include <date/date.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <chrono>
#include <vector>

#include "common/bytes.h"

namespace pgb {
namespace {

using std::chrono::minutes;
using Minutes = date::sys_time<minutes>;

// One 400-year Gregorian cycle, after which dates fall on the same weekdays again, plus a year
// of slack: a search that has looked this far without a match never finds one.
constexpr date::days kSearchSpan{146097 + 366};

// Next's cause for an expression such as "0 0 30 2 *".
constexpr char kNeverMatches[] =
    ": it never matches (none of its months has any of its days of the month)";

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kDayNames = {"sun", "mon", "tue", "wed",
                                                       "thu", "fri", "sat"};

struct FieldSpec {
  std::string_view name;
  int min;
  int max;
  const std::string_view* names;  // the names of min, min+1, ...; nullptr if none
  size_t name_count;
  std::string_view names_hint;  // "month name (jan-dec)"
};

constexpr std::array<FieldSpec, 5> kFields = {{
    {"minute", 0, 59, nullptr, 0, ""},
    {"hour", 0, 23, nullptr, 0, ""},
    {"day-of-month", 1, 31, nullptr, 0, ""},
    {"month", 1, 12, kMonthNames.data(), kMonthNames.size(), "month name (jan-dec)"},
    {"day-of-week", 0, 7, kDayNames.data(), kDayNames.size(), "day name (sun-sat)"},
}};

struct Macro {
  std::string_view name;
  std::string_view fields;
};

// Vixie cron's expansions (entry.c); they read the same as the five fields they stand for.
constexpr std::array<Macro, 7> kMacros = {{
    {"@hourly", "0 * * * *"},
    {"@daily", "0 0 * * *"},
    {"@midnight", "0 0 * * *"},
    {"@weekly", "0 0 * * 0"},
    {"@monthly", "0 0 1 * *"},
    {"@yearly", "0 0 1 1 *"},
    {"@annually", "0 0 1 1 *"},
}};

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The value of a string of digits, saturating at a value above every field's range.
int DigitsValue(std::string_view s) {
  int v = 0;
  for (char c : s) {
    v = v * 10 + (c - '0');
    if (v > 1000) return 1000;
  }
  return v;
}

std::string Quoted(std::string_view text) { return "\"" + EscapeForTerminal(text) + "\""; }

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string_view> SplitBlanks(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsBlank(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !IsBlank(text[i])) ++i;
    if (i > start) fields.push_back(text.substr(start, i - start));
  }
  return fields;
}

// A number, or a name where the field has them, within the field's range. `item` is the list
// item `token` came from, for messages.
Result<int> ParseValue(const FieldSpec& f, std::string_view token, std::string_view item) {
  if (token.empty()) {
    return Status::InvalidArgument(fmt::format("{} {} is missing a number", f.name, Quoted(item)));
  }
  if (AllDigits(token)) {
    int v = DigitsValue(token);
    if (v < f.min || v > f.max) {
      return Status::InvalidArgument(
          fmt::format("{} {} is out of range {}-{}", f.name, token, f.min, f.max));
    }
    return v;
  }
  for (size_t i = 0; i < f.name_count; ++i) {
    if (EqualsIgnoreCase(token, f.names[i])) return f.min + static_cast<int>(i);
  }
  if (f.names != nullptr) {
    return Status::InvalidArgument(
        fmt::format("{} {} is not a number or a {}", f.name, Quoted(token), f.names_hint));
  }
  return Status::InvalidArgument(fmt::format("{} {} is not a number", f.name, Quoted(token)));
}

// "a" or "a-b": how a reversed range could be written instead.
std::string RangeText(int lo, int hi) {
  return lo == hi ? std::to_string(lo) : fmt::format("{}-{}", lo, hi);
}

// Sets the bits of one list item: `*`, `n`, `a-b`, `*/s` or `a-b/s`.
Status ParseItem(const FieldSpec& f, std::string_view item, uint64_t* bits) {
  if (item.empty()) {
    return Status::InvalidArgument(fmt::format("{} list has an empty item", f.name));
  }
  const size_t slash = item.find('/');
  const std::string_view base = item.substr(0, slash);
  int lo = f.min;
  int hi = f.max;
  if (base != "*") {
    const size_t dash = base.find('-');
    Result<int> first = ParseValue(f, base.substr(0, dash), item);
    if (!first.ok()) return first.status();
    lo = hi = *first;
    if (dash != std::string_view::npos) {
      Result<int> last = ParseValue(f, base.substr(dash + 1), item);
      if (!last.ok()) return last.status();
      hi = *last;
    } else if (slash != std::string_view::npos) {
      return Status::InvalidArgument(
          fmt::format("{} step needs a range or *: {} (did you mean {}-{}{}?)", f.name,
                      Quoted(item), lo, f.max, item.substr(slash)));
    }
    if (lo > hi) {
      if (slash != std::string_view::npos) {
        return Status::InvalidArgument(
            fmt::format("{} range {} is reversed", f.name, Quoted(base)));
      }
      return Status::InvalidArgument(
          fmt::format("{} range {} is reversed (ranges do not wrap around: write {},{})", f.name,
                      Quoted(base), RangeText(lo, f.max), RangeText(f.min, hi)));
    }
  }
  int step = 1;
  if (slash != std::string_view::npos) {
    const std::string_view step_text = item.substr(slash + 1);
    if (!AllDigits(step_text)) {
      return Status::InvalidArgument(
          fmt::format("{} step {} is not a number", f.name, Quoted(step_text)));
    }
    step = DigitsValue(step_text);
    // cronie refuses only 0; a step past the field's largest value picks just the first one,
    // which is never what "*/90" in minutes was meant to say.
    if (step < 1 || step > f.max) {
      return Status::InvalidArgument(
          fmt::format("{} step {} is out of range 1-{}", f.name, step_text, f.max));
    }
  }
  for (int v = lo; v <= hi; v += step) *bits |= uint64_t{1} << v;
  return Status::OK();
}

Status ParseField(const FieldSpec& f, std::string_view text, uint64_t* bits) {
  for (std::string_view item : Split(text, ',')) PGB_RETURN_IF_ERROR(ParseItem(f, item, bits));
  return Status::OK();
}

// The smallest set bit at or above `from` (0-63), or -1.
int NextBit(uint64_t bits, int from) {
  const uint64_t rest = bits & (~uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

// The largest set bit at or below `from` (0-63), or -1 when `from` is negative or there is
// none.
int PrevBit(uint64_t bits, int from) {
  if (from < 0) return -1;
  const uint64_t rest = bits & (~uint64_t{0} >> (63 - from));
  return rest == 0 ? -1 : 63 - std::countl_zero(rest);
}

bool Has(uint64_t bits, unsigned i) { return (bits >> i) & 1; }

unsigned DaysInMonthAnyYear(unsigned month) {
  static constexpr std::array<unsigned, 13> kDays = {0,  31, 29, 31, 30, 31, 30,
                                                     31, 31, 30, 31, 30, 31};
  return kDays[month];
}

}  // namespace

bool CronSchedule::DayMatches(unsigned month, unsigned day, unsigned weekday) const {
  if (!Has(months_, month)) return false;
  const bool by_day = Has(days_, day);
  const bool by_weekday = Has(weekdays_, weekday);
  // crontab(5): both restricted means either; cronie decides "restricted" by a leading '*'.
  return days_star_ || weekdays_star_ ? by_day && by_weekday : by_day || by_weekday;
}

bool CronSchedule::AnyDayMatches() const {
  // Either rule: every month has every weekday, so a restricted day-of-week always matches
  // somewhere. The AND rule also needs a day-of-month that exists in one of the months; every
  // such date, February 29 too, falls on every weekday within a 400-year cycle.
  if (!days_star_ && !weekdays_star_) return true;
  for (unsigned m = 1; m <= 12; ++m) {
    if (!Has(months_, m)) continue;
    for (unsigned d = 1; d <= DaysInMonthAnyYear(m); ++d) {
      if (Has(days_, d)) return true;
    }
  }
  return false;
}

bool CronSchedule::Matches(TimePoint t) const {
  const Minutes minute = std::chrono::floor<minutes>(t);
  const date::sys_days day = std::chrono::floor<date::days>(minute);
  const date::year_month_day ymd(day);
  const date::hh_mm_ss<minutes> time(minute - day);
  return DayMatches(unsigned(ymd.month()), unsigned(ymd.day()), date::weekday(day).c_encoding()) &&
         Has(hours_, time.hours().count()) && Has(minutes_, time.minutes().count());
}

Result<TimePoint> CronSchedule::Next(TimePoint after) const {
  const std::string context = fmt::format("next run of schedule {}", Quoted(text_));
  if (!AnyDayMatches()) {
    return Status::InvalidArgument(context + kNeverMatches);
  }
  const Minutes start = std::chrono::floor<minutes>(after) + minutes(1);
  date::sys_days day = std::chrono::floor<date::days>(start);
  const date::sys_days limit = day + kSearchSpan;
  int from_hour = static_cast<int>((start - day) / std::chrono::hours(1));
  int from_minute = static_cast<int>((start - day) % std::chrono::hours(1) / minutes(1));
  while (day <= limit) {
    const date::year_month_day ymd(day);
    if (!Has(months_, unsigned(ymd.month()))) {
      day = date::sys_days((ymd.year() / ymd.month() + date::months(1)) / 1);
      from_hour = from_minute = 0;
      continue;
    }
    if (DayMatches(unsigned(ymd.month()), unsigned(ymd.day()), date::weekday(day).c_encoding())) {
      for (int h = NextBit(hours_, from_hour); h >= 0; h = NextBit(hours_, h + 1)) {
        const int m = NextBit(minutes_, h == from_hour ? from_minute : 0);
        if (m < 0) continue;
        const Minutes found = day + std::chrono::hours(h) + minutes(m);
        if (found > std::chrono::floor<minutes>(TimePoint::max())) {
          return Status::InvalidArgument(context + ": it falls after " +
                                         FormatTimestamp(TimePoint::max()) +
                                         ", the last time this program can hold");
        }
        return TimePoint(found);
      }
    }
    day += date::days(1);
    from_hour = from_minute = 0;
  }
  // Unreachable when AnyDayMatches is right; a bounded search either way.
  return Status::InvalidArgument(context + kNeverMatches);
}

std::optional<TimePoint> CronSchedule::Last(TimePoint at_or_before, TimePoint after) const {
  // Whole minutes s with after < s <= at_or_before: from floor(after) + 1 min (whether or not
  // `after` has seconds) to floor(at_or_before).
  const Minutes lowest = std::chrono::floor<minutes>(after) + minutes(1);
  const Minutes end = std::chrono::floor<minutes>(at_or_before);
  if (end < lowest || !AnyDayMatches()) return std::nullopt;
  date::sys_days day = std::chrono::floor<date::days>(end);
  const date::sys_days limit =
      std::max(std::chrono::floor<date::days>(lowest), date::sys_days(day - kSearchSpan));
  int from_hour = static_cast<int>((end - day) / std::chrono::hours(1));
  int from_minute = static_cast<int>((end - day) % std::chrono::hours(1) / minutes(1));
  while (day >= limit) {
    const date::year_month_day ymd(day);
    if (!Has(months_, unsigned(ymd.month()))) {
      day = date::sys_days(ymd.year() / ymd.month() / 1) - date::days(1);
      from_hour = 23;
      from_minute = 59;
      continue;
    }
    if (DayMatches(unsigned(ymd.month()), unsigned(ymd.day()), date::weekday(day).c_encoding())) {
      for (int h = PrevBit(hours_, from_hour); h >= 0; h = PrevBit(hours_, h - 1)) {
        const int m = PrevBit(minutes_, h == from_hour ? from_minute : 59);
        if (m < 0) continue;
        const Minutes found = day + std::chrono::hours(h) + minutes(m);
        // The latest slot at or before `end`; if even that is too early, there is none.
        if (found < lowest) return std::nullopt;
        return TimePoint(found);
      }
    }
    day -= date::days(1);
    from_hour = 23;
    from_minute = 59;
  }
  return std::nullopt;
}

Result<CronSchedule> ParseCron(std::string_view expr) {
  if (expr.size() > kMaxCronLength) {
    return Status::InvalidArgument(
        fmt::format("parse schedule {}: {} bytes is too long (at most {})",
                    Quoted(std::string(expr.substr(0, 32)) + "..."), expr.size(), kMaxCronLength));
  }
  while (!expr.empty() && IsBlank(expr.front())) expr.remove_prefix(1);
  while (!expr.empty() && IsBlank(expr.back())) expr.remove_suffix(1);
  auto fail = [expr](const std::string& cause) {
    return Status::InvalidArgument(fmt::format("parse schedule {}: {}", Quoted(expr), cause));
  };

  std::vector<std::string_view> fields = SplitBlanks(expr);
  if (!fields.empty() && fields[0].starts_with('@')) {
    const Macro* macro = nullptr;
    for (const Macro& m : kMacros) {
      if (EqualsIgnoreCase(fields[0], m.name)) macro = &m;
    }
    if (macro == nullptr) {
      return fail(fmt::format(
          "unknown macro {} (there are @hourly, @daily, @midnight, @weekly, @monthly, @yearly "
          "and @annually)",
          Quoted(fields[0])));
    }
    if (fields.size() != 1) return fail(fmt::format("{} takes no other fields", macro->name));
    fields = SplitBlanks(macro->fields);
  }
  if (fields.size() != kFields.size()) {
    return fail(fmt::format("expected {} fields, got {}", kFields.size(), fields.size()));
  }

  CronSchedule s;
  s.text_ = std::string(expr);
  uint64_t* bits[] = {&s.minutes_, &s.hours_, &s.days_, &s.months_, &s.weekdays_};
  for (size_t i = 0; i < kFields.size(); ++i) {
    Status st = ParseField(kFields[i], fields[i], bits[i]);
    if (!st.ok()) return fail(st.message());
  }
  // Day-of-week 7 is Sunday, as 0 is.
  if (Has(s.weekdays_, 7)) s.weekdays_ = (s.weekdays_ & ~(uint64_t{1} << 7)) | 1;
  s.days_star_ = fields[2].starts_with('*');
  s.weekdays_star_ = fields[4].starts_with('*');
  return s;
}

std::optional<TimePoint> DueRun(const CronSchedule& schedule, std::optional<TimePoint> last_run,
                                TimePoint created, TimePoint now) {
  return schedule.Last(now, last_run.value_or(created));
}

}  // namespace pgb
