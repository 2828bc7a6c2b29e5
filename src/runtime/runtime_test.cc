#include "runtime/runtime.h"

#include <gtest/gtest.h>

namespace pgb {
namespace {

// A rejected setting: PostgreSQL names it in the LOG line before the FATAL.
TEST(LogHighlightsTest, BadSettingNamesTheSetting) {
  std::string log =
      "2026-11-21 13:58:11.498 UTC [24135] LOG:  invalid value for parameter \"shared_buffers\": "
      "\"nonsense\"\n"
      "2026-11-21 13:58:11.498 UTC [24135] FATAL:  configuration file \"/d/pgbranch.conf\" "
      "contains errors\n";
  EXPECT_EQ(LogHighlights(log),
            "LOG:  invalid value for parameter \"shared_buffers\": \"nonsense\" | FATAL:  "
            "configuration file \"/d/pgbranch.conf\" contains errors");
}

// A port held by someone else: the bind failure is the cause worth showing.
TEST(LogHighlightsTest, PortInUseKeepsTheBindFailure) {
  std::string log =
      "2026-11-21 13:00:00.000 UTC [1] LOG:  starting PostgreSQL 15.20\n"
      "2026-11-21 13:00:00.000 UTC [1] LOG:  could not bind IPv4 address \"127.0.0.1\": Address "
      "already in use\n"
      "2026-11-21 13:00:00.000 UTC [1] HINT:  Is another postmaster already running on port "
      "54320?\n"
      "2026-11-21 13:00:00.000 UTC [1] WARNING:  could not create listen socket for "
      "\"127.0.0.1\"\n"
      "2026-11-21 13:00:00.000 UTC [1] FATAL:  could not create any TCP/IP sockets\n"
      "2026-11-21 13:00:00.000 UTC [1] LOG:  database system is shut down\n";
  std::string h = LogHighlights(log);
  EXPECT_NE(h.find("Address already in use"), std::string::npos) << h;
  EXPECT_NE(h.find("FATAL:  could not create any TCP/IP sockets"), std::string::npos) << h;
  EXPECT_EQ(h.find("starting PostgreSQL"), std::string::npos) << h;
}

// Another major version's data directory: the DETAIL after the FATAL says which versions.
TEST(LogHighlightsTest, IncompatibleDataDirectoryKeepsTheDetail) {
  std::string log =
      "2026-11-21 13:00:00.000 UTC [1] FATAL:  database files are incompatible with server\n"
      "2026-11-21 13:00:00.000 UTC [1] DETAIL:  The data directory was initialized by "
      "PostgreSQL version 17, which is not compatible with this version 15.14.\n";
  EXPECT_EQ(LogHighlights(log),
            "FATAL:  database files are incompatible with server | DETAIL:  The data directory "
            "was initialized by PostgreSQL version 17, which is not compatible with this version "
            "15.14.");
}

TEST(LogHighlightsTest, NothingSevereGivesLastLine) {
  EXPECT_EQ(LogHighlights("a\nb\n"), "b");
  EXPECT_EQ(LogHighlights(""), "");
}

}  // namespace
}  // namespace pgb
