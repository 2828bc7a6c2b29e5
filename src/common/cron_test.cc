#include "common/cron.h"

#include <date/date.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgb {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

TimePoint At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return date::sys_days(date::year(y) / mo / d) + hours(h) + minutes(mi) + seconds(s);
}

// "2026-03-01 14:30", for comparisons that read well when they fail.
std::string Text(TimePoint t) { return date::format("%F %R", std::chrono::floor<minutes>(t)); }

CronSchedule Parse(std::string_view expr) {
  Result<CronSchedule> s = ParseCron(expr);
  if (!s.ok()) ADD_FAILURE() << expr << ": " << s.status().ToString();
  return s.ok() ? *s : *ParseCron("* * * * *");
}

// The next minute of `expr` after `after` as text, or the error's message.
std::string NextAfter(std::string_view expr, TimePoint after) {
  Result<TimePoint> next = Parse(expr).Next(after);
  return next.ok() ? Text(*next) : next.status().message();
}

// The successive minutes of `expr` after `after`.
std::vector<std::string> Runs(std::string_view expr, TimePoint after, int count) {
  const CronSchedule s = Parse(expr);
  std::vector<std::string> runs;
  for (int i = 0; i < count; ++i) {
    Result<TimePoint> next = s.Next(after);
    if (!next.ok()) {
      runs.push_back(next.status().message());
      break;
    }
    runs.push_back(Text(*next));
    after = *next;
  }
  return runs;
}

std::string ParseError(std::string_view expr) {
  Result<CronSchedule> s = ParseCron(expr);
  if (s.ok()) return "ok";
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << expr;
  return s.status().message();
}

// Every minute: the next one strictly after a time, with its seconds dropped; a time exactly
// on a minute gives the minute after it.
TEST(CronFieldTest, StarIsEveryMinute) {
  EXPECT_EQ(NextAfter("* * * * *", At(2026, 3, 1, 10, 0, 30)), "2026-03-01 10:01");
  EXPECT_EQ(NextAfter("* * * * *", At(2026, 3, 1, 10, 0, 0)), "2026-03-01 10:01");
  EXPECT_EQ(NextAfter("* * * * *", At(2026, 3, 1, 23, 59, 59)), "2026-03-02 00:00");
  EXPECT_EQ(NextAfter("* * * * *", At(2026, 3, 1, 10, 0) - std::chrono::nanoseconds(1)),
            "2026-03-01 10:00");
}

// Plain numbers in each field pin that field.
TEST(CronFieldTest, Numbers) {
  EXPECT_EQ(NextAfter("30 4 * * *", At(2026, 1, 1, 5, 0)), "2026-01-02 04:30");
  EXPECT_EQ(NextAfter("30 4 * * *", At(2026, 1, 1, 4, 29)), "2026-01-01 04:30");
  EXPECT_EQ(NextAfter("0 0 15 * *", At(2026, 1, 20)), "2026-02-15 00:00");
  EXPECT_EQ(NextAfter("0 0 1 6 *", At(2026, 1, 1)), "2026-06-01 00:00");
  // 2026-01-01 is a Thursday; 3 is Wednesday.
  EXPECT_EQ(NextAfter("0 0 * * 3", At(2026, 1, 1)), "2026-01-07 00:00");
  // Leading zeros are numbers too.
  EXPECT_EQ(NextAfter("05 07 * * *", At(2026, 1, 1)), "2026-01-01 07:05");
}

// Ranges include both ends; past the end the next day starts again at the first.
TEST(CronFieldTest, Ranges) {
  EXPECT_EQ(Runs("0 9-11 * * *", At(2026, 1, 1, 9, 0), 4),
            (std::vector<std::string>{"2026-01-01 10:00", "2026-01-01 11:00", "2026-01-02 09:00",
                                      "2026-01-02 10:00"}));
  EXPECT_EQ(Runs("58-59 * * * *", At(2026, 1, 1), 3),
            (std::vector<std::string>{"2026-01-01 00:58", "2026-01-01 00:59", "2026-01-01 01:58"}));
  EXPECT_EQ(NextAfter("0 0 * 11-12 *", At(2026, 1, 1)), "2026-11-01 00:00");
}

