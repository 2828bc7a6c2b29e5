#include "cli/output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/time.h"

namespace pgb {
namespace {

bool WantColor(int fd) {
  const char* no_color = std::getenv("NO_COLOR");
  if (no_color && *no_color) return false;
  const char* term = std::getenv("TERM");
  if (term && std::strcmp(term, "dumb") == 0) return false;
  return isatty(fd) == 1;
}

std::string Painted(std::string_view text, Tone tone, bool enabled) {
  if (!enabled || tone == Tone::kPlain) return std::string(text);
  const char* code = "";
  switch (tone) {
    case Tone::kGood:
      code = "32";
      break;
    case Tone::kWarn:
      code = "33";
      break;
    case Tone::kBad:
      code = "31";
      break;
    case Tone::kDim:
      code = "2";
      break;
    case Tone::kBold:
      code = "1";
      break;
    case Tone::kPlain:
      break;
  }
  return fmt::format("\x1b[{}m{}\x1b[0m", code, text);
}

// Display width of a cell: escape sequences take no room, UTF-8 continuation bytes neither.
size_t VisibleWidth(std::string_view s) {
  size_t width = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b') {
      while (i < s.size() && s[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++width;
  }
  return width;
}

template <typename T>
nlohmann::json Optional(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

Output::Output(bool quiet)
    : quiet_(quiet), color_out_(WantColor(STDOUT_FILENO)), color_err_(WantColor(STDERR_FILENO)) {}

std::string Output::Paint(std::string_view text, Tone tone) const {
  return Painted(text, tone, color_out_);
}
std::string Output::PaintErr(std::string_view text, Tone tone) const {
  return Painted(text, tone, color_err_);
}

void Output::Step(std::string_view name, std::chrono::nanoseconds took) {
  if (quiet_) return;
  fmt::print(stderr, "{} {:<12} {}\n", PaintErr("▸", Tone::kDim), name, FormatSeconds(took));
}

void Output::Note(std::string_view message) {
  if (quiet_) return;
  fmt::print(stderr, "{} {}\n", PaintErr("•", Tone::kDim), message);
}

void Output::Done(std::string_view message, std::chrono::nanoseconds took) {
  if (quiet_) return;
  fmt::print(stderr, "{} {} in {}\n", PaintErr("✔", Tone::kGood), message, FormatSeconds(took));
}

void Output::Error(std::string_view operation, std::string_view object, const Status& status) {
  std::string message = status.message();
  std::replace(message.begin(), message.end(), '\n', ' ');
  // The object is what the user typed: shown as is only when it is plainly printable.
  bool printable =
      std::all_of(object.begin(), object.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  std::string shown = printable ? std::string(object) : QuoteForDisplay(object);
  fmt::print(stderr, "{}{}{}: {}\n", PaintErr(operation, Tone::kBad), shown.empty() ? "" : " ",
             shown, message);
}

void Output::Print(std::string_view text) { fmt::print("{}\n", text); }

void Output::Table(const std::vector<std::string>& header,
                   const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  for (size_t c = 0; c < header.size(); ++c) widths[c] = VisibleWidth(header[c]);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], VisibleWidth(row[c]));
    }
  }
  auto line = [&](const std::vector<std::string>& cells, bool is_header) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string cell = is_header ? Paint(cells[c], Tone::kBold) : cells[c];
      out += cell;
      if (c + 1 < cells.size()) out += std::string(widths[c] - VisibleWidth(cells[c]) + 2, ' ');
    }
    fmt::print("{}\n", out);
  };
  line(header, true);
  for (const auto& row : rows) line(row, false);
}

void Output::Json(const nlohmann::json& value) { fmt::print("{}\n", value.dump(2)); }

Tone StateTone(const std::string& state) {
  if (state == kStateRunning) return Tone::kGood;
  if (state == kStateStopped) return Tone::kWarn;
  if (state == kStateFailed) return Tone::kBad;
  return Tone::kPlain;
}

nlohmann::json ToJson(const WalWindow& w) {
  return {{"from_time", w.from_time},
          {"from_lsn", w.from_lsn},
          {"from_snapshot", w.from_snapshot},
          {"to", w.to}};
}

