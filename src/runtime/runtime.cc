#include "runtime/runtime.h"

#include <fmt/format.h>

#include <string_view>
#include <vector>

namespace pgb {

namespace {

bool Contains(const std::string& line, std::string_view what) {
  return line.find(what) != std::string::npos;
}

// "2026-11-21 13:58:11.498 UTC [24135] FATAL:  x" -> "FATAL:  x".
std::string WithoutPrefix(const std::string& line) {
  size_t bracket = line.find("] ");
  if (bracket != std::string::npos && bracket < 48) return line.substr(bracket + 2);
  return line;
}

}  // namespace

std::string LogHighlights(const std::string& log) {
  std::vector<std::string> lines = SplitLines(log);
  // Severe lines, PostgreSQL's usual wording for a cause, the line before a FATAL (where
  // PostgreSQL names the setting or file it objects to) and the DETAIL after it ("The data
  // directory was initialized by PostgreSQL version 17, ...").
  std::vector<bool> keep(lines.size(), false);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    bool fatal = Contains(l, "FATAL:") || Contains(l, "PANIC:");
    if (fatal || Contains(l, "ERROR:") || Contains(l, "WARNING:") || Contains(l, "could not") ||
        Contains(l, "invalid value")) {
      keep[i] = true;
    }
    if (fatal && i > 0) keep[i - 1] = true;
    if (fatal && i + 1 < lines.size() && Contains(lines[i + 1], "DETAIL:")) keep[i + 1] = true;
  }
  std::vector<std::string> picked;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (keep[i]) picked.push_back(WithoutPrefix(lines[i]));
  }
  if (picked.empty() && !lines.empty()) picked.push_back(WithoutPrefix(lines.back()));
  if (picked.size() > 3) picked.erase(picked.begin(), picked.end() - 3);
  return fmt::format("{}", fmt::join(picked, " | "));
}

std::function<Status()> StillRunningCheck(Runtime& runtime, const InstanceSpec& spec) {
  return [&runtime, spec]() -> Status {
    PGB_ASSIGN_OR_RETURN(InstanceStatus st, runtime.Inspect(spec));
    if (st.running) return st.ready ? Status::OK() : Status::Unavailable(st.detail);
    Result<std::string> log = runtime.Logs(spec, 20);
    std::string highlights = log.ok() ? LogHighlights(*log) : "";
    return Status::FailedPrecondition(fmt::format("PostgreSQL exited while starting ({}){}{}",
                                                  st.detail, highlights.empty() ? "" : ": ",
                                                  highlights));
  };
}

}  // namespace pgb