// Lists mix numbers and ranges, in any order.
TEST(CronFieldTest, Lists) {
  EXPECT_EQ(Runs("35,5 * * * *", At(2026, 1, 1, 10, 0), 3),
            (std::vector<std::string>{"2026-01-01 10:05", "2026-01-01 10:35", "2026-01-01 11:05"}));
  EXPECT_EQ(Runs("0 1,20-21 * * *", At(2026, 1, 1, 2, 0), 3),
            (std::vector<std::string>{"2026-01-01 20:00", "2026-01-01 21:00", "2026-01-02 01:00"}));
}

// Steps count from the start of the range and start over in the next hour (or day...).
TEST(CronFieldTest, Steps) {
  EXPECT_EQ(Runs("*/15 * * * *", At(2026, 1, 1, 10, 1), 4),
            (std::vector<std::string>{"2026-01-01 10:15", "2026-01-01 10:30", "2026-01-01 10:45",
                                      "2026-01-01 11:00"}));
  EXPECT_EQ(Runs("10-50/20 * * * *", At(2026, 1, 1, 10, 40), 3),
            (std::vector<std::string>{"2026-01-01 10:50", "2026-01-01 11:10", "2026-01-01 11:30"}));
  // 56 is the last multiple of 7 below 60: the next is 00 of the next hour, not 03.
  EXPECT_EQ(NextAfter("*/7 * * * *", At(2026, 1, 1, 10, 56)), "2026-01-01 11:00");
  EXPECT_EQ(NextAfter("0 */6 * * *", At(2026, 1, 1, 18, 0)), "2026-01-02 00:00");
  // Day-of-month steps start at 1: 1, 11, 21, 31.
  EXPECT_EQ(Runs("0 0 */10 * *", At(2026, 1, 1), 4),
            (std::vector<std::string>{"2026-01-11 00:00", "2026-01-21 00:00", "2026-01-31 00:00",
                                      "2026-02-01 00:00"}));
  // Month steps start at 1: Jan, Apr, Jul, Oct.
  EXPECT_EQ(NextAfter("0 0 1 */3 *", At(2026, 1, 2)), "2026-04-01 00:00");
}

// Month and day names, three letters in any case, also as range ends and in lists.
TEST(CronFieldTest, Names) {
  EXPECT_EQ(NextAfter("0 0 1 jul *", At(2026, 1, 1)), "2026-07-01 00:00");
  EXPECT_EQ(NextAfter("0 0 1 JAN,Jul *", At(2026, 2, 1)), "2026-07-01 00:00");
  EXPECT_EQ(NextAfter("0 0 1 oct-dec *", At(2026, 1, 1)), "2026-10-01 00:00");
  EXPECT_EQ(NextAfter("0 0 1 feb-apr/2 *", At(2026, 3, 1)), "2026-04-01 00:00");
  // 2026-01-02 is a Friday: the next weekday is Monday the 5th.
  EXPECT_EQ(NextAfter("0 12 * * Mon-Fri", At(2026, 1, 2, 13, 0)), "2026-01-05 12:00");
  EXPECT_EQ(NextAfter("0 12 * * sAt", At(2026, 1, 1)), "2026-01-03 12:00");
  EXPECT_EQ(NextAfter("0 12 * * sun,wed", At(2026, 1, 1)), "2026-01-04 12:00");
}

// Day-of-week 7 is Sunday, as 0 is, alone and as a range end.
TEST(CronFieldTest, SevenIsSunday) {
  // 2026-01-04 is a Sunday.
  EXPECT_EQ(NextAfter("0 0 * * 7", At(2026, 1, 1)), "2026-01-04 00:00");
  EXPECT_EQ(NextAfter("0 0 * * 0", At(2026, 1, 1)), "2026-01-04 00:00");
  EXPECT_EQ(Runs("0 0 * * 5-7", At(2026, 1, 1), 4),
            (std::vector<std::string>{"2026-01-02 00:00", "2026-01-03 00:00", "2026-01-04 00:00",
                                      "2026-01-09 00:00"}));
  EXPECT_EQ(NextAfter("0 0 * * */7", At(2026, 1, 1)), "2026-01-04 00:00");
}

