#include "common/time.h"

#include <date/date.h>
#include <gtest/gtest.h>

#include <limits>

namespace pgb {
namespace {

using std::chrono::seconds;

TimePoint At(const std::string& iso) { return ParseTimestamp(iso).value(); }

// Day counts from 0 to kMaxDays give a cutoff that many days back, to the second; anything
// outside, including the 200 000 days whose cutoff used to wrap into the future (and so took
// snapshots made seconds earlier), is InvalidArgument naming the range.
TEST(TimeTest, DaysBeforeIsBounded) {
  const TimePoint now = At("2026-11-21T14:30:00Z");
  EXPECT_EQ(DaysBefore(now, 0).value(), now);
  EXPECT_EQ(DaysBefore(now, 2).value(), At("2026-11-19T14:30:00Z"));
  Result<TimePoint> century = DaysBefore(now, kMaxDays);
  ASSERT_TRUE(century.ok()) << century.status().ToString();
  EXPECT_EQ(*century, At("1926-12-16T14:30:00Z"));
  EXPECT_LT(*century, now);
  for (int days : {-1, kMaxDays + 1, 200000, std::numeric_limits<int>::max(),
                   std::numeric_limits<int>::min()}) {
    Result<TimePoint> cutoff = DaysBefore(now, days);
    EXPECT_EQ(cutoff.status().code(), StatusCode::kInvalidArgument) << days;
    EXPECT_NE(cutoff.status().message().find("from 0 to 36500"), std::string::npos)
        << cutoff.status().message();
  }
}

// With a clock so early that now - days falls before what TimePoint holds, the cutoff is an
// error rather than a wrapped-around moment in the future.
TEST(TimeTest, DaysBeforeNeverWraps) {
  const TimePoint early = TimePoint::min() + date::days(10);
  EXPECT_TRUE(DaysBefore(early, 10).ok());
  EXPECT_EQ(DaysBefore(early, 11).status().code(), StatusCode::kInvalidArgument);
}

// Timestamps TimePoint cannot hold (Docker's "never started" 0001-01-01, a year 9999) are
// refused rather than wrapped; those inside its range, and the formats the catalog writes,
// round-trip.
TEST(TimeTest, ParseTimestampRange) {
  EXPECT_EQ(FormatTimestamp(At("2026-11-21T14:30:00.123Z")), "2026-11-21T14:30:00.123Z");
  EXPECT_EQ(At("2026-11-21T15:30:00+01:00"), At("2026-11-21T14:30:00Z"));
  EXPECT_TRUE(ParseTimestamp("1700-01-01T00:00:00Z").ok());
  for (const char* bad : {"0001-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                          "2300-01-01T00:00:00Z", "yesterday", ""}) {
    EXPECT_EQ(ParseTimestamp(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

// The seconds between two moments almost TimePoint's whole range apart are exact, where
// subtracting the TimePoints themselves would overflow.
TEST(TimeTest, SecondsBetweenFarApart) {
  const TimePoint a = At("1700-01-01T00:00:00Z");
  const TimePoint b = At("2250-01-01T00:00:00Z");
  const auto days =
      date::sys_days(date::year(2250) / 1 / 1) - date::sys_days(date::year(1700) / 1 / 1);
  EXPECT_EQ(SecondsBetween(a, b), seconds(days));
  EXPECT_EQ(SecondsBetween(b, a), -seconds(days));
}

TEST(TimeTest, FormatAge) {
  EXPECT_EQ(FormatAge(seconds(45)), "45s");
  EXPECT_EQ(FormatAge(seconds(-5)), "0s");
  EXPECT_EQ(FormatAge(seconds(2 * 86400 + 4 * 3600)), "2d04h");
}

}  // namespace
}  // namespace pgb
