#include "common/time.h"

#include <date/date.h>
#include <fmt/format.h>

#include <sstream>

namespace pgb {
namespace {

class RealClock : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock clock;
  return clock;
}

std::string FormatTimestamp(TimePoint t) {
  auto ms = std::chrono::time_point_cast<std::chrono::milliseconds>(t);
  return date::format("%FT%TZ", ms);
}

Result<TimePoint> ParseTimestamp(const std::string& text) {
  using std::chrono::milliseconds;
  // Try, in order: trailing Z, numeric offset, no zone.
  for (const char* fmt : {"%FT%TZ", "%FT%T%Ez", "%FT%T%z", "%F %T%Ez", "%FT%T", "%F %T"}) {
    std::istringstream in(text);
    date::sys_time<milliseconds> tp;
    in >> date::parse(fmt, tp);
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) continue;
    // sys_time<milliseconds> spans +-292 million years; TimePoint only +-292 years.
    const auto lo = std::chrono::ceil<milliseconds>(TimePoint::duration::min());
    const auto hi = std::chrono::floor<milliseconds>(TimePoint::duration::max());
    if (tp.time_since_epoch() < lo || tp.time_since_epoch() > hi) {
      return Status::InvalidArgument(fmt::format("timestamp out of range: {}", text));
    }
    return TimePoint(tp);
  }
  return Status::InvalidArgument(fmt::format("not an ISO 8601 timestamp: {}", text));
}

Result<TimePoint> DaysBefore(TimePoint now, int days) {
  static_assert(date::days(kMaxDays) < std::chrono::floor<date::days>(TimePoint::duration::max()),
                "kMaxDays must convert to TimePoint's duration without overflow");
  if (days < 0 || days > kMaxDays) {
    return Status::InvalidArgument(
        fmt::format("{} days is out of range: give a whole number of days from 0 to {} (100 years)",
                    days, kMaxDays));
  }
  const date::days span(days);
  // TimePoint::min() + span cannot overflow (span is positive and far below the maximum), and
  // once `now` is at least that, neither can now - span.
  if (now < TimePoint::min() + span) {
    return Status::InvalidArgument(
        fmt::format("{} days before {} is out of range", days, FormatTimestamp(now)));
  }
  return now - span;
}

std::chrono::seconds SecondsBetween(TimePoint from, TimePoint to) {
  using std::chrono::seconds;
  return std::chrono::floor<seconds>(to).time_since_epoch() -
         std::chrono::floor<seconds>(from).time_since_epoch();
}

std::string FormatAge(std::chrono::seconds age) {
  long long s = age.count();
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m", s / 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

std::string FormatSeconds(std::chrono::nanoseconds d) {
  return fmt::format("{:.2f}s", std::chrono::duration<double>(d).count());
}

}  // namespace pgb