// Blanks between and around fields are tabs or any number of spaces; text() keeps the
// expression without the outer ones.
TEST(CronFieldTest, Blanks) {
  const CronSchedule s = Parse("  0\t12  *  * \t mon ");
  EXPECT_EQ(s.text(), "0\t12  *  * \t mon");
  EXPECT_EQ(Text(*s.Next(At(2026, 1, 1))), "2026-01-05 12:00");
}

// Both day fields restricted: a day matches if either matches (crontab(5)). One of them `*`:
// only the other decides.
TEST(CronDayRuleTest, EitherDayFieldWhenBothRestricted) {
  const CronSchedule both = Parse("0 0 13 * fri");
  EXPECT_TRUE(both.Matches(At(2026, 1, 13)));   // Tuesday the 13th
  EXPECT_TRUE(both.Matches(At(2026, 1, 16)));   // Friday the 16th
  EXPECT_FALSE(both.Matches(At(2026, 1, 14)));  // Wednesday the 14th
  EXPECT_EQ(Runs("0 0 13 * fri", At(2026, 1, 1), 4),
            (std::vector<std::string>{"2026-01-02 00:00", "2026-01-09 00:00", "2026-01-13 00:00",
                                      "2026-01-16 00:00"}));

  const CronSchedule by_day = Parse("0 0 13 * *");
  EXPECT_TRUE(by_day.Matches(At(2026, 1, 13)));
  EXPECT_FALSE(by_day.Matches(At(2026, 1, 16)));
  const CronSchedule by_weekday = Parse("0 0 * * fri");
  EXPECT_FALSE(by_weekday.Matches(At(2026, 1, 13)));
  EXPECT_TRUE(by_weekday.Matches(At(2026, 1, 16)));
}

// As in cronie, a field whose text starts with '*' counts as unrestricted for the day rule
// even with a step: "*/2" on day-of-month with a weekday means odd days that are that weekday.
TEST(CronDayRuleTest, StarWithStepMakesBothRequired) {
  const CronSchedule s = Parse("0 0 */2 * mon");
  EXPECT_TRUE(s.Matches(At(2026, 1, 5)));    // Monday the 5th
  EXPECT_FALSE(s.Matches(At(2026, 1, 12)));  // Monday the 12th: even
  EXPECT_FALSE(s.Matches(At(2026, 1, 7)));   // Wednesday the 7th: not Monday
  // The same with a range that happens to be full: restricted, so either.
  const CronSchedule full = Parse("0 0 1-31 * mon");
  EXPECT_TRUE(full.Matches(At(2026, 1, 7)));
}

// Matches looks at the minute a time falls in, in UTC.
TEST(CronDayRuleTest, MatchesIgnoresSeconds) {
  const CronSchedule s = Parse("30 14 * * *");
  EXPECT_TRUE(s.Matches(At(2026, 5, 5, 14, 30, 59)));
  EXPECT_FALSE(s.Matches(At(2026, 5, 5, 14, 31, 0)));
  EXPECT_FALSE(s.Matches(At(2026, 5, 5, 15, 30, 0)));
}

// Each macro reads as the five fields Vixie cron expands it to; case does not matter.
TEST(CronMacroTest, Macros) {
  const TimePoint t = At(2026, 1, 1, 10, 30);  // a Thursday
  EXPECT_EQ(NextAfter("@hourly", t), "2026-01-01 11:00");
  EXPECT_EQ(NextAfter("@daily", t), "2026-01-02 00:00");
  EXPECT_EQ(NextAfter("@midnight", t), "2026-01-02 00:00");
  EXPECT_EQ(NextAfter("@weekly", t), "2026-01-04 00:00");
  EXPECT_EQ(NextAfter("@monthly", t), "2026-02-01 00:00");
  EXPECT_EQ(NextAfter("@yearly", t), "2027-01-01 00:00");
  EXPECT_EQ(NextAfter("@annually", t), "2027-01-01 00:00");
  EXPECT_EQ(NextAfter(" @Daily ", t), "2026-01-02 00:00");
  EXPECT_EQ(Parse("@weekly").text(), "@weekly");
}

