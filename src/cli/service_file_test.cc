#include "cli/service_file.h"

#include <gtest/gtest.h>

namespace pgb {
namespace {

ServiceEntry Entry(const std::string& port) {
  return {
      "demo-dev", "made by pgbranch for demo/dev of /h", {{"host", "127.0.0.1"}, {"port", port}}};
}

const char* const kDev5000 =
    "[demo-dev]\n"
    "# made by pgbranch for demo/dev of /h\n"
    "host=127.0.0.1\n"
    "port=5000\n";

TEST(ServiceFileTest, AppendsToAnEmptyOrForeignFile) {
  EXPECT_EQ(PutServiceEntry("", Entry("5000")).value(), kDev5000);
  std::string mine = "# my services\n[prod]\nhost=db.example.com";  // no final line break
  EXPECT_EQ(PutServiceEntry(mine, Entry("5000")).value(), mine + "\n\n" + kDev5000);
}

TEST(ServiceFileTest, ReplacesItsOwnSectionInPlaceAndKeepsEveryOtherLine) {
  std::string before = "[a]\nhost=x\n\n";
  std::string after = "\n[b]  \n# mine\nport=1\n";
  std::string text = before + kDev5000 + after;
  std::string expected =
      before + std::string(kDev5000).replace(std::string(kDev5000).find("5000"), 4, "6000") + after;
  EXPECT_EQ(PutServiceEntry(text, Entry("6000")).value(), expected);
  // Idempotent.
  EXPECT_EQ(PutServiceEntry(expected, Entry("6000")).value(), expected);
}

TEST(ServiceFileTest, RefusesASectionItDidNotWrite) {
  std::string text = "[demo-dev]\nhost=my.own.host\n";
  Result<std::string> r = PutServiceEntry(text, Entry("5000"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().Is(StatusCode::kAlreadyExists)) << r.status().ToString();
  EXPECT_NE(r.status().message().find("[demo-dev]"), std::string::npos);
  // Another home's pgbranch (another owner) is someone else too.
  std::string other = "[demo-dev]\n# made by pgbranch for demo/dev of /other\nport=1\n";
  EXPECT_FALSE(PutServiceEntry(other, Entry("5000")).ok());
  // A header with blanks around it is the same section (libpq trims them).
  EXPECT_FALSE(PutServiceEntry("  [demo-dev]  \nport=1\n", Entry("5000")).ok());
}

TEST(ServiceFileTest, RefusesWhatCannotBeWrittenOnOneLine) {
  ServiceEntry e = Entry("5000");
  e.keywords.push_back({"passfile", "/tmp/a\nport=1"});
  EXPECT_TRUE(PutServiceEntry("", e).status().Is(StatusCode::kInvalidArgument));
  e = Entry("5000");
  e.name = "demo]\n[x";
  EXPECT_TRUE(PutServiceEntry("", e).status().Is(StatusCode::kInvalidArgument));
  e = Entry("5000");
  e.keywords.push_back({"a=b", "c"});
  EXPECT_TRUE(PutServiceEntry("", e).status().Is(StatusCode::kInvalidArgument));
}

TEST(ServiceFileTest, NamesAreProjectDashBranch) {
  EXPECT_EQ(ServiceName("demo", "dev"), "demo-dev");
}

}  // namespace
}  // namespace pgb
