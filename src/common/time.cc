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
    if (!in.fail() && in.peek() == std::char_traits<char>::eof()) return TimePoint(tp);
  }
  return Status::InvalidArgument(fmt::format("not an ISO 8601 timestamp: {}", text));
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
