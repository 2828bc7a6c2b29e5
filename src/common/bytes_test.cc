#include "common/bytes.h"

#include <gtest/gtest.h>

#include <string>

namespace pgb {
namespace {

// Well-formed UTF-8 of every length passes; each way a sequence can be malformed (a stray
// continuation byte, a lead byte without its continuation, an overlong form, a UTF-16
// surrogate, a code point above U+10FFFF, bytes that never occur) fails.
TEST(BytesTest, IsValidUtf8) {
  for (const char* good : {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac 5", "\xf0\x9f\x90\x98",
                           "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"}) {
    EXPECT_TRUE(IsValidUtf8(good)) << good;
  }
  for (const char* bad :
       {"\xff", "a\x80", "\xc3", "\xe2\x82", "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",
        "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80", "caf\xe9"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << EscapeForTerminal(bad);
  }
}

// C0, DEL, C1 and the bidirectional formatting characters are controls; letters, spaces and
// symbols, including the ones next to those ranges, are not.
TEST(BytesTest, IsControlCharacter) {
  for (char32_t c : {0x00u, 0x09u, 0x0Au, 0x1Bu, 0x1Fu, 0x7Fu, 0x80u, 0x85u, 0x9Bu, 0x9Fu, 0x061Cu,
                     0x200Eu, 0x200Fu, 0x202Au, 0x202Eu, 0x2066u, 0x2069u}) {
    EXPECT_TRUE(IsControlCharacter(c)) << std::hex << static_cast<unsigned>(c);
  }
  for (char32_t c : {0x20u, 0x41u, 0x7Eu, 0xA0u, 0xE9u, 0x200Du, 0x2029u, 0x206Au, 0x1F418u}) {
    EXPECT_FALSE(IsControlCharacter(c)) << std::hex << static_cast<unsigned>(c);
  }
}

// Printable text is valid UTF-8 without controls: a label may hold accents and emoji, not an
// escape sequence, a newline, a C1 CSI, a right-to-left override or a stray byte.
TEST(BytesTest, IsPrintableText) {
  EXPECT_TRUE(IsPrintableText("before the migration"));
  EXPECT_TRUE(IsPrintableText("\xc3\xa9t\xc3\xa9 \xf0\x9f\x90\x98"));
  for (const char* bad : {"a\x1b[31mb", "two\nlines", "tab\there", "c1 \xc2\x9b",
                          "rtl \xe2\x80\xae", "bad \xff", "del \x7f"}) {
    EXPECT_FALSE(IsPrintableText(bad)) << EscapeForTerminal(bad);
  }
}

// Escaping keeps printable text byte for byte, writes controls and stray bytes as visible
// escapes, and keeps only the controls it is told to (newlines of a server log).
TEST(BytesTest, EscapeForTerminal) {
  EXPECT_EQ(EscapeForTerminal("caf\xc3\xa9 \xf0\x9f\x90\x98"), "caf\xc3\xa9 \xf0\x9f\x90\x98");
  EXPECT_EQ(EscapeForTerminal("a\x1b]0;title\x07z"), "a\\x1b]0;title\\x07z");
  EXPECT_EQ(EscapeForTerminal("x\xff\xc3y"), "x\\xff\\xc3y");
  EXPECT_EQ(EscapeForTerminal("csi \xc2\x9b rtl \xe2\x80\xae"), "csi \\u009b rtl \\u202e");
  EXPECT_EQ(EscapeForTerminal("l1\nl2\tx\r"), "l1\\x0al2\\x09x\\x0d");
  EXPECT_EQ(EscapeForTerminal("l1\nl2\tx\r", "\n\t"), "l1\nl2\tx\\x0d");
  // A multi-byte control is never kept by `keep`, which names single bytes.
  EXPECT_EQ(EscapeForTerminal("\xc2\x85", "\xc2\x85"), "\\u0085");
}

TEST(BytesTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(kGiB), "1.0 GiB");
}

}  // namespace
}  // namespace pgb
