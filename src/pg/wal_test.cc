#include "pg/wal.h"

#include <date/date.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>

namespace pgb {
namespace {

using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::minutes;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// A UTC moment built from calendar fields, independent of the code under test's parsing.
TimePoint Utc(int y, unsigned mo, unsigned d, int h, int mi, int s, int64_t us = 0) {
  return TimePoint(date::sys_days(date::year(y) / mo / d) + hours(h) + minutes(mi) + seconds(s) +
                   microseconds(us));
}

// ---------------------------------------------------------------------------------------------
// LSNs

// Well-formed LSNs parse to hi << 32 | lo and format back as PostgreSQL writes them.
TEST(WalLsnTest, ParsesAndFormats) {
  struct Case {
    const char* text;
    uint64_t value;
    const char* formatted;
  };
  const Case cases[] = {
      {"0/3000060", 0x3000060, "0/3000060"},
      {"16/B374D848", 0x16B374D848, "16/B374D848"},
      {"16/b374d848", 0x16B374D848, "16/B374D848"},
      {"0/0", 0, "0/0"},
      {"00000000/00000001", 1, "0/1"},
      {"1/0", uint64_t{1} << 32, "1/0"},
      {"FFFFFFFF/FFFFFFFF", std::numeric_limits<uint64_t>::max(), "FFFFFFFF/FFFFFFFF"},
  };
  for (const Case& c : cases) {
    Result<uint64_t> lsn = ParseLsn(c.text);
    ASSERT_TRUE(lsn.ok()) << c.text << ": " << lsn.status().ToString();
    EXPECT_EQ(*lsn, c.value) << c.text;
    EXPECT_EQ(FormatLsn(*lsn), c.formatted) << c.text;
    EXPECT_EQ(ParseLsn(FormatLsn(c.value)).value(), c.value) << c.text;
  }
}

// Anything but two 1-8 digit hex halves around one '/' is InvalidArgument naming the text.
TEST(WalLsnTest, RejectsMalformed) {
  for (const char* text :
       {"", "0", "0/", "/0", "/", "x/1", "1/x", "1/123456789", "123456789/1", " 0/1", "0/1 ",
        "0/1/2", "-1/0", "+1/0", "0x1/0", "1:0", "0/ 1", "g/0"}) {
    Result<uint64_t> lsn = ParseLsn(text);
    ASSERT_FALSE(lsn.ok()) << '"' << text << '"';
    EXPECT_EQ(lsn.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(lsn.status().message().find(std::string("\"") + text + "\""), std::string::npos)
        << lsn.status().message();
  }
}

// ---------------------------------------------------------------------------------------------
// Segment file names

TEST(WalSegmentTest, ValidSizesArePowersOfTwoFromOneMiBToOneGiB) {
  EXPECT_TRUE(IsValidWalSegmentSize(kDefaultWalSegmentSize));
  EXPECT_EQ(kDefaultWalSegmentSize, 16 * kMiB);
  EXPECT_TRUE(IsValidWalSegmentSize(kMiB));
  EXPECT_TRUE(IsValidWalSegmentSize(kGiB));
  EXPECT_FALSE(IsValidWalSegmentSize(0));
  EXPECT_FALSE(IsValidWalSegmentSize(kMiB / 2));
  EXPECT_FALSE(IsValidWalSegmentSize(2 * kGiB));
  EXPECT_FALSE(IsValidWalSegmentSize(3 * kMiB));
}

// At 16 MiB an xlogid holds 256 segments: lsn 0/3000060 is segment 3 and 1/0 is segment 256,
// which is named with xlogid 1, low part 0.
TEST(WalSegmentTest, NamesAtSixteenMiB) {
  const uint64_t size = kDefaultWalSegmentSize;
  EXPECT_EQ(WalSegmentOf(ParseLsn("0/3000060").value(), size), 3u);
  EXPECT_EQ(WalFileName(1, 3, size), "000000010000000000000003");
  EXPECT_EQ(WalSegmentOf(ParseLsn("1/0").value(), size), 256u);
  EXPECT_EQ(WalFileName(1, 256, size), "000000010000000100000000");
  EXPECT_EQ(WalSegmentOf(ParseLsn("0/FFFFFFF").value(), size), 15u);
  EXPECT_EQ(WalFileName(0x1A, 0x16B3, size), "0000001A00000016000000B3");
  EXPECT_EQ(WalSegmentOf(std::numeric_limits<uint64_t>::max(), size), (uint64_t{1} << 40) - 1);
  EXPECT_EQ(WalFileName(0xFFFFFFFF, (uint64_t{1} << 40) - 1, size), "FFFFFFFFFFFFFFFF000000FF");

  for (uint64_t segno : {uint64_t{0}, uint64_t{3}, uint64_t{255}, uint64_t{256}, uint64_t{0x16B3},
                         (uint64_t{1} << 40) - 1}) {
    std::optional<WalFileId> id = ParseWalFileName(WalFileName(7, segno, size), size);
    ASSERT_TRUE(id.has_value()) << segno;
    EXPECT_EQ(*id, (WalFileId{7, segno}));
  }
  EXPECT_EQ(ParseWalFileName("000000010000000100000000", size), (WalFileId{1, 256}));
}

// At 1 GiB an xlogid holds only 4 segments, so the same names mean other segment numbers
// and a low part of 4 or more is no segment at all.
TEST(WalSegmentTest, NamesAtOneGiB) {
  const uint64_t size = kGiB;
  EXPECT_EQ(WalSegmentOf(ParseLsn("0/3000060").value(), size), 0u);
  EXPECT_EQ(WalSegmentOf(ParseLsn("0/C0000000").value(), size), 3u);
  EXPECT_EQ(WalFileName(1, 3, size), "000000010000000000000003");
  EXPECT_EQ(WalSegmentOf(ParseLsn("1/0").value(), size), 4u);
  EXPECT_EQ(WalFileName(1, 4, size), "000000010000000100000000");
  EXPECT_EQ(WalFileName(2, 4 * 0x16 + 2, size), "000000020000001600000002");
  EXPECT_EQ(ParseWalFileName("000000010000000100000000", size), (WalFileId{1, 4}));
  EXPECT_EQ(ParseWalFileName("000000020000001600000002", size), (WalFileId{2, 4 * 0x16 + 2}));
  EXPECT_EQ(ParseWalFileName("000000010000000000000004", size), std::nullopt);
  EXPECT_EQ(ParseWalFileName("000000010000000000000004", kDefaultWalSegmentSize),
            (WalFileId{1, 4}));
}

// Only exactly 24 upper-case hex digits with a non-zero timeline name a segment.
TEST(WalSegmentTest, RejectsNonSegments) {
  const uint64_t size = kDefaultWalSegmentSize;
  for (const char* name : {"00000002.history", "000000010000000000000003.partial",
                           "000000010000000000000002.00000028.backup", "00000001000000000000000a",
                           "00000001000000000000003", "0000000100000000000000030",
                           "000000000000000000000003", "archtemp.000000010000000000000003", "",
                           "README", "00000001000000000000000G", " 00000001000000000000003"}) {
    EXPECT_EQ(ParseWalFileName(name, size), std::nullopt) << name;
  }
  EXPECT_EQ(ParseWalFileName("000000010000000000000003", 0), std::nullopt);
}

TEST(WalSegmentTest, TimelineHistoryFileNames) {
  EXPECT_TRUE(IsTimelineHistoryFileName("00000002.history"));
  EXPECT_TRUE(IsTimelineHistoryFileName("0000001A.history"));
  EXPECT_FALSE(IsTimelineHistoryFileName("0000001a.history"));
  EXPECT_FALSE(IsTimelineHistoryFileName("2.history"));
  EXPECT_FALSE(IsTimelineHistoryFileName("00000002.history.tmp"));
  EXPECT_FALSE(IsTimelineHistoryFileName("00000002.histor"));
  EXPECT_FALSE(IsTimelineHistoryFileName("000000020000000000000001"));
  EXPECT_FALSE(IsTimelineHistoryFileName(""));
}

// ---------------------------------------------------------------------------------------------
// Recovery targets

// Expects `text` to parse as a time target at exactly `want`.
void ExpectTime(const std::string& text, TimePoint now, TimePoint want) {
  Result<RecoveryTarget> target = ParseRecoveryTarget(text, now);
  ASSERT_TRUE(target.ok()) << text << ": " << target.status().ToString();
  EXPECT_EQ(target->kind, RecoveryTarget::Kind::kTime) << text;
  EXPECT_EQ(target->time, want) << text << " parsed as " << FormatRecoveryTargetTime(target->time)
                                << ", want " << FormatRecoveryTargetTime(want);
  EXPECT_EQ(target->text, text);
}

const TimePoint kNow = Utc(2026, 11, 21, 14, 30, 0);

// ISO 8601 timestamps: 'Z', numeric offsets (applied: 14:30+01:00 is 13:30 UTC) or none
// (UTC), 'T' or a space, fractions to the microsecond.
TEST(WalRecoveryTargetTest, Timestamps) {
  ExpectTime("2026-11-21T14:30:00Z", kNow, Utc(2026, 11, 21, 14, 30, 0));
  ExpectTime("2026-11-21 14:30:00Z", kNow, Utc(2026, 11, 21, 14, 30, 0));
  ExpectTime("2026-11-21T14:30:00", kNow, Utc(2026, 11, 21, 14, 30, 0));
  ExpectTime("2026-11-21 14:30:00", kNow, Utc(2026, 11, 21, 14, 30, 0));
  ExpectTime("2026-11-21 14:30:00.123456+01:00", kNow, Utc(2026, 11, 21, 13, 30, 0, 123456));
  ExpectTime("2026-11-21T14:30:00+0100", kNow, Utc(2026, 11, 21, 13, 30, 0));
  ExpectTime("2026-11-21T14:30:00+01", kNow, Utc(2026, 11, 21, 13, 30, 0));
  ExpectTime("2026-11-21T14:30:00-05:00", kNow, Utc(2026, 11, 21, 19, 30, 0));
  ExpectTime("2026-11-21T23:30:00-05:00", kNow, Utc(2026, 11, 22, 4, 30, 0));
  ExpectTime("2026-11-21T14:30:00+05:30", kNow, Utc(2026, 11, 21, 9, 0, 0));
  ExpectTime("2026-11-21T14:30:00.5Z", kNow, Utc(2026, 11, 21, 14, 30, 0, 500000));
  ExpectTime("2026-11-21T14:30:00.000001Z", kNow, Utc(2026, 11, 21, 14, 30, 0, 1));
  ExpectTime("2024-02-29T00:00:00Z", kNow, Utc(2024, 2, 29, 0, 0, 0));
  // "now" plays no part in an absolute time.
  ExpectTime("2026-11-21T14:30:00Z", Utc(2000, 1, 1, 0, 0, 0), Utc(2026, 11, 21, 14, 30, 0));
}

// "N unit(s) ago" is now minus N units, for every unit spelling.
TEST(WalRecoveryTargetTest, RelativeTimes) {
  ExpectTime("2 hours ago", kNow, kNow - hours(2));
  ExpectTime("1 hour ago", kNow, kNow - hours(1));
  ExpectTime("90 minutes ago", kNow, kNow - minutes(90));
  ExpectTime("1 minute ago", kNow, kNow - minutes(1));
  ExpectTime("5 mins ago", kNow, kNow - minutes(5));
  ExpectTime("1 min ago", kNow, kNow - minutes(1));
  ExpectTime("30 seconds ago", kNow, kNow - seconds(30));
  ExpectTime("1 second ago", kNow, kNow - seconds(1));
  ExpectTime("45 secs ago", kNow, kNow - seconds(45));
  ExpectTime("1 sec ago", kNow, kNow - seconds(1));
  ExpectTime("1 day ago", kNow, Utc(2026, 11, 20, 14, 30, 0));
  ExpectTime("3 days ago", kNow, Utc(2026, 11, 18, 14, 30, 0));
  ExpectTime("1 week ago", kNow, Utc(2026, 11, 14, 14, 30, 0));
  ExpectTime("2 weeks ago", kNow, Utc(2026, 11, 7, 14, 30, 0));
  ExpectTime("2 Hours AGO", kNow, kNow - hours(2));
  ExpectTime("007 hours ago", kNow, kNow - hours(7));
  // A "now" with nanoseconds is floored to PostgreSQL's microseconds.
  ExpectTime("1 second ago", kNow + nanoseconds(123456789), Utc(2026, 11, 21, 14, 29, 59, 123456));
}

TEST(WalRecoveryTargetTest, Lsn) {
  Result<RecoveryTarget> target = ParseRecoveryTarget("16/B374D848", kNow);
  ASSERT_TRUE(target.ok()) << target.status().ToString();
  EXPECT_EQ(target->kind, RecoveryTarget::Kind::kLsn);
  EXPECT_EQ(target->lsn, 0x16B374D848u);
  EXPECT_EQ(target->text, "16/B374D848");
  target = ParseRecoveryTarget("0/3000060", kNow);
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(target->lsn, 0x3000060u);
}

// Anything else is InvalidArgument naming the text and the three accepted forms.
TEST(WalRecoveryTargetTest, RejectsOtherText) {
  for (const char* text : {"",
                           "yesterday",
                           "now",
                           "2026-13-01T00:00:00Z",
                           "2026-02-30T00:00:00Z",
                           "2026-11-21T25:00:00Z",
                           "2026-11-21T14:30:00Zjunk",
                           "2026-11-21T14:30:00.1234567Z",
                           "2026-11-2114:30:00",
                           "2026-11-21  14:30:00",
                           "2026-11-21\t14:30:00",
                           " 2026-11-21T14:30:00Z",
                           "2026-11-21T14:30:00Z ",
                           "2026-11-21T14:30:00z",
                           "2026-11-21T14:30:00+01:00:00",
                           "5 fortnights ago",
                           "-3 hours ago",
                           "+3 hours ago",
                           "0 hours ago",
                           "2 hours",
                           "2  hours ago",
                           "two hours ago",
                           "2 hours ago now",
                           "2 hours from now",
                           "2.5 hours ago",
                           "2hours ago",
                           "0/",
                           "x/1",
                           "1/123456789",
                           "2 hours ago\n"}) {
    Result<RecoveryTarget> target = ParseRecoveryTarget(text, kNow);
    ASSERT_FALSE(target.ok()) << '"' << text << '"';
    EXPECT_EQ(target.status().code(), StatusCode::kInvalidArgument) << text;
    const std::string message = target.status().message();
    EXPECT_NE(message.find(std::string("\"") + text + "\""), std::string::npos) << message;
    EXPECT_NE(message.find("2026-11-21T14:30:00Z"), std::string::npos) << message;
    EXPECT_NE(message.find("2 hours ago"), std::string::npos) << message;
    EXPECT_NE(message.find("0/3000060"), std::string::npos) << message;
  }
}

// Well-formed times that TimePoint (nanoseconds since 1970 in 64 bits) cannot hold are
// rejected rather than wrapped.
TEST(WalRecoveryTargetTest, RejectsOutOfRange) {
  for (const char* text : {"9999-01-01T00:00:00Z", "1000-01-01 00:00:00", "100000 weeks ago",
                           "99999999999999999999 days ago", "999999999999 seconds ago"}) {
    Result<RecoveryTarget> target = ParseRecoveryTarget(text, kNow);
    ASSERT_FALSE(target.ok()) << text;
    EXPECT_EQ(target.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(target.status().message().find(text), std::string::npos) << target.status().message();
  }
}

// recovery_target_time text: UTC, six fractional digits, "+00"; ParseRecoveryTarget reads
// it back to the same microsecond.
TEST(WalRecoveryTargetTest, FormatsTargetTime) {
  EXPECT_EQ(FormatRecoveryTargetTime(Utc(2026, 11, 21, 14, 30, 0, 123456)),
            "2026-11-21 14:30:00.123456+00");
  EXPECT_EQ(FormatRecoveryTargetTime(Utc(2026, 11, 21, 14, 30, 0)),
            "2026-11-21 14:30:00.000000+00");
  EXPECT_EQ(FormatRecoveryTargetTime(Utc(2026, 11, 21, 14, 30, 0, 123456) + nanoseconds(999)),
            "2026-11-21 14:30:00.123456+00");
  EXPECT_EQ(FormatRecoveryTargetTime(Utc(1970, 1, 1, 0, 0, 0) - nanoseconds(1)),
            "1969-12-31 23:59:59.999999+00");

  const TimePoint t = Utc(2026, 11, 21, 14, 30, 0, 654321);
  ExpectTime(FormatRecoveryTargetTime(t), kNow, t);
}

// ---------------------------------------------------------------------------------------------
// Archive listings

class WalArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-wal-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Creates `name` holding `bytes` bytes, modified at `mtime`.
  void Write(const std::string& name, size_t bytes, TimePoint mtime) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << std::string(bytes, 'x');
    const auto ns = std::chrono::duration_cast<nanoseconds>(mtime.time_since_epoch()).count();
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = ns / 1000000000;
    times[0].tv_nsec = times[1].tv_nsec = ns % 1000000000;
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  }

  std::string dir_;
};

// Given an archive with segments of two timelines (one gap), history, partial and backup
// files, an unknown file, temporary files and a subdirectory: segments come out sorted by
// (segno, timeline), the rest sorted by name, temporary files and the directory nowhere, and
// total_bytes counts every listed file.
TEST_F(WalArchiveTest, ListsAndClassifies) {
  const TimePoint t = Utc(2026, 11, 21, 14, 30, 0, 250000);
  Write("000000020000000000000004", 40, t);
  Write("000000010000000000000002", 20, t);
  Write("000000020000000000000002", 21, t);
  Write("000000010000000000000001", 10, t + seconds(1));
  Write("00000002.history", 3, t);
  Write("000000010000000000000003.partial", 30, t);
  Write("000000010000000000000002.00000028.backup", 5, t);
  Write("README", 1, t);
  Write("archtemp.000000020000000000000005.12345.1700000000", 50, t);
  Write("000000020000000000000005.tmp", 50, t);
  ASSERT_EQ(mkdir((dir_ + "/000000020000000000000006").c_str(), 0700), 0);

  Result<ArchiveListing> listing = ListWalArchive(dir_, kDefaultWalSegmentSize);
  ASSERT_TRUE(listing.ok()) << listing.status().ToString();

  std::vector<std::pair<WalFileId, std::string>> segments;
  for (const auto& [id, file] : listing->segments) segments.emplace_back(id, file.name);
  const std::vector<std::pair<WalFileId, std::string>> want_segments = {
      {{1, 1}, "000000010000000000000001"},
      {{1, 2}, "000000010000000000000002"},
      {{2, 2}, "000000020000000000000002"},
      {{2, 4}, "000000020000000000000004"},
  };
  EXPECT_EQ(segments, want_segments);
  ASSERT_EQ(listing->segments.size(), 4u);
  EXPECT_EQ(listing->segments[0].second.bytes, 10u);
  EXPECT_EQ(listing->segments[0].second.mtime, t + seconds(1));
  EXPECT_EQ(listing->segments[3].second.bytes, 40u);
  EXPECT_EQ(listing->segments[3].second.mtime, t);

  std::vector<std::string> others;
  for (const ArchivedFile& file : listing->others) others.push_back(file.name);
  const std::vector<std::string> want_others = {
      "000000010000000000000002.00000028.backup",
      "000000010000000000000003.partial",
      "00000002.history",
      "README",
  };
  EXPECT_EQ(others, want_others);
  EXPECT_EQ(listing->total_bytes, 10u + 20 + 21 + 40 + 3 + 30 + 5 + 1);

  // Segment 3 exists only as a .partial, so it is missing; 5 is only a temporary file.
  EXPECT_EQ(FirstMissingSegment(*listing, 1, 4), 3u);
  EXPECT_EQ(FirstMissingSegment(*listing, 1, 2), std::nullopt);
  EXPECT_EQ(FirstMissingSegment(*listing, 2, 2), std::nullopt);
  EXPECT_EQ(FirstMissingSegment(*listing, 0, 2), 0u);
  EXPECT_EQ(FirstMissingSegment(*listing, 4, 4), std::nullopt);
  EXPECT_EQ(FirstMissingSegment(*listing, 4, 6), 5u);
  EXPECT_EQ(FirstMissingSegment(*listing, 5, 3), std::nullopt);
}

// At 1 GiB the same directory classifies differently: a low part of 4 is not a segment.
TEST_F(WalArchiveTest, ClassifiesBySegmentSize) {
  const TimePoint t = Utc(2026, 11, 21, 14, 30, 0);
  Write("000000010000000000000003", 1, t);
  Write("000000010000000000000004", 1, t);
  Write("000000010000000100000000", 1, t);
  Result<ArchiveListing> listing = ListWalArchive(dir_, kGiB);
  ASSERT_TRUE(listing.ok()) << listing.status().ToString();
  ASSERT_EQ(listing->segments.size(), 2u);
  EXPECT_EQ(listing->segments[0].first, (WalFileId{1, 3}));
  EXPECT_EQ(listing->segments[1].first, (WalFileId{1, 4}));
  ASSERT_EQ(listing->others.size(), 1u);
  EXPECT_EQ(listing->others[0].name, "000000010000000000000004");
  EXPECT_EQ(FirstMissingSegment(*listing, 3, 4), std::nullopt);
}

// A missing directory is an empty archive; a file where the directory should be, or a bad
// segment size, is an error.
TEST_F(WalArchiveTest, MissingDirectoryAndErrors) {
  Result<ArchiveListing> empty = ListWalArchive(dir_ + "/missing", kDefaultWalSegmentSize);
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->segments.empty());
  EXPECT_TRUE(empty->others.empty());
  EXPECT_EQ(empty->total_bytes, 0u);
  EXPECT_EQ(FirstMissingSegment(*empty, 7, 9), 7u);

