#include "cli/output.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

namespace pgb {
namespace {

// Given a value holding bytes that are not UTF-8 (a label stored before labels were checked),
// Json prints valid JSON with U+FFFD in their place instead of throwing type_error.316.
TEST(OutputTest, JsonNeverThrowsOnInvalidUtf8) {
  Output out(/*quiet=*/true);
  ::testing::internal::CaptureStdout();
  EXPECT_NO_THROW(out.Json({{"label", "ok \xff\xfe end"}, {"n", 1}}));
  std::fflush(stdout);
  std::string printed = ::testing::internal::GetCapturedStdout();
  nlohmann::json back = nlohmann::json::parse(printed);
  EXPECT_EQ(back["label"], "ok \xef\xbf\xbd\xef\xbf\xbd end");
  EXPECT_EQ(back["n"], 1);
}

// JSON stays exact: text that is valid UTF-8, controls included, round-trips.
TEST(OutputTest, JsonKeepsValidText) {
  Output out(/*quiet=*/true);
  ::testing::internal::CaptureStdout();
  out.Json({{"label", "caf\xc3\xa9 \x1b tab\t"}});
  std::fflush(stdout);
  EXPECT_EQ(nlohmann::json::parse(::testing::internal::GetCapturedStdout())["label"],
            "caf\xc3\xa9 \x1b tab\t");
}

// Given cells holding an escape sequence, a bidi override and a stray byte, the table prints
// them as visible escapes, no raw control reaches the terminal, and columns stay aligned on the
// escaped text.
TEST(OutputTest, TableEscapesCells) {
  Output out(/*quiet=*/true);
  ::testing::internal::CaptureStdout();
  out.Table({"ID", "LABEL", "KIND"}, {{"1", "clear\x1b[2J", "explicit"},
                                      {"22", "rtl\xe2\x80\xae\xff", Cell("x", Tone::kBad)}});
  std::fflush(stdout);
  std::string printed = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(printed,
            "ID  LABEL          KIND\n"
            "1   clear\\x1b[2J   explicit\n"
            "22  rtl\\u202e\\xff  x\n");
}

// Error messages carry the stderr of commands and what users typed: they are escaped, on one
// line, after "<operation> <object>: ".
TEST(OutputTest, ErrorIsOneEscapedLine) {
  Output out(/*quiet=*/true);
  ::testing::internal::CaptureStderr();
  out.Error("snapshot create", "p/main",
            Status::InvalidArgument("mkfs said:\n\x1b]0;pwned\x07 done"));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "snapshot create p/main: mkfs said: \\x1b]0;pwned\\x07 done\n");
}

}  // namespace
}  // namespace pgb
