// How the CLI shows things: step timings, tables, JSON, errors.
//
// Results go to stdout; progress ("▸ Checkpoint 0.03s") and errors go to stderr, so
// `--json` output and `$(pgbranch branch url ...)` stay clean. Colour only when the stream is a
// terminal, TERM is not "dumb" and NO_COLOR is unset (https://no-color.org).

#ifndef PGBRANCH_CLI_OUTPUT_H_
#define PGBRANCH_CLI_OUTPUT_H_

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "engine/json.h"

namespace pgb {

enum class Tone { kPlain, kGood, kWarn, kBad, kDim, kBold };

// One cell of a table: text, escaped for the terminal when printed, and its colour.
struct Cell {
  Cell(std::string t, Tone tn = Tone::kPlain) : text(std::move(t)), tone(tn) {}  // NOLINT
  Cell(const char* t) : text(t) {}                                               // NOLINT
  std::string text;
  Tone tone = Tone::kPlain;
};

class Output : public Progress {
 public:
  explicit Output(bool quiet = false);

  // Progress, on stderr.
  void StepStarted(std::string_view name) override;
  void Step(std::string_view name, std::chrono::nanoseconds took) override;
  void Note(std::string_view message) override;

  // "✔ <message> in 0.11s" after a successful operation, on stderr.
  void Done(std::string_view message, std::chrono::nanoseconds took);
  // "<operation> <object>: <cause>" on stderr, on one line.
  void Error(std::string_view operation, std::string_view object, const Status& status);
  // Step, Note, Done and Error escape their text for the terminal (common/bytes.h
  // EscapeForTerminal): messages quote names, paths and the stderr of commands.

  // `text` in `tone` if stdout is coloured.
  std::string Paint(std::string_view text, Tone tone) const;
  std::string PaintErr(std::string_view text, Tone tone) const;
  // One line as it is: the caller escapes (Shown) what came from a user, a server or the
  // catalog, and paints the rest.
  void Print(std::string_view text);

  // A table with a header row; columns padded to their widest cell, two spaces apart. Every
  // cell is escaped for the terminal, then painted in its tone.
  void Table(const std::vector<std::string>& header, const std::vector<std::vector<Cell>>& rows);
  // Pretty-printed JSON. Never throws: bytes that are not UTF-8 (a label stored before labels
  // were checked) become U+FFFD rather than aborting the command.
  void Json(const nlohmann::json& value);

  bool quiet() const { return quiet_; }

 private:
  bool quiet_;
  bool color_out_;
  bool color_err_;
};

// `text` from a user, a server or the catalog, escaped for a terminal (common/bytes.h).
std::string Shown(std::string_view text);

// Tone of a branch state: running good, stopped warn, failed bad.
Tone StateTone(const std::string& state);

}  // namespace pgb

#endif  // PGBRANCH_CLI_OUTPUT_H_