  Write("file", 1, Utc(2026, 1, 1, 0, 0, 0));
  Result<ArchiveListing> not_dir = ListWalArchive(dir_ + "/file", kDefaultWalSegmentSize);
  ASSERT_FALSE(not_dir.ok());
  EXPECT_EQ(not_dir.status().code(), StatusCode::kIOError);
  EXPECT_NE(not_dir.status().message().find(dir_ + "/file"), std::string::npos)
      << not_dir.status().message();

  Result<ArchiveListing> bad_size = ListWalArchive(dir_, 3 * kMiB);
  ASSERT_FALSE(bad_size.ok());
  EXPECT_EQ(bad_size.status().code(), StatusCode::kInvalidArgument);
}

// FirstMissingSegment does not depend on the listing's order or duplicate timelines, and
// handles the ends of the segment number range.
TEST(WalArchiveGapTest, UnsortedAndExtremes) {
  ArchiveListing listing;
  for (uint64_t segno : {uint64_t{12}, uint64_t{10}, uint64_t{11}, uint64_t{10}, uint64_t{14}}) {
    listing.segments.push_back({WalFileId{1, segno}, ArchivedFile{}});
  }
  EXPECT_EQ(FirstMissingSegment(listing, 10, 14), 13u);
  EXPECT_EQ(FirstMissingSegment(listing, 10, 12), std::nullopt);
  EXPECT_EQ(FirstMissingSegment(listing, 9, 12), 9u);
  EXPECT_EQ(FirstMissingSegment(listing, 14, 20), 15u);

  const uint64_t max = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(FirstMissingSegment(ArchiveListing{}, 0, max), 0u);
  ArchiveListing top;
  top.segments.push_back({WalFileId{1, max}, ArchivedFile{}});
  top.segments.push_back({WalFileId{1, max - 1}, ArchivedFile{}});
  EXPECT_EQ(FirstMissingSegment(top, max - 1, max), std::nullopt);
  EXPECT_EQ(FirstMissingSegment(top, max - 2, max), max - 2);
}

}  // namespace
}  // namespace pgb
