#include "cli/output.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/bytes.h"
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

// Display width of escaped text (no escape sequences left): UTF-8 continuation bytes take no
// room.
size_t VisibleWidth(std::string_view s) {
  return std::count_if(s.begin(), s.end(),
                       [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
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

void Output::StepStarted(std::string_view name) {
  // The start is in the operations record (`pgbranch operations`); a terminal shows the end.
  spdlog::debug("step {} started", name);
}

void Output::Step(std::string_view name, std::chrono::nanoseconds took) {
  if (quiet_) return;
  fmt::print(stderr, "{} {:<12} {}\n", PaintErr("▸", Tone::kDim), Shown(name), FormatSeconds(took));
}

void Output::Note(std::string_view message) {
  if (quiet_) return;
  fmt::print(stderr, "{} {}\n", PaintErr("•", Tone::kDim), Shown(message));
}

void Output::Done(std::string_view message, std::chrono::nanoseconds took) {
  if (quiet_) return;
  fmt::print(stderr, "{} {} in {}\n", PaintErr("✔", Tone::kGood), Shown(message),
             FormatSeconds(took));
}

void Output::Error(std::string_view operation, std::string_view object, const Status& status) {
  std::string message = status.message();
  std::replace(message.begin(), message.end(), '\n', ' ');
  // The object is what the user typed: shown as is only when it is plainly printable.
  bool printable =
      std::all_of(object.begin(), object.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  std::string shown = printable ? std::string(object) : QuoteForDisplay(object);
  fmt::print(stderr, "{}{}{}: {}\n", PaintErr(operation, Tone::kBad), shown.empty() ? "" : " ",
             shown, Shown(message));
}

void Output::Print(std::string_view text) { fmt::print("{}\n", text); }

void Output::Table(const std::vector<std::string>& header,
                   const std::vector<std::vector<Cell>>& rows) {
  std::vector<std::vector<Cell>> shown;
  shown.reserve(rows.size() + 1);
  shown.emplace_back(header.begin(), header.end());
  for (Cell& cell : shown.front()) cell.tone = Tone::kBold;
  for (const auto& row : rows) {
    shown.emplace_back();
    for (const Cell& cell : row) shown.back().emplace_back(Shown(cell.text), cell.tone);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (const auto& row : shown) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], VisibleWidth(row[c].text));
    }
  }
  for (const auto& row : shown) {
    std::string out;
    for (size_t c = 0; c < row.size(); ++c) {
      out += Paint(row[c].text, row[c].tone);
      if (c + 1 < row.size() && c + 1 < widths.size()) {
        out += std::string(widths[c] - VisibleWidth(row[c].text) + 2, ' ');
      }
    }
    fmt::print("{}\n", out);
  }
}

void Output::Json(const nlohmann::json& value) {
  fmt::print("{}\n",
             value.dump(2, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace));
}

std::string Shown(std::string_view text) { return EscapeForTerminal(text); }

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
      {"oldest_segment",
       w.oldest_segment.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.oldest_segment)},
      {"oldest_at", w.oldest_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.oldest_at)},
      {"newest_segment",
       w.newest_segment.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.newest_segment)},
      {"newest_at", w.newest_at.empty() ? nlohmann::json(nullptr) : nlohmann::json(w.newest_at)},
      {"running", w.running},
      {"window", w.window ? ToJson(*w.window) : nlohmann::json(nullptr)},
  };
}

nlohmann::json ToJson(const BranchInfo& b, UriForm uri) {
  return {
      {"name", b.name},
      {"project", b.project},
      {"parent", b.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.parent)},
      {"state", b.state},
      {"runtime_detail", b.runtime_detail},
      {"port", b.port},
      {"host", b.host},
      {"user", b.user},
      {"uri", uri == UriForm::kWithPassword ? b.uri : b.masked_uri},
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
      {"recovery_target",
       b.recovery_target.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.recovery_target)},
      {"recoverable", b.window ? ToJson(*b.window) : nlohmann::json(nullptr)},
      {"active", b.active},
      {"suspend_after_s", Optional(b.suspend_after_s)},
  };
}

nlohmann::json ToJson(const BranchInfo& b, const std::optional<uint64_t>& limit_bytes) {
  nlohmann::json json = ToJson(b, UriForm::kWithPassword);
  json["limit_bytes"] = Optional(limit_bytes);
  return json;
}

nlohmann::json ToJson(const ProjectInfo& p) {
  return {
      {"name", p.name},
      {"runtime", p.runtime},
      {"image", p.image},
      {"pg_version", p.pg_version},
      {"pg_bin", p.pg_bin},
      {"created_at", p.created_at},
      {"branch_count", p.branch_count},
      {"active_branch", p.active_branch},
      {"suspend_after_s", Optional(p.suspend_after_s)},
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

nlohmann::json ToJson(const OperationInfo& o) {
  nlohmann::json steps = nlohmann::json::array();
  for (const auto& st : o.steps) {
    steps.push_back(
        {{"name", st.name},
         {"started_at", st.started_at},
         {"ended_at", st.ended_at.empty() ? nlohmann::json() : nlohmann::json(st.ended_at)}});
  }
  return {
      {"id", o.id},
      {"kind", o.kind},
      {"target", o.target},
      {"state", o.state},
      {"owner_alive", o.owner_alive},
      {"pid", o.pid},
      {"command", o.command},
      {"step", o.step},
      {"steps", steps},
      {"error", o.error},
      {"started_at", o.started_at},
      {"updated_at", o.updated_at},
      {"ended_at", o.ended_at.empty() ? nlohmann::json() : nlohmann::json(o.ended_at)},
      {"journal_left", o.journal_left},
  };
}

nlohmann::json ToJson(const CatalogBackup& b) {
  return {{"path", b.path}, {"at", b.at}, {"bytes", b.bytes}, {"schema_version", b.schema_version}};
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
  for (const auto& b : s.branches) branches.push_back(ToJson(b, UriForm::kMasked));
  return {{"home", s.home},
          {"pool", pool},
          {"runtime", {{"kind", "native"}, {"os_user", s.os_user}}},
          {"port_range", FormatPortRange(s.ports)},
          {"projects", projects},
          {"branches", branches}};
}

}  // namespace pgb