nlohmann::json ToJson(const WalInfo& w) {
  return {
      {"branch", w.branch},
      {"archive_dir", w.archive_dir},
      {"segments", w.segments},
      {"bytes", w.bytes},
      {"oldest_segment", w.oldest_segment.empty() ? nlohmann::json(nullptr)
                                                  : nlohmann::json(w.oldest_segment)},
      {"oldest_at", w.oldest_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.oldest_at)},
      {"newest_segment", w.newest_segment.empty() ? nlohmann::json(nullptr)
                                                  : nlohmann::json(w.newest_segment)},
      {"newest_at", w.newest_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.newest_at)},
      {"running", w.running},
      {"window", w.window ? ToJson(*w.window) : nlohmann::json(nullptr)},
  };
}

nlohmann::json ToJson(const BranchInfo& b) {
  return {
      {"name", b.name},
      {"project", b.project},
      {"parent", b.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.parent)},
      {"state", b.state},
      {"runtime_detail", b.runtime_detail},
      {"port", b.port},
      {"host", b.host},
      {"user", b.user},
      {"uri", b.uri},
      {"size_bytes", Optional(b.size_bytes)},
      {"exclusive_bytes", Optional(b.exclusive_bytes)},
      {"created_at", b.created_at},
      {"started_at", Optional(b.started_at)},
      {"uptime_seconds", Optional(b.uptime_seconds)},
      {"pid", b.pid == 0 ? nlohmann::json(nullptr) : nlohmann::json(b.pid)},
      {"pg_version", b.pg_version},
      {"data_dir", b.data_dir},
      {"log_path", b.log_path},
      {"container", b.container},
      {"snapshot_id", Optional(b.snapshot_id)},
      {"recovery_target", b.recovery_target.empty() ? nlohmann::json(nullptr)
                                                    : nlohmann::json(b.recovery_target)},
      {"recoverable", b.window ? ToJson(*b.window) : nlohmann::json(nullptr)},
  };
}

nlohmann::json ToJson(const BranchInfo& b, const std::optional<uint64_t>& limit_bytes) {
  nlohmann::json json = ToJson(b);
  json["limit_bytes"] = Optional(limit_bytes);
  return json;
}

nlohmann::json ToJson(const ProjectInfo& p) {
  return {
      {"name", p.name},     {"runtime", p.runtime},       {"image", p.image},
      {"pg_version", p.pg_version},
      {"pg_bin", p.pg_bin}, {"created_at", p.created_at}, {"branch_count", p.branch_count},
  };
}

nlohmann::json ToJson(const SnapshotInfo& s) {
  return {
      {"id", s.id},
      {"branch", s.branch},
      {"label", s.label},
      {"implicit", s.implicit},
      {"created_at", s.created_at},
      {"size_bytes", Optional(s.size_bytes)},
      {"logical_bytes", Optional(s.logical_bytes)},
      {"dependents", s.dependents},
      {"name", s.name},
  };
}

nlohmann::json ToJson(const StatusInfo& s) {
  nlohmann::json pool = {
      {"configured", s.pool.configured},
      {"kind", s.pool.kind},
      {"description", s.pool.description},
      {"why", s.pool.why},
      {"atomic_snapshots", s.pool.capabilities.atomic_snapshots},
      {"copy_on_write", s.pool.capabilities.copy_on_write},
  };
  if (s.pool.usage) {
    pool["size_bytes"] = s.pool.usage->size_bytes;
    pool["used_bytes"] = s.pool.usage->used_bytes;
    pool["free_bytes"] = s.pool.usage->free_bytes;
  }
  nlohmann::json projects = nlohmann::json::array();
  for (const auto& p : s.projects) projects.push_back(ToJson(p));
  nlohmann::json branches = nlohmann::json::array();
  for (const auto& b : s.branches) branches.push_back(ToJson(b));
  return {{"home", s.home},
          {"pool", pool},
          {"runtime", {{"kind", "native"}, {"os_user", s.os_user}}},
          {"port_range", FormatPortRange(s.ports)},
          {"projects", projects},
          {"branches", branches}};
}

}  // namespace pgb
