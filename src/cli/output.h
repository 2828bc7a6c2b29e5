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

// JSON shapes of the engine's results (documented in README.md, "JSON output").
// Which URI a branch's "uri" carries: commands about one branch, which a user runs to reach it
// (create, get, reset, start, stop, rename), carry the password; lists (branch list, project
// get, status) carry it masked as "****", so no listing shows every branch's secret.
enum class UriForm { kWithPassword, kMasked };
nlohmann::json ToJson(const BranchInfo& b, UriForm uri);
// `branch get`: the branch with `limit_bytes`, its space limit as the pool holds it (null: none).
nlohmann::json ToJson(const BranchInfo& b, const std::optional<uint64_t>& limit_bytes);
nlohmann::json ToJson(const WalWindow& w);
nlohmann::json ToJson(const WalInfo& w);
nlohmann::json ToJson(const ProjectInfo& p);
nlohmann::json ToJson(const StatusInfo& s);
nlohmann::json ToJson(const SnapshotInfo& s);
nlohmann::json ToJson(const OperationInfo& o);
nlohmann::json ToJson(const CatalogBackup& b);

// `text` from a user, a server or the catalog, escaped for a terminal (common/bytes.h).
std::string Shown(std::string_view text);

// Tone of a branch state: running good, stopped warn, failed bad.
Tone StateTone(const std::string& state);

}  // namespace pgb

#endif  // PGBRANCH_CLI_OUTPUT_H_
