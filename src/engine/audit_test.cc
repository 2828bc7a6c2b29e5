#include "engine/audit.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "common/time.h"
#include "storage/pool.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

class FixedClock : public Clock {
 public:
  TimePoint Now() const override { return ParseTimestamp("2026-05-01T12:00:00Z").value(); }
};

// Given an audited copy pool in a temporary directory: Quarantine, Release and Purge are each
// recorded with their object, the pool's kind (and for Quarantine the time given), and how they
// ended, failures included; ListQuarantined, a read, is not.
TEST(AuditedPoolTest, RecordsQuarantineReleaseAndPurge) {
  char tmpl[] = "/tmp/pgb-audit-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto runner = NewRealProcessRunner();
  PoolConfig config;
  config.kind = "copy";
  config.root = dir;
  ASSERT_TRUE(CreatePool(config, *runner).ok());
  Result<std::unique_ptr<Pool>> opened = OpenPool(config, *runner);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  FixedClock clock;
  AuditLog log(clock);
  std::unique_ptr<Pool> pool = NewAuditedPool(std::move(opened).value(), log);

  const std::string volume = NewVolumeName();
  ASSERT_TRUE(pool->CreateVolume(volume, std::nullopt).ok());
  const TimePoint since = ParseTimestamp("2026-04-01T00:00:00.500Z").value();
  ASSERT_TRUE(pool->Quarantine(volume, since).ok());
  ASSERT_EQ(pool->ListQuarantined()->size(), 1u);
  ASSERT_TRUE(pool->Release(volume).ok());
  ASSERT_TRUE(pool->Quarantine(volume, since).ok());
  ASSERT_TRUE(pool->Purge(volume).ok());
  EXPECT_EQ(pool->Purge(volume).code(), StatusCode::kNotFound);

  std::vector<AuditRow> rows = log.Take();
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_EQ(rows[0].operation, "pool.CreateVolume");
  EXPECT_EQ(rows[1].operation, "pool.Quarantine");
  EXPECT_EQ(rows[1].object, volume);
  EXPECT_EQ(rows[1].detail, "copy since 2026-04-01T00:00:00.500Z");
  EXPECT_EQ(rows[1].at, "2026-05-01T12:00:00.000Z");
  EXPECT_TRUE(rows[1].ok);
  EXPECT_EQ(rows[2].operation, "pool.Release");
  EXPECT_EQ(rows[2].detail, "copy");
  EXPECT_EQ(rows[3].operation, "pool.Quarantine");
  EXPECT_EQ(rows[4].operation, "pool.Purge");
  EXPECT_TRUE(rows[4].ok);
  EXPECT_EQ(rows[5].operation, "pool.Purge");
  EXPECT_FALSE(rows[5].ok);
  EXPECT_NE(rows[5].error.find("not quarantined"), std::string::npos) << rows[5].error;

  pool.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pgb
