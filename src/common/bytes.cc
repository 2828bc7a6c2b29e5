#include "common/bytes.h"

#include <fmt/format.h>

#include <optional>

namespace pgb {
namespace {

struct Utf8Char {
  char32_t code_point;
  size_t length;  // bytes, 1 to 4
};

// The character `text` starts with, or nullopt if its first bytes are not well-formed UTF-8
// (RFC 3629, table 3-7 of the Unicode standard). REQUIRES: !text.empty().
std::optional<Utf8Char> DecodeUtf8(std::string_view text) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return Utf8Char{lead, 1};
  size_t length;
  char32_t c;
  char32_t min;  // the smallest code point this length may encode (no overlong forms)
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, c = lead & 0x1F, min = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, c = lead & 0x0F, min = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, c = lead & 0x07, min = 0x10000;
  } else {
    return std::nullopt;  // a continuation byte, 0xC0/0xC1 (always overlong) or 0xF5-0xFF
  }
  if (text.size() < length) return std::nullopt;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return std::nullopt;
    c = (c << 6) | (byte(i) & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return std::nullopt;
  return Utf8Char{c, length};
}

}  // namespace

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < kKiB) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes) / kKiB;
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

bool IsValidUtf8(std::string_view text) {
  while (!text.empty()) {
    std::optional<Utf8Char> c = DecodeUtf8(text);
    if (!c) return false;
    text.remove_prefix(c->length);
  }
  return true;
}

bool IsControlCharacter(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x061C || c == 0x200E || c == 0x200F ||
         (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

bool IsPrintableText(std::string_view text) {
  while (!text.empty()) {
    std::optional<Utf8Char> c = DecodeUtf8(text);
    if (!c || IsControlCharacter(c->code_point)) return false;
    text.remove_prefix(c->length);
  }
  return true;
}

std::string EscapeForTerminal(std::string_view text, std::string_view keep) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    std::optional<Utf8Char> c = DecodeUtf8(text);
    if (!c) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[0]));
      text.remove_prefix(1);
      continue;
    }
    bool kept = c->length == 1 && keep.find(text[0]) != std::string_view::npos;
    if (!IsControlCharacter(c->code_point) || kept) {
      out.append(text.substr(0, c->length));
    } else if (c->code_point < 0x80) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(c->code_point));
    } else {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c->code_point));
    }
    text.remove_prefix(c->length);
  }
  return out;
}

}  // namespace pgb
