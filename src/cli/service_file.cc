#include "cli/service_file.h"

#include <fmt/format.h>

#include <string_view>

namespace pgb {

namespace {

std::string_view Trim(std::string_view s) {
  const char* space = " \t\r\n";
  size_t start = s.find_first_not_of(space);
  if (start == std::string_view::npos) return {};
  return s.substr(start, s.find_last_not_of(space) - start + 1);
}

// The section name if `line` is a section header ("[name]", blanks around allowed, as libpq's
// parseServiceFile reads it), else empty.
std::string_view HeaderName(std::string_view line) {
  line = Trim(line);
  if (line.size() < 2 || line.front() != '[' || line.back() != ']') return {};
  return line.substr(1, line.size() - 2);
}

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string ServiceName(const std::string& project, const std::string& branch) {
  return project + "-" + branch;
}

Result<std::string> PutServiceEntry(const std::string& text, const ServiceEntry& entry) {
  if (!ValidName(entry.name)) {
    return Status::InvalidArgument(
        fmt::format("service name \"{}\" is not [A-Za-z0-9_-]+", entry.name));
  }
  if (entry.owner.find_first_of("\r\n") != std::string::npos) {
    return Status::InvalidArgument("a service entry's owner must be one line");
  }
  std::string block = fmt::format("[{}]\n# {}\n", entry.name, entry.owner);
  for (const auto& [key, value] : entry.keywords) {
    if (!ValidName(key) || value.find_first_of("\r\n") != std::string::npos) {
      return Status::InvalidArgument(
          fmt::format("service {}: keyword {} cannot be written on one line", entry.name, key));
    }
    block += fmt::format("{}={}\n", key, value);
  }

  // Lines with their line breaks, so that what is kept is kept exactly.
  std::vector<std::string_view> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t end = rest.find('\n');
    size_t len = end == std::string_view::npos ? rest.size() : end + 1;
    lines.push_back(rest.substr(0, len));
    rest.remove_prefix(len);
  }
  size_t begin = lines.size(), end = lines.size();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (HeaderName(lines[i]) != entry.name) continue;
    begin = i;
    for (end = i + 1; end < lines.size() && HeaderName(lines[end]).empty(); ++end) {
    }
    break;
  }
  std::string out;
  if (begin == lines.size()) {  // not there: appended, a blank line apart from what precedes
    out = text;
    if (!out.empty() && out.back() != '\n') out += '\n';
    if (!out.empty()) out += '\n';
    return out + block;
  }
  std::string_view first = begin + 1 < end ? Trim(lines[begin + 1]) : std::string_view();
  if (first != Trim("# " + entry.owner)) {
    return Status::AlreadyExists(fmt::format(
        "has a section [{}] that pgbranch did not write; rename or remove it", entry.name));
  }
  // The blank lines that separated the old section from the next one stay.
  size_t kept_blank = end;
  while (kept_blank > begin + 1 && Trim(lines[kept_blank - 1]).empty()) --kept_blank;
  for (size_t i = 0; i < begin; ++i) out += lines[i];
  if (!out.empty() && out.back() != '\n') out += '\n';
  out += block;
  for (size_t i = kept_blank; i < lines.size(); ++i) out += lines[i];
  return out;
}

}  // namespace pgb
