// PostgreSQL write-ahead log (WAL) helpers for point-in-time recovery: LSNs, WAL segment file
// names, recovery targets, and what a WAL archive directory holds. Pure: no server needed.
// Every function is thread-safe (no shared state); ListWalArchive reads the filesystem.
//
// Sources for the rules below:
//   - LSN text:      PostgreSQL docs 8.20 "pg_lsn Type" and 9.27 (pg_current_wal_lsn(),
//                    pg_walfile_name()): two hex numbers, "16/B374D848", each half at most
//                    8 hex digits (src/backend/utils/adt/pg_lsn.c).
//   - Segment names: src/include/access/xlog_internal.h (XLogFileName, IsXLogFileName,
//                    IsTLHistoryFileName, IsPartialXLogFileName, IsBackupHistoryFileName,
//                    IsValidWalSegSize); docs 30.6 "WAL Internals".
//   - Targets:       docs 20.5.5 "Recovery Target" (recovery_target_time is a timestamp with
//                    time zone; recovery_target_lsn is a pg_lsn).
//   - Archive:       docs 26.3.1 "Setting Up WAL Archiving"; basic_archive (docs F.6) writes
//                    "archtemp..." files and renames them into place.

#ifndef PGBRANCH_PG_WAL_H_
#define PGBRANCH_PG_WAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace pgb {

// ---------------------------------------------------------------------------------------------
// LSNs

// Parses an LSN as PostgreSQL writes it: "<hi>/<lo>", each half 1 to 8 hex digits in either
// case ("0/3000060", "16/b374d848"). The value is hi << 32 | lo. Nothing else is allowed, not
// even surrounding whitespace. InvalidArgument naming `text` otherwise.
Result<uint64_t> ParseLsn(std::string_view text);

// Writes an LSN the way PostgreSQL does: upper-case hex, no padding ("0/3000060",
// "16/B374D848"). ParseLsn(FormatLsn(x)) == x for every x.
std::string FormatLsn(uint64_t lsn);

// ---------------------------------------------------------------------------------------------
// WAL segment files

// The segment size of a default initdb: 16 MiB (initdb --wal-segsize).
inline constexpr uint64_t kDefaultWalSegmentSize = uint64_t{16} * 1024 * 1024;

// True if `bytes` is a segment size PostgreSQL allows: a power of two from 1 MiB to 1 GiB
// (IsValidWalSegSize).
bool IsValidWalSegmentSize(uint64_t bytes);

// A WAL segment: the timeline it belongs to and its segment number (lsn / segment size).
struct WalFileId {
  uint32_t timeline = 0;
  uint64_t segno = 0;

  friend bool operator==(const WalFileId&, const WalFileId&) = default;
};

// The segment number holding byte `lsn`: lsn / segment_size.
// REQUIRES: IsValidWalSegmentSize(segment_size).
uint64_t WalSegmentOf(uint64_t lsn, uint64_t segment_size);

// The 24 upper-case hex digit file name of a segment, as XLogFileName writes it: timeline,
// then segno / N, then segno % N, 8 digits each, where N = 0x100000000 / segment_size
// segments make up one 4 GiB "xlogid". At 16 MiB, timeline 1 segno 256 is
// "000000010000000100000000".
// REQUIRES: IsValidWalSegmentSize(segment_size); segno / N fits in 32 bits (always true for
// segments of LSNs, which are 64-bit).
std::string WalFileName(uint32_t timeline, uint64_t segno, uint64_t segment_size);

// The inverse of WalFileName. nullopt unless `name` is exactly a segment name for
// `segment_size`: 24 upper-case hex digits (IsXLogFileName), a timeline other than 0, and a
// low part below N (a name WalFileName could have written). History files
// ("00000002.history"), partial segments ("...partial"), backup history files
// ("....backup") and anything else are not segments. nullopt too for an invalid
// `segment_size`.
std::optional<WalFileId> ParseWalFileName(std::string_view name, uint64_t segment_size);

