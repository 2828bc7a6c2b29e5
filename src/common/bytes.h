// Bytes for people: byte counts, and byte strings checked as text and made safe to print.
//
// Text that came from a user, a server log or a database may hold bytes that are not UTF-8
// (nlohmann-json throws on them when it writes JSON) or characters that steer a terminal
// (escape sequences, C1 controls, bidirectional overrides that reorder what follows). The
// checks below refuse such text at input; EscapeForTerminal makes what was stored before the
// checks existed, or what a server wrote, harmless on output.

#ifndef PGBRANCH_COMMON_BYTES_H_
#define PGBRANCH_COMMON_BYTES_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace pgb {

inline constexpr uint64_t kKiB = 1024;
inline constexpr uint64_t kMiB = 1024 * kKiB;
inline constexpr uint64_t kGiB = 1024 * kMiB;

// Binary units with one decimal: "512 B", "1.5 KiB", "160.0 MiB", "64.0 GiB".
std::string FormatBytes(uint64_t bytes);

// True if `text` is well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
// above U+10FFFF, no sequence cut short. The empty string is well-formed.
bool IsValidUtf8(std::string_view text);

// True if code point `c` steers a terminal or reorders the text around it rather than showing
// a glyph: the C0 controls and DEL, the C1 controls (U+0080-U+009F), and the bidirectional
// formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).
bool IsControlCharacter(char32_t c);

// True if `text` is well-formed UTF-8 with no control character (IsControlCharacter) in it.
bool IsPrintableText(std::string_view text);

// `text` safe to write to a terminal: every byte that is not part of well-formed UTF-8, and
// every control character, written as an escape ("\x1b", "\xff", "\u202e"); everything else,
// including non-ASCII letters, as it is. The characters of `keep` (C0 controls such as "\n\t")
// are kept for multi-line text.
std::string EscapeForTerminal(std::string_view text, std::string_view keep = "");

}  // namespace pgb

#endif  // PGBRANCH_COMMON_BYTES_H_