// Months of 30 days and February are skipped for the 31st; December rolls into January.
TEST(CronRolloverTest, MonthAndYear) {
  EXPECT_EQ(Runs("0 0 31 * *", At(2026, 1, 31), 3),
            (std::vector<std::string>{"2026-03-31 00:00", "2026-05-31 00:00", "2026-07-31 00:00"}));
  EXPECT_EQ(NextAfter("59 23 31 12 *", At(2026, 12, 31, 23, 59)), "2027-12-31 23:59");
  EXPECT_EQ(NextAfter("0 0 1 * *", At(2026, 12, 15)), "2027-01-01 00:00");
  EXPECT_EQ(NextAfter("0 0 * 1 *", At(2026, 2, 1)), "2027-01-01 00:00");
  EXPECT_EQ(NextAfter("* * * * *", At(2026, 12, 31, 23, 59, 30)), "2027-01-01 00:00");
}

// February 29th comes in leap years only, and 2100 is not one.
TEST(CronRolloverTest, LeapDay) {
  EXPECT_EQ(NextAfter("0 0 29 2 *", At(2026, 3, 1)), "2028-02-29 00:00");
  EXPECT_EQ(NextAfter("0 0 29 2 *", At(2096, 3, 1)), "2104-02-29 00:00");
  // With a weekday as well, either: the next Monday in February comes first.
  EXPECT_EQ(NextAfter("0 0 29 2 mon", At(2026, 3, 1)), "2027-02-01 00:00");
}