// True if `name` is a timeline history file name: 8 upper-case hex digits then ".history"
// ("00000002.history"; IsTLHistoryFileName).
bool IsTimelineHistoryFileName(std::string_view name);

// ---------------------------------------------------------------------------------------------
// Recovery targets

// Where point-in-time recovery should stop: a moment (recovery_target_time) or a WAL position
// (recovery_target_lsn).
struct RecoveryTarget {
  enum class Kind { kTime, kLsn };
  Kind kind = Kind::kTime;
  TimePoint time{};  // with kTime; microsecond precision
  uint64_t lsn = 0;  // with kLsn
  std::string text;  // what the user wrote
};

// Parses what a user may give as a recovery target, in one of three forms:
//   - an ISO 8601 timestamp: date, 'T' or one space, hh:mm:ss with up to 6 fractional digits,
//     then 'Z', a numeric offset ("+01:00", "+0100", "+01", "-05:00") or nothing (then UTC):
//     "2026-11-21T14:30:00Z", "2026-11-21 14:30:00.123456+01:00". Fractions are kept to the
//     microsecond, PostgreSQL's timestamp precision (docs 8.5).
//   - a relative time "<N> <unit> ago", N a positive decimal integer, unit one of second(s),
//     sec(s), minute(s), min(s), hour(s), day(s), week(s) (case-insensitive; singular and
//     plural alike), meaning now - N units: "2 hours ago", "90 minutes ago", "1 day ago". A day
//     is 86400 seconds (UTC: no daylight saving).
//   - an LSN as ParseLsn accepts: "0/3000060".
// Whitespace other than the single separating spaces is not allowed. On success `text` is a
// copy of `text`. InvalidArgument naming `text` and listing the three forms with examples
// otherwise; InvalidArgument naming `text` also for a well-formed time TimePoint cannot hold
// (nanoseconds since 1970 in 64 bits: before 1678 or after 2261).
Result<RecoveryTarget> ParseRecoveryTarget(const std::string& text, TimePoint now);

// `t` as recovery_target_time accepts it: UTC, microseconds, "+00" zone
// ("2026-11-21 14:30:00.123456+00"). Sub-microsecond parts are truncated toward the past.
// ParseRecoveryTarget reads it back to the same microsecond.
std::string FormatRecoveryTargetTime(TimePoint t);

// ---------------------------------------------------------------------------------------------
// WAL archive listings

struct ArchivedFile {
  std::string name;  // file name within the archive directory
  uint64_t bytes = 0;
  TimePoint mtime{};
};

// What a WAL archive directory holds.
struct ArchiveListing {
  // Complete segments, sorted by (segno, timeline).
  std::vector<std::pair<WalFileId, ArchivedFile>> segments;
  // Every other regular file: timeline history files, .partial segments, .backup history
  // files, and anything unrecognised. Sorted by name.
  std::vector<ArchivedFile> others;
  // Bytes of all files in `segments` and `others`.
  uint64_t total_bytes = 0;
};

// Lists the regular files (symlinks followed) directly in `dir`, classifying each by name
// with ParseWalFileName(name, segment_size). Temporary files are skipped entirely: names
// starting with "archtemp" (basic_archive's) or ending in ".tmp". Subdirectories are skipped.
// A missing `dir` is an empty listing; a file that vanishes while listing is skipped (an
// archiver may be renaming). InvalidArgument if `segment_size` is not valid; other failures
// are the errno Status of the call that failed (PosixError), e.g. `dir` not a directory.
Result<ArchiveListing> ListWalArchive(const std::string& dir, uint64_t segment_size);

// The first segment number in [from_segno, to_segno] with no archived segment of any
// timeline, or nullopt if none is missing (or from_segno > to_segno). `listing.segments`
// need not be sorted.
std::optional<uint64_t> FirstMissingSegment(const ArchiveListing& listing, uint64_t from_segno,
                                            uint64_t to_segno);

}  // namespace pgb

#endif  // PGBRANCH_PG_WAL_H_
