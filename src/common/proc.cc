#include "common/proc.h"

#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/fs.h"

namespace pgb {

std::optional<ProcInfo> ReadProc(pid_t pid) {
  Result<std::string> stat = ReadFile(fmt::format("/proc/{}/stat", pid));
  if (!stat.ok()) return std::nullopt;
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
  const std::string& s = *stat;
  size_t open = s.find('('), close = s.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  ProcInfo info;
  info.comm = s.substr(open + 1, close - open - 1);
  // Fields after comm, counted from 3 (state) as in proc(5); starttime is field 22.
  std::vector<std::string_view> fields;
  std::string_view rest = std::string_view(s).substr(close + 1);
  size_t pos = 0;
  while (pos < rest.size()) {
    while (pos < rest.size() && rest[pos] == ' ') ++pos;
    size_t end = rest.find(' ', pos);
    if (end == std::string_view::npos) end = rest.size();
    if (end > pos) fields.push_back(rest.substr(pos, end - pos));
    pos = end;
  }
  if (fields.size() < 20 || fields[0].empty()) return std::nullopt;
  info.state = fields[0][0];
  std::from_chars(fields[19].data(), fields[19].data() + fields[19].size(), info.start_ticks);
  return info;
}

std::optional<TimePoint> StartTime(unsigned long long start_ticks) {
  Result<std::string> stat = ReadFile("/proc/stat");
  if (!stat.ok()) return std::nullopt;
  size_t pos = stat->find("\nbtime ");
  if (pos == std::string::npos) return std::nullopt;
  long long btime = std::atoll(stat->c_str() + pos + 7);
  long ticks_per_second = sysconf(_SC_CLK_TCK);
  if (btime <= 0 || ticks_per_second <= 0) return std::nullopt;
  auto ms = std::chrono::milliseconds(btime * 1000 + start_ticks * 1000 / ticks_per_second);
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(ms));
}

std::string BootId() {
  Result<std::string> id = ReadFile("/proc/sys/kernel/random/boot_id");
  if (!id.ok()) return "";
  std::string text = *id;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace pgb