// An expression no day ever satisfies returns an error at once rather than searching forever,
// and is never due.
TEST(CronRolloverTest, NeverMatches) {
  for (const char* expr : {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 feb *"}) {
    EXPECT_EQ(NextAfter(expr, At(2026, 1, 1)),
              std::string("next run of schedule \"") + expr +
                  "\": it never matches (none of its months has any of its days of the month)");
    EXPECT_EQ(DueRun(Parse(expr), std::nullopt, At(2000, 1, 1), At(2026, 1, 1)), std::nullopt);
  }
  // But a weekday ORed in always matches somewhere.
  EXPECT_EQ(NextAfter("0 0 30 2 sun", At(2026, 1, 1)), "2026-02-01 00:00");
}

// Near the end of what TimePoint holds (2262), the next minute is an error, not a wrapped time.
TEST(CronRolloverTest, EndOfTime) {
  Result<TimePoint> next = Parse("* * * * *").Next(TimePoint::max());
  ASSERT_FALSE(next.ok());
  EXPECT_NE(next.status().message().find("the last time this program can hold"), std::string::npos)
      << next.status().message();
  EXPECT_TRUE(Parse("* * * * *").Next(TimePoint::min()).ok());
  EXPECT_FALSE(Parse("0 0 1 1 *").Next(At(2262, 1, 1)).ok());
}

// Next and Last agree with a minute-by-minute walk over Matches, from starts spread over two
// years.
TEST(CronRolloverTest, AgreesWithMinuteWalk) {
  // Schedules whose slots are at most weeks apart, to keep the walk short.
  for (const char* expr : {"*/13 3-5 * * *", "0 0 13 * fri", "15 10 */2 * mon", "0 12 1,15 * *",
                           "45 23 * * 2", "0 0 31 * *", "@weekly", "0 */5 * * sat,sun"}) {
    const CronSchedule s = Parse(expr);
    for (int i = 0; i < 12; ++i) {
      const TimePoint start = At(2027, 1, 1) + hours(1459 * i) + minutes(17 * i) + seconds(i);
      Result<TimePoint> next = s.Next(start);
      ASSERT_TRUE(next.ok()) << expr;
      TimePoint walk = std::chrono::floor<minutes>(start) + minutes(1);
      while (walk < *next && !s.Matches(walk)) walk += minutes(1);
      EXPECT_EQ(Text(walk), Text(*next)) << expr << " after " << Text(start);
      EXPECT_TRUE(s.Matches(*next)) << expr;
      // The same slot seen backwards from it, and nothing between `start` and just before it.
      EXPECT_EQ(s.Last(*next + seconds(30), start), *next) << expr;
      EXPECT_EQ(s.Last(*next - seconds(1), start), std::nullopt) << expr;
    }
  }
}

// Each kind of bad input gets one line naming the field and the rule, with the expression.
TEST(CronParseErrorTest, Messages) {
  struct Case {
    const char* expr;
    const char* cause;
  };
  const Case cases[] = {
      {"", "expected 5 fields, got 0"},
      {"* * * *", "expected 5 fields, got 4"},
      {"* * * * * *", "expected 5 fields, got 6"},
      {"61 * * * *", "minute 61 is out of range 0-59"},
      {"99999999999999999999 * * * *", "minute 99999999999999999999 is out of range 0-59"},
      {"* 24 * * *", "hour 24 is out of range 0-23"},
      {"* * 0 * *", "day-of-month 0 is out of range 1-31"},
      {"* * 32 * *", "day-of-month 32 is out of range 1-31"},
      {"* * * 13 *", "month 13 is out of range 1-12"},
      {"* * * 0 *", "month 0 is out of range 1-12"},
      {"* * * * 8", "day-of-week 8 is out of range 0-7"},
      {"1-60 * * * *", "minute 60 is out of range 0-59"},
      {"*/0 * * * *", "minute step 0 is out of range 1-59"},
      {"0-30/0 * * * *", "minute step 0 is out of range 1-59"},
      {"*/90 * * * *", "minute step 90 is out of range 1-59"},
      {"*/x * * * *", "minute step \"x\" is not a number"},
      {"*/ * * * *", "minute step \"\" is not a number"},
      {"5/15 * * * *", "minute step needs a range or *: \"5/15\" (did you mean 5-59/15?)"},
      {"* 22-2 * * *",
       "hour range \"22-2\" is reversed (ranges do not wrap around: write 22-23,0-2)"},
      {"* * * * fri-mon",
       "day-of-week range \"fri-mon\" is reversed (ranges do not wrap around: write 5-7,0-1)"},
      {"* 5-2/2 * * *", "hour range \"5-2\" is reversed"},
      {"x * * * *", "minute \"x\" is not a number"},
      {"1.5 * * * *", "minute \"1.5\" is not a number"},
      {"* * * * mon-", "day-of-week \"mon-\" is missing a number"},
      {"-5 * * * *", "minute \"-5\" is missing a number"},
      {"1-2-3 * * * *", "minute \"2-3\" is not a number"},
      {"jan * * * *", "minute \"jan\" is not a number"},
      {"* * * foo *", "month \"foo\" is not a number or a month name (jan-dec)"},
      {"* * * * monday", "day-of-week \"monday\" is not a number or a day name (sun-sat)"},
      {"* * * * */mon", "day-of-week step \"mon\" is not a number"},
      {"1,,2 * * * *", "minute list has an empty item"},
      {"1, * * * *", "minute list has an empty item"},
      {"@reboot",
       "unknown macro \"@reboot\" (there are @hourly, @daily, @midnight, @weekly, @monthly, "
       "@yearly and @annually)"},
      {"@daily 5", "@daily takes no other fields"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ParseError(c.expr), std::string("parse schedule \"") + c.expr + "\": " + c.cause);
  }
}

// Control characters in a bad expression are escaped in the message, which stays one line.
TEST(CronParseErrorTest, EscapesControlCharacters) {
  const std::string message = ParseError("* * * * \x1b[31mred\n");
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_NE(message.find("day-of-week"), std::string::npos) << message;
}

// Up to kMaxCronLength bytes are read; one more is refused before parsing, with the start of
// the expression only.
TEST(CronParseErrorTest, TooLong) {
  std::string longest = "* * * * *";
  longest.resize(kMaxCronLength, ' ');
  EXPECT_EQ(ParseError(longest), "ok");
  const std::string too_long = longest + " ";
  EXPECT_EQ(ParseError(too_long),
            "parse schedule \"* * * * *                       ...\": 257 "
            "bytes is too long (at most 256)");
  EXPECT_EQ(
      ParseError(std::string(100000, '1')),
      "parse schedule \"" + std::string(32, '1') + "...\": 100000 bytes is too long (at most 256)");
}

// Given a job that ran at its last slot, it is not due again before the next one.
TEST(CronDueRunTest, NoMissedSlot) {
  const CronSchedule s = Parse("0 * * * *");
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 10, 0), At(2025, 1, 1), At(2026, 1, 1, 10, 30)), std::nullopt);
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 10, 0), At(2025, 1, 1), At(2026, 1, 1, 10, 59, 59)),
            std::nullopt);
}

