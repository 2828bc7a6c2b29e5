#include "cli/inputs.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>

#include "common/bytes.h"
#include "engine/names.h"
#include "storage/image.h"

namespace pgb {
namespace {

constexpr const char* kEmpty = "an empty value is not allowed";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

// Every option and positional of `app` and its subcommands, depth first.
void ForEachOption(CLI::App& app, const std::function<void(CLI::Option*)>& visit) {
  for (CLI::Option* opt : app.get_options()) visit(opt);
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    ForEachOption(*sub, visit);
  }
}

}  // namespace

CLI::Validator DecimalIn(int64_t lo, int64_t hi, const std::string& unit) {
  std::string range = fmt::format("{} to {}{}{}", lo, hi, unit.empty() ? "" : " ", unit);
  return CLI::Validator(
      [lo, hi, range](std::string& input) -> std::string {
        if (input.empty()) return kEmpty;
        std::string_view digits(input);
        if (digits.front() == '-') digits.remove_prefix(1);
        if (!AllDigits(digits)) {
          return fmt::format("{} is not a decimal number (write digits 0-9 only)",
                             QuoteForDisplay(input));
        }
        int64_t value = 0;
        auto [end, ec] = std::from_chars(input.data(), input.data() + input.size(), value);
        if (ec != std::errc() || end != input.data() + input.size() || value < lo || value > hi) {
          return fmt::format("{} is out of range: give {}", input, range);
        }
        input = std::to_string(value);
        return "";
      },
      fmt::format("INT in [{} - {}]", lo, hi));
}

namespace {

// A whole number with a unit s, m, h or d, up to 365 days; "never" (0) where `never` is allowed.
CLI::Validator DurationValidator(bool never, std::string what) {
  return CLI::Validator(
      [never, what](std::string& input) -> std::string {
        if (never && input == "never") {
          input = "0";
          return "";
        }
        std::string value = input;
        std::string error;
        try {
          error = CLI::AsNumberWithUnit(
              std::map<std::string, int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
              CLI::AsNumberWithUnit::CASE_SENSITIVE)(value);
        } catch (const CLI::ValidationError& e) {
          error = e.what();
        }
        int64_t seconds = 0;
        bool whole =
            std::from_chars(value.data(), value.data() + value.size(), seconds).ec == std::errc() &&
            value.find_first_not_of("0123456789") == std::string::npos;
        // AsNumberWithUnit reads a bare unit ("m") as one of it: a number must come first.
        bool number_first = !input.empty() && input[0] >= '0' && input[0] <= '9';
        if (!error.empty() || !whole || !number_first || seconds > 365 * 86400 ||
            (!never && seconds == 0)) {
          return fmt::format("{} is not {}: write e.g. 30s, 10m, 2h, 1d{}", input, what,
                             never ? " or never" : "");
        }
        input = value;
        return "";
      },
      "DURATION");
}

}  // namespace

CLI::Validator IdleDuration() { return DurationValidator(true, "an idle time"); }

CLI::Validator Lifetime() { return DurationValidator(false, "a lifetime"); }

CLI::Validator ImageSize() { return SizeAtLeast(kMinImagePoolSize, "an image pool"); }

CLI::Validator SizeAtLeast(uint64_t min_bytes, const std::string& what) {
  return CLI::Validator(
      [min_bytes, what](std::string& input) -> std::string {
        if (input.empty()) return kEmpty;
        // Decimal digits, then letters: AsSizeValue would read the number with base 0 ("0x10G",
        // "010G" is 8G), so it gets the number in canonical decimal.
        std::string_view text(input);
        std::string_view number = text.substr(0, text.find_first_not_of("0123456789"));
        std::string_view unit = text.substr(number.size());
        while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
        bool letters = std::all_of(unit.begin(), unit.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        });
        uint64_t count = 0;
        bool read =
            std::from_chars(number.data(), number.data() + number.size(), count).ec == std::errc();
        std::string bytes = std::to_string(count) + std::string(unit);
        bool converted = false;
        try {
          converted = CLI::AsSizeValue(false)(bytes).empty();
        } catch (const CLI::ValidationError&) {
          // An unknown unit, or a product beyond 64 bits.
        }
        if (number.empty() || !read || !letters || !converted) {
          return fmt::format(
              "{} is not a size: write a whole number with an optional unit, e.g. 20G or 512M "
              "(K, M, G, T: powers of 1024; none: bytes)",
              QuoteForDisplay(input));
        }
        uint64_t value = 0;
        std::from_chars(bytes.data(), bytes.data() + bytes.size(), value);
        if (value < min_bytes) {
          return fmt::format("{} is too small: {} needs at least {}", QuoteForDisplay(input), what,
                             FormatBytes(min_bytes));
        }
        input = bytes;
        return "";
      },
      "SIZE (e.g. 20G)");
}

CLI::Validator PrintableValue() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        if (input.empty()) return kEmpty;
        if (!IsValidUtf8(input)) {
          return fmt::format("{} is not valid UTF-8", QuoteForDisplay(input));
        }
        if (!IsPrintableText(input)) {
          return fmt::format("{} has a control character", QuoteForDisplay(input));
        }
        return "";
      },
      "");
}

void RequirePrintableValues(CLI::App& app) {
  ForEachOption(app, [](CLI::Option* opt) {
    if (opt->get_type_size_max() > 0) opt->check(PrintableValue());
  });
}

std::string UsageErrorMessage(const CLI::App* app, const CLI::Error& error) {
  std::string command;
  for (std::vector<CLI::App*> subs = app->get_subcommands(); !subs.empty();
       subs = subs.front()->get_subcommands()) {
    command += (command.empty() ? "" : " ") + subs.front()->get_name();
  }
  std::string what = error.what();
  std::replace(what.begin(), what.end(), '\n', ' ');
  // One line, like every other error (`<operation> <object>: <cause>`); --help is one flag away.
  return fmt::format("{}: {}\n", command.empty() ? "pgbranch" : command, EscapeForTerminal(what));
}

}  // namespace pgb
