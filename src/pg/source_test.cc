#include "pg/source.h"

#include <gtest/gtest.h>

namespace pgb {
namespace {

TEST(SourceTest, ParsesSizeSettingsAsShowPrintsThem) {
  EXPECT_EQ(*ParseSizeSetting("16MB"), 16u << 20);
  EXPECT_EQ(*ParseSizeSetting("1GB"), 1u << 30);
  EXPECT_EQ(*ParseSizeSetting("8kB"), 8u << 10);
  EXPECT_EQ(*ParseSizeSetting("512"), 512u);
  for (const char* bad : {"", "MB", "16 MB", "16mb", "-1MB", "99999999999999999999GB"}) {
    EXPECT_FALSE(ParseSizeSetting(bad).ok()) << bad;
  }
}

TEST(SourceTest, ConninfoQuotesEveryValueAndPutsExtrasLast) {
  EXPECT_EQ(FormatConninfo({{"host", "db.example"}, {"user", "o'neil\\x"}}, {{"passfile", "/p f"}}),
            "host='db.example' user='o\\'neil\\\\x' passfile='/p f'");
  // An extra overrides a parsed value of the same key.
  EXPECT_EQ(FormatConninfo({{"application_name", "x"}}, {{"application_name", "y"}}),
            "application_name='y'");
}

TEST(SourceTest, PassfileEscapesColonAndBackslash) {
  EXPECT_EQ(PassfileEntry("a:b\\c"), "*:*:*:*:a\\:b\\\\c\n");
}

TEST(SourceTest, DescribesWithoutPassword) {
  EXPECT_EQ(DescribeSource({{"host", "prod"}, {"port", "5433"}, {"user", "rep"}}), "rep@prod:5433");
  EXPECT_EQ(DescribeSource({{"host", "/run/pg"}}), "/run/pg port 5432");
}

TEST(SourceTest, RefusesUnparsableAndReplicationUris) {
  auto bad = ProbeSourceServer("postgresql://[bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().Is(StatusCode::kInvalidArgument)) << bad.status().ToString();
  auto rep = ProbeSourceServer("host=/nonexistent replication=database");
  ASSERT_FALSE(rep.ok());
  EXPECT_TRUE(rep.status().Is(StatusCode::kInvalidArgument)) << rep.status().ToString();
  auto none = ProbeSourceServer("host=127.0.0.1 port=1 user=x password=secret connect_timeout=2");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().message().find("secret"), std::string::npos);
}

}  // namespace
// A physical copy needs the project's own major; a dump reads its major and older ones. The
// refusal names both versions, the source (without a password) and the way out.
TEST(SourceTest, CheckSourceMajorRefusesWhatCannotBeRead) {
  SourceServer source;
  source.params = {{"host", "prod"}, {"port", "5432"}, {"user", "replicator"}};
  source.password = "secret";
  source.major = 15;
  EXPECT_TRUE(CheckSourceMajor(source, 15, "/usr/lib/postgresql/15/bin", false).ok());
  EXPECT_TRUE(CheckSourceMajor(source, 15, "/usr/lib/postgresql/15/bin", true).ok());
  EXPECT_TRUE(CheckSourceMajor(source, 17, "/usr/lib/postgresql/17/bin", true).ok());
  Status older = CheckSourceMajor(source, 17, "/usr/lib/postgresql/17/bin", false);
  EXPECT_TRUE(older.Is(StatusCode::kFailedPrecondition));
  EXPECT_NE(older.message().find("runs PostgreSQL 15, the project PostgreSQL 17 "
                                 "(/usr/lib/postgresql/17/bin); a physical copy needs the same "
                                 "major version"),
            std::string::npos)
      << older.message();
  source.major = 16;
  Status newer = CheckSourceMajor(source, 15, "/usr/lib/postgresql/15/bin", true);
  EXPECT_TRUE(newer.Is(StatusCode::kFailedPrecondition));
  EXPECT_NE(newer.message().find("runs PostgreSQL 16, newer than the project's 15; pg_dump 15 "
                                 "cannot dump it"),
            std::string::npos)
      << newer.message();
  EXPECT_TRUE(CheckSourceMajor(source, 15, "", false).Is(StatusCode::kFailedPrecondition));
  for (const Status& s : {older, newer}) {
    EXPECT_EQ(s.message().find("secret"), std::string::npos);
    EXPECT_NE(s.message().find("prod"), std::string::npos) << s.message();
  }
}

}  // namespace pgb
