#include "engine/names.h"

#include <gtest/gtest.h>

namespace pgb {
namespace {

// Names that are safe everywhere pass; everything that could reach a path, an option or a
// shell in some other tool is refused with an explanation.
TEST(NamesTest, ValidAndHostileNames) {
  for (const char* ok : {"main", "dev", "a", "0day", "feature-1", "my_branch",
                         "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz"}) {
    EXPECT_TRUE(ValidateName("branch", ok).ok()) << ok;
  }
  for (const char* bad : {"", "Dev", "-rf", "_x", "a/b", "..", "../../etc", "a b", "x;reboot",
                          "$(id)", "`id`", "a\nb", "caf\xc3\xa9", "a.b", "x|y",
                          "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz0"}) {
    Status s = ValidateName("branch", bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ValidateName("branch", "Dev").message().find("uppercase"), std::string::npos);
}

TEST(NamesTest, ParseBranchRef) {
  auto r = ParseBranchRef("demo/dev");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->project, "demo");
  EXPECT_EQ(r->branch, "dev");
  EXPECT_EQ(r->ToString(), "demo/dev");
  EXPECT_FALSE(ParseBranchRef("demo").ok());
  EXPECT_FALSE(ParseBranchRef("demo/dev/x").ok());
  EXPECT_FALSE(ParseBranchRef("/dev").ok());
  EXPECT_FALSE(ParseBranchRef("demo/").ok());
}

// Control characters in user input never reach the terminal raw.
TEST(NamesTest, QuoteForDisplayEscapes) {
  EXPECT_EQ(QuoteForDisplay("ok"), "\"ok\"");
  EXPECT_EQ(QuoteForDisplay("a\x1b[31mb"), "\"a\\x1b[31mb\"");
  EXPECT_EQ(QuoteForDisplay("q\"s"), "\"q\\\"s\"");
  EXPECT_EQ(QuoteForDisplay(std::string(100, 'x')).size(), 80u + 2 + 3);
}

}  // namespace
}  // namespace pgb
