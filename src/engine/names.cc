#include "engine/names.h"

#include <fmt/format.h>

namespace pgb {

std::string QuoteForDisplay(std::string_view text) {
  std::string out = "\"";
  size_t shown = 0;
  for (unsigned char c : text) {
    if (++shown > 80) {
      out += "...";
      break;
    }
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out + "\"";
}

Status ValidateName(std::string_view what, std::string_view name) {
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format(
        "invalid {} name {}: {}; use 1-{} lowercase letters, digits, '-' or '_', starting with a "
        "letter or digit",
        what, QuoteForDisplay(name), why, kMaxNameLength));
  };
  if (name.empty()) return invalid("it is empty");
  if (name.size() > kMaxNameLength)
    return invalid(fmt::format("it has {} characters", name.size()));
  auto is_alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (name.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ") != std::string_view::npos) {
    return invalid("it has an uppercase letter");
  }
  if (!is_alnum(name[0])) return invalid("it must start with a letter or digit");
  for (char c : name) {
    if (!is_alnum(c) && c != '-' && c != '_') {
      return invalid(fmt::format("it has the character {}", QuoteForDisplay(std::string(1, c))));
    }
  }
  return Status::OK();
}

Result<BranchRef> ParseBranchRef(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Status::InvalidArgument(fmt::format(
        "{} is not a branch: write PROJECT/BRANCH, e.g. demo/dev", QuoteForDisplay(text)));
  }
  BranchRef ref{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
  PGB_RETURN_IF_ERROR(ValidateName("project", ref.project));
  PGB_RETURN_IF_ERROR(ValidateName("branch", ref.branch));
  return ref;
}

namespace {

bool IsLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '/';
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

Status ValidateLabel(std::string_view key, std::string_view value) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(
        fmt::format("label {}: {}", QuoteForDisplay(fmt::format("{}={}", key, value)), why));
  };
  if (key.empty() || key.size() > 63 || !IsAlnum(key[0])) {
    return bad("the key must be 1-63 characters starting with a letter or digit");
  }
  if (value.size() > 63) return bad("the value must be at most 63 characters");
  for (std::string_view part : {key, value}) {
    for (char c : part) {
      if (!IsLabelChar(c)) return bad("use only letters, digits, '-', '_', '.' and '/'");
    }
  }
  return Status::OK();
}

Result<std::pair<std::string, std::string>> ParseLabel(std::string_view text) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos) {
    return Status::InvalidArgument(fmt::format("label {}: write key=value", QuoteForDisplay(text)));
  }
  std::string key(text.substr(0, eq));
  std::string value(text.substr(eq + 1));
  PGB_RETURN_IF_ERROR(ValidateLabel(key, value));
  return std::make_pair(key, value);
}

}  // namespace pgb
