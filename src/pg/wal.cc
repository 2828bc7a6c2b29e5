#include "pg/wal.h"

#include <date/date.h>
#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <memory>
#include <sstream>
#include <tuple>

namespace pgb {
namespace {

using std::chrono::microseconds;
using std::chrono::seconds;

constexpr uint64_t kXLogIdSpan = uint64_t{1} << 32;  // bytes per "xlogid" (high LSN half)

uint64_t SegmentsPerXLogId(uint64_t segment_size) { return kXLogIdSpan / segment_size; }

bool IsHexDigit(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }
bool IsUpperHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

// `s` read as a hex number of 1 to `max_digits` digits (either case), or nullopt.
std::optional<uint64_t> ParseHex(std::string_view s, size_t max_digits) {
  if (s.empty() || s.size() > max_digits || !std::all_of(s.begin(), s.end(), IsHexDigit)) {
    return std::nullopt;
  }
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Status NotARecoveryTarget(const std::string& text) {
  return Status::InvalidArgument(fmt::format(
      "not a recovery target: \"{}\"; give a timestamp (\"2026-11-21T14:30:00Z\", "
      "\"2026-11-21 14:30:00.123456+01:00\"; no offset means UTC), a relative time "
      "(\"2 hours ago\", \"90 minutes ago\"; units second, minute, hour, day, week) or an LSN "
      "(\"0/3000060\")",
      text));
}

// The length in seconds of a relative-time unit, or nullopt. `unit` is lower-case.
std::optional<int64_t> UnitSeconds(const std::string& unit) {
  static constexpr std::array<std::pair<std::string_view, int64_t>, 14> kUnits = {{
      {"second", 1},
      {"seconds", 1},
      {"sec", 1},
      {"secs", 1},
      {"minute", 60},
      {"minutes", 60},
      {"min", 60},
      {"mins", 60},
      {"hour", 3600},
      {"hours", 3600},
      {"day", 86400},
      {"days", 86400},
      {"week", 7 * 86400},
      {"weeks", 7 * 86400},
  }};
  for (const auto& [name, secs] : kUnits) {
    if (unit == name) return secs;
  }
  return std::nullopt;
}

// "<N> <unit> ago" -> now - N units, floored to the microsecond. nullopt if `text` does not
// have that shape; an error Status if it does but the moment is out of TimePoint's range.
std::optional<Result<TimePoint>> ParseRelativeTime(const std::string& text, TimePoint now) {
  std::vector<std::string_view> words;
  std::string_view rest = text;
  while (true) {
    size_t space = rest.find(' ');
    words.push_back(rest.substr(0, space));
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  if (words.size() != 3 || Lower(words[2]) != "ago") return std::nullopt;

  std::string_view count_text = words[0];
  if (count_text.empty() || !std::all_of(count_text.begin(), count_text.end(),
                                         [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;  // also rejects signs: "-3 hours ago"
  }
  std::optional<int64_t> unit = UnitSeconds(Lower(words[1]));
  if (!unit) return std::nullopt;

  auto out_of_range = [&] {
    return Result<TimePoint>(Status::InvalidArgument(
        fmt::format("recovery target \"{}\" is too far in the past", text)));
  };
  uint64_t count = 0;
  auto [end, ec] = std::from_chars(count_text.data(), count_text.data() + count_text.size(), count);
  if (ec == std::errc::result_out_of_range) return out_of_range();
  if (ec != std::errc() || count == 0) return std::nullopt;

  // now - count * unit must stay within TimePoint (nanoseconds in libstdc++: 1677..2262).
  const uint64_t max_seconds =
      static_cast<uint64_t>(std::chrono::floor<seconds>(TimePoint::duration::max()).count());
  if (count > max_seconds / static_cast<uint64_t>(*unit)) return out_of_range();
  const auto back =
      std::chrono::duration_cast<TimePoint::duration>(seconds(static_cast<int64_t>(count) * *unit));
  if (now.time_since_epoch() < TimePoint::duration::min() + back + microseconds(1)) {
    return out_of_range();
  }
  return Result<TimePoint>(std::chrono::floor<microseconds>(now - back));
}

int YearOf(microseconds since_epoch) {
  return static_cast<int>(
      date::year_month_day(date::floor<date::days>(date::sys_time<microseconds>(since_epoch)))
          .year());
}

// An ISO 8601 timestamp, parsed with the date library, or nullopt. An error Status if it
// parses but TimePoint cannot hold it.
//
// GCC 12 at -O2 warns that date.h's seconds field "may be used uninitialized" once inlined
// here; date.h only reads it after a successful read, so the warning is silenced for this
// function alone.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
std::optional<Result<TimePoint>> ParseTimestampTarget(const std::string& text) {
  // %n is one white-space character; the caller has already rejected any but ' '. A literal
  // ' ' in a date format would match any amount of white space, including none.
  static constexpr std::array<const char*, 8> kFormats = {
      "%FT%TZ",  "%FT%T%Ez",  "%FT%T%z",  "%FT%T",  // 'T' between date and time
      "%F%n%TZ", "%F%n%T%Ez", "%F%n%T%z", "%F%n%T",
  };
  for (const char* format : kFormats) {
    std::istringstream in(text);
    date::sys_time<microseconds> parsed;
    in >> date::parse(format, parsed);
    if (in.fail() || in.peek() != std::char_traits<char>::eof()) continue;
    // sys_time<microseconds> spans +-292,000 years; TimePoint may be narrower.
    const auto lo = std::chrono::ceil<microseconds>(TimePoint::duration::min());
    const auto hi = std::chrono::floor<microseconds>(TimePoint::duration::max());
    const auto since_epoch = parsed.time_since_epoch();
    if (since_epoch < lo || since_epoch > hi) {
      return Result<TimePoint>(Status::InvalidArgument(
          fmt::format("recovery target \"{}\" is out of range (years {} to {})", text,
                      YearOf(lo) + 1, YearOf(hi) - 1)));
    }
    return Result<TimePoint>(
        TimePoint(std::chrono::duration_cast<TimePoint::duration>(since_epoch)));
  }
  return std::nullopt;
}
#pragma GCC diagnostic pop

}  // namespace

Result<uint64_t> ParseLsn(std::string_view text) {
  size_t slash = text.find('/');
  if (slash != std::string_view::npos) {
    std::optional<uint64_t> hi = ParseHex(text.substr(0, slash), 8);
    std::optional<uint64_t> lo = ParseHex(text.substr(slash + 1), 8);
    if (hi && lo) return *hi << 32 | *lo;
  }
  return Status::InvalidArgument(
      fmt::format("not an LSN: \"{}\" (expected two hex numbers of 1 to 8 digits separated by "
                  "'/', e.g. \"0/3000060\")",
                  text));
}

std::string FormatLsn(uint64_t lsn) {
  return fmt::format("{:X}/{:X}", lsn >> 32, lsn & 0xFFFFFFFFu);
}

bool IsValidWalSegmentSize(uint64_t bytes) {
  return bytes >= (uint64_t{1} << 20) && bytes <= (uint64_t{1} << 30) && (bytes & (bytes - 1)) == 0;
}

uint64_t WalSegmentOf(uint64_t lsn, uint64_t segment_size) {
  assert(IsValidWalSegmentSize(segment_size));
  return lsn / segment_size;
}

std::string WalFileName(uint32_t timeline, uint64_t segno, uint64_t segment_size) {
  assert(IsValidWalSegmentSize(segment_size));
  const uint64_t per_id = SegmentsPerXLogId(segment_size);
  return fmt::format("{:08X}{:08X}{:08X}", timeline, segno / per_id, segno % per_id);
}

std::optional<WalFileId> ParseWalFileName(std::string_view name, uint64_t segment_size) {
  if (!IsValidWalSegmentSize(segment_size)) return std::nullopt;
  if (name.size() != 24 || !std::all_of(name.begin(), name.end(), IsUpperHexDigit)) {
    return std::nullopt;
  }
  const uint64_t timeline = *ParseHex(name.substr(0, 8), 8);
  const uint64_t xlogid = *ParseHex(name.substr(8, 8), 8);
  const uint64_t low = *ParseHex(name.substr(16, 8), 8);
  const uint64_t per_id = SegmentsPerXLogId(segment_size);
  if (timeline == 0 || low >= per_id) return std::nullopt;
  return WalFileId{static_cast<uint32_t>(timeline), xlogid * per_id + low};
}

bool IsTimelineHistoryFileName(std::string_view name) {
  constexpr std::string_view kSuffix = ".history";
  return name.size() == 8 + kSuffix.size() && EndsWith(name, kSuffix) &&
         std::all_of(name.begin(), name.begin() + 8, IsUpperHexDigit);
}

Result<RecoveryTarget> ParseRecoveryTarget(const std::string& text, TimePoint now) {
  // Only single inner spaces: no surrounding white space, no tabs or newlines anywhere.
  if (text.empty() || text.front() == ' ' || text.back() == ' ' ||
      std::any_of(text.begin(), text.end(),
                  [](char c) { return c != ' ' && std::isspace(static_cast<unsigned char>(c)); })) {
    return NotARecoveryTarget(text);
  }

  RecoveryTarget target;
  target.text = text;

  if (Result<uint64_t> lsn = ParseLsn(text); lsn.ok()) {
    target.kind = RecoveryTarget::Kind::kLsn;
    target.lsn = *lsn;
    return target;
  }

  std::optional<Result<TimePoint>> time = ParseRelativeTime(text, now);
  if (!time) time = ParseTimestampTarget(text);
  if (!time) return NotARecoveryTarget(text);
  if (!time->ok()) return time->status();
  target.kind = RecoveryTarget::Kind::kTime;
  target.time = **time;
  return target;
}

std::string FormatRecoveryTargetTime(TimePoint t) {
  return date::format("%F %T+00", std::chrono::floor<microseconds>(t));
}

Result<ArchiveListing> ListWalArchive(const std::string& dir, uint64_t segment_size) {
  if (!IsValidWalSegmentSize(segment_size)) {
    return Status::InvalidArgument(fmt::format(
        "invalid WAL segment size {}: must be a power of two from 1 MiB to 1 GiB", segment_size));
  }
  ArchiveListing listing;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), &::closedir);
  if (!d) {
    if (errno == ENOENT) return listing;
    return PosixError(fmt::format("open directory {}", dir), errno);
  }
  while (true) {
    errno = 0;
    const dirent* entry = ::readdir(d.get());
    if (entry == nullptr) {
      if (errno != 0) return PosixError(fmt::format("read directory {}", dir), errno);
      break;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (StartsWith(name, "archtemp") || EndsWith(name, ".tmp")) continue;

    struct stat st {};
    if (::fstatat(::dirfd(d.get()), entry->d_name, &st, 0) != 0) {
      if (errno == ENOENT) continue;  // renamed or removed since readdir
      return PosixError(fmt::format("stat {}/{}", dir, name), errno);
    }
    if (!S_ISREG(st.st_mode)) continue;

    ArchivedFile file;
    file.name = std::string(name);
    file.bytes = static_cast<uint64_t>(st.st_size);
    file.mtime = TimePoint(std::chrono::duration_cast<TimePoint::duration>(
        seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
    listing.total_bytes += file.bytes;
    if (std::optional<WalFileId> id = ParseWalFileName(name, segment_size)) {
      listing.segments.emplace_back(*id, std::move(file));
    } else {
      listing.others.push_back(std::move(file));
    }
  }
  std::sort(listing.segments.begin(), listing.segments.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.segno, a.first.timeline) < std::tie(b.first.segno, b.first.timeline);
  });
  std::sort(listing.others.begin(), listing.others.end(),
            [](const ArchivedFile& a, const ArchivedFile& b) { return a.name < b.name; });
  return listing;
}

std::optional<uint64_t> FirstMissingSegment(const ArchiveListing& listing, uint64_t from_segno,
                                            uint64_t to_segno) {
  if (from_segno > to_segno) return std::nullopt;
  std::vector<uint64_t> present;
  present.reserve(listing.segments.size());
  for (const auto& [id, file] : listing.segments) {
    if (id.segno >= from_segno && id.segno <= to_segno) present.push_back(id.segno);
  }
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  // present[i] == from_segno + i up to the first gap.
  for (size_t i = 0; i < present.size(); ++i) {
    if (present[i] != from_segno + i) return from_segno + i;
  }
  if (!present.empty() && present.size() - 1 == to_segno - from_segno) return std::nullopt;
  return from_segno + present.size();
}

}  // namespace pgb
