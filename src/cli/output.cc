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

}  // namespace pgb
