#include "storage/volume_name.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/time.h"

namespace pgb {
namespace {

// Given a volume or snapshot name and a time, the quarantine entry name is "<name>@<UTC time to
// the millisecond>" and parses back to both (the time cut to whole milliseconds).
TEST(QuarantineEntryNameTest, RoundTrips) {
  const TimePoint since =
      ParseTimestamp("2026-11-21T14:30:00.123Z").value() + std::chrono::microseconds(456);
  const std::string volume = NewVolumeName(), snapshot = NewSnapshotName();
  EXPECT_EQ(QuarantineEntryName(volume, since), volume + "@2026-11-21T14:30:00.123Z");
  std::optional<QuarantineEntry> parsed =
      ParseQuarantineEntryName(QuarantineEntryName(snapshot, since));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->name, snapshot);
  EXPECT_EQ(parsed->since, ParseTimestamp("2026-11-21T14:30:00.123Z").value());
}

// Given entries that QuarantineEntryName did not write (no '@', a name of the wrong shape, a time
// that is not one), they parse to nothing: the pool never touches them.
TEST(QuarantineEntryNameTest, RefusesWhatItDidNotWrite) {
  const std::string volume = "v0123456789abcdef";
  for (const std::string& entry : std::vector<std::string>{
           volume, volume + "@", volume + "@yesterday", "v123@2026-11-21T14:30:00.123Z",
           "../v0123456789abcdef@2026-11-21T14:30:00.123Z", "@2026-11-21T14:30:00.123Z",
           volume + "@2026-11-21T14:30:00.123Z/x", "lost+found", ".pgbranch-probe"}) {
    EXPECT_FALSE(ParseQuarantineEntryName(entry).has_value()) << entry;
  }
}

// Given names of either kind, CheckVolumeOrSnapshotName accepts them and refuses anything else.
TEST(QuarantineEntryNameTest, VolumeOrSnapshotNames) {
  EXPECT_TRUE(CheckVolumeOrSnapshotName(NewVolumeName()).ok());
  EXPECT_TRUE(CheckVolumeOrSnapshotName(NewSnapshotName()).ok());
  for (const char* bad : {"", "v123", "x0123456789abcdef", "V0123456789ABCDEF", "-r", ".."}) {
    EXPECT_EQ(CheckVolumeOrSnapshotName(bad).code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace pgb