// One slot passed since the last run: that slot is due, from the very second it starts.
TEST(CronDueRunTest, OneSlot) {
  const CronSchedule s = Parse("0 * * * *");
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 10, 0), At(2025, 1, 1), At(2026, 1, 1, 11, 0)),
            At(2026, 1, 1, 11, 0));
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 10, 0), At(2025, 1, 1), At(2026, 1, 1, 11, 0, 5)),
            At(2026, 1, 1, 11, 0));
  // A last run recorded with its seconds (10:00:07) still covers only the 10:00 slot.
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 10, 0, 7), At(2025, 1, 1), At(2026, 1, 1, 11, 0, 5)),
            At(2026, 1, 1, 11, 0));
}

// After downtime across many slots the job is due once, for the latest slot only; once that
// is recorded, nothing is due until the next slot.
TEST(CronDueRunTest, ManyMissedSlotsRunOnce) {
  const CronSchedule s = Parse("0 * * * *");
  const std::optional<TimePoint> due =
      DueRun(s, At(2026, 1, 2, 10, 0), At(2025, 1, 1), At(2026, 1, 5, 7, 30));
  EXPECT_EQ(due, At(2026, 1, 5, 7, 0));
  EXPECT_EQ(DueRun(s, due, At(2025, 1, 1), At(2026, 1, 5, 7, 45)), std::nullopt);
  EXPECT_EQ(DueRun(s, due, At(2025, 1, 1), At(2026, 1, 5, 8, 0)), At(2026, 1, 5, 8, 0));
  // Twenty years of every-minute slots missed: still one run, found without walking them.
  EXPECT_EQ(DueRun(Parse("* * * * *"), At(2006, 1, 1), At(2005, 1, 1), At(2026, 1, 1, 9, 9, 9)),
            At(2026, 1, 1, 9, 9));
}

// A job that never ran counts from when its schedule was created: slots before that are not
// due.
TEST(CronDueRunTest, NeverRanCountsFromCreation) {
  const CronSchedule s = Parse("0 * * * *");
  EXPECT_EQ(DueRun(s, std::nullopt, At(2026, 1, 1, 10, 20), At(2026, 1, 1, 10, 50)), std::nullopt);
  EXPECT_EQ(DueRun(s, std::nullopt, At(2026, 1, 1, 10, 20), At(2026, 1, 1, 11, 0)),
            At(2026, 1, 1, 11, 0));
  // Created exactly on a slot: that slot was not after the creation.
  EXPECT_EQ(DueRun(s, std::nullopt, At(2026, 1, 1, 11, 0), At(2026, 1, 1, 11, 30)), std::nullopt);
}

// A last run later than now (the clock went back) makes nothing due, however many slots lie
// before now.
TEST(CronDueRunTest, LastRunInTheFuture) {
  const CronSchedule s = Parse("* * * * *");
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 12, 0), At(2025, 1, 1), At(2026, 1, 1, 11, 30)), std::nullopt);
  EXPECT_EQ(DueRun(s, At(2026, 1, 1, 12, 0), At(2025, 1, 1), At(2026, 1, 1, 12, 0)), std::nullopt);
}

// Slots far apart: the latest slot is found across years of unmatched days.
TEST(CronDueRunTest, SparseSchedule) {
  EXPECT_EQ(DueRun(Parse("0 0 29 2 *"), At(2020, 3, 1), At(2019, 1, 1), At(2026, 6, 1)),
            At(2024, 2, 29));
  EXPECT_EQ(DueRun(Parse("0 0 29 2 *"), At(2024, 2, 29), At(2019, 1, 1), At(2026, 6, 1)),
            std::nullopt);
}

}  // namespace
}  // namespace pgb
