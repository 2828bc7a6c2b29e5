#include "cli/inputs.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "common/bytes.h"

namespace pgb {
namespace {

// What `validator` makes of `input`: the rewritten value, or "error: <message>".
std::string Apply(CLI::Validator validator, std::string input) {
  std::string error = validator(input);
  return error.empty() ? input : "error: " + error;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool Refused(CLI::Validator validator, const std::string& input) {
  return Apply(std::move(validator), input).rfind("error: ", 0) == 0;
}

// Decimal digits within the bounds pass, rewritten canonically (so CLI11's base-0 conversion
// cannot read "010" as octal 8); hex, octal and binary prefixes, signs, spaces, exponents,
// empty values and numbers outside the bounds (also beyond int64) are refused, naming the range.
TEST(InputsTest, DecimalIn) {
  auto port = [] { return DecimalIn(1024, 65535); };
  EXPECT_EQ(Apply(port(), "8080"), "8080");
  EXPECT_EQ(Apply(port(), "08080"), "8080");
  EXPECT_EQ(Apply(port(), "65535"), "65535");
  for (const char* bad : {"0x1f90", "0X1F90", "0b1", "+8080", " 8080", "8080 ", "8e3", "8080.0", "",
                          "-", "80", "65536", "-8080", "99999999999999999999", "８０８０"}) {
    EXPECT_TRUE(Refused(port(), bad)) << bad;
  }
  EXPECT_EQ(Apply(port(), "0x1f90"),
            "error: \"0x1f90\" is not a decimal number (write digits 0-9 only)");
  EXPECT_EQ(Apply(DecimalIn(0, 36500, "days (100 years)"), "200000"),
            "error: 200000 is out of range: give 0 to 36500 days (100 years)");
  EXPECT_EQ(Apply(DecimalIn(0, 36500, "days (100 years)"), "-1"),
            "error: -1 is out of range: give 0 to 36500 days (100 years)");
  EXPECT_EQ(Apply(DecimalIn(0, 36500), ""), "error: an empty value is not allowed");
  EXPECT_EQ(Apply(DecimalIn(0, 36500), "0"), "0");
}

// Sizes are a decimal number and an optional unit in powers of 1024, rewritten in bytes, and
// at least 1 GiB; "010G" is ten gibibytes, not eight. Zero, negative, fractional, hex, unitless
// small, unknown-unit and overflowing sizes are refused.
TEST(InputsTest, ImageSize) {
  EXPECT_EQ(Apply(ImageSize(), "20G"), std::to_string(20 * kGiB));
  EXPECT_EQ(Apply(ImageSize(), "1g"), std::to_string(kGiB));
  EXPECT_EQ(Apply(ImageSize(), "1 GiB"), std::to_string(kGiB));
  EXPECT_EQ(Apply(ImageSize(), "1024M"), std::to_string(kGiB));
  EXPECT_EQ(Apply(ImageSize(), "010G"), std::to_string(10 * kGiB));
  EXPECT_EQ(Apply(ImageSize(), "1P"), std::to_string(1024 * 1024 * kGiB));
  EXPECT_EQ(Apply(ImageSize(), std::to_string(kGiB)), std::to_string(kGiB));
  for (const char* bad : {"", "0", "-1", "1.5G", "0x10G", "G", "20X", "20 G B", "1023M", "512",
                          "99999999999E", "20G ", "1G\n"}) {
    EXPECT_TRUE(Refused(ImageSize(), bad)) << bad;
  }
  EXPECT_EQ(Apply(ImageSize(), "0"),
            "error: \"0\" is too small: an image pool needs at least 1.0 GiB");
}

// Values must be printable UTF-8: no empty value, no stray byte, no escape sequence or bidi
// override; accents pass.
TEST(InputsTest, PrintableValue) {
  EXPECT_EQ(Apply(PrintableValue(), "caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(Apply(PrintableValue(), ""), "error: an empty value is not allowed");
  EXPECT_EQ(Apply(PrintableValue(), "a\xff"), "error: \"a\\xff\" is not valid UTF-8");
  EXPECT_EQ(Apply(PrintableValue(), "a\x1b[2J"), "error: \"a\\x1b[2J\" has a control character");
  EXPECT_TRUE(Refused(PrintableValue(), "rtl \xe2\x80\xae"));
}

// Given an app with a subcommand whose option and positional take values and a flag that does
// not, RequirePrintableValues refuses an empty value of either (the flag still parses), and
// the usage message names the subcommand path.
TEST(InputsTest, RequirePrintableValuesReachesSubcommands) {
  auto parse = [](std::vector<std::string> args) -> std::string {
    CLI::App app("test", "pgbranch");
    std::string label, ref;
    bool fast = false;
    int days = -1;
    auto* snapshot = app.add_subcommand("snapshot");
    auto* create = snapshot->add_subcommand("create");
    create->add_option("branch", ref);
    create->add_option("--label", label);
    create->add_flag("--fast", fast);
    create->add_option("--days", days)->transform(DecimalIn(0, 36500, "days"));
    RequirePrintableValues(app);
    std::reverse(args.begin(), args.end());
    try {
      app.parse(args);
    } catch (const CLI::ParseError& e) {
      return UsageErrorMessage(&app, e);
    }
    return "ok";
  };
  EXPECT_EQ(parse({"snapshot", "create", "p/main", "--label", "x", "--fast"}), "ok");
  EXPECT_EQ(parse({"snapshot", "create", "p/main", "--label", ""}),
            "snapshot create: --label: an empty value is not allowed\n");
  EXPECT_TRUE(StartsWith(parse({"snapshot", "create", ""}),
                         "snapshot create: branch: an empty value is not allowed\n"));
  EXPECT_TRUE(
      StartsWith(parse({"snapshot", "create", "--days", "200000"}),
                 "snapshot create: --days: 200000 is out of range: give 0 to 36500 days\n"));
  // What CLI11 echoes of the command line is escaped too.
  EXPECT_EQ(parse({"snapshot", "create", "a", "b\x1b[2J"}).find('\x1b'), std::string::npos);
  EXPECT_TRUE(StartsWith(parse({"--nope"}), "pgbranch: "));
}

// Each bad value the issue found, through the real command line: a usage error (exit 2) with
// the reason, before the engine opens, so not even the home directory is created.
TEST(InputsTest, CliRefusesBadValuesBeforeTouchingAnything) {
  char tmpl[] = "/tmp/pgb-inputs-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string home = std::string(tmpl) + "/home";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"snapshot", "cleanup", "--all", "--days", "200000", "--dry-run"}, "out of range"},
      {{"snapshot", "cleanup", "--all", "--days", ""}, "empty value"},
      {{"wal", "cleanup", "p/main", "--days", "200000"}, "out of range"},
      {{"snapshot", "create", "p/main", "--label", "bad \xff"}, "not valid UTF-8"},
      {{"snapshot", "create", "p/main", "--label",
        "\xe2\x80\xae"
        "evil"},
       "control character"},
      {{"branch", "create", "p/x", "--pitr", ""}, "empty value"},
      {{"branch", "create", "p/x", "--snapshot", ""}, "empty value"},
      {{"branch", "create", "p/x", "--parent", ""}, "empty value"},
      {{"branch", "create", "p/x", "--port", "0x1f90"}, "not a decimal number"},
      {{"branch", "reset", "p/x", "--snapshot", "0x2"}, "not a decimal number"},
      {{"project", "create", "p", "--port", "80"}, "out of range"},
      {{"project", "create", "p", "--pg-version", "0x11"}, "not a decimal number"},
      {{"project", "create", "p", "--listen", ""}, "empty value"},
      {{"init", "--image", home + "/pool.img", "--size", "0"}, "too small"},
      {{"init", "--image", home + "/pool.img", "--size", "-1"}, "not a size"},
      {{"init", "--image", ""}, "empty value"},
      {{"init", "--btrfs", ""}, "empty value"},
      {{"init", "--port-range", ""}, "empty value"},
      {{"snapshot", "get", "0x1"}, "not a decimal number"},
      {{"snapshot", "delete", "0"}, "out of range"},
      {{"snapshot", "list", ""}, "empty value"},
      {{"audit", "--limit", "1e3"}, "not a decimal number"},
      {{"branch", "logs", "p/main", "--tail", "0"}, "out of range"},
      {{"image", "build", "--pg-version", "0xf"}, "not a decimal number"},
      {{"image", "build", "--pg-version", "15", "--mirror", ""}, "empty value"},
  };
  for (const auto& [args, why] : cases) {
    std::vector<std::string> argv = {"pgbranch", "--home", home};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    ::testing::internal::CaptureStderr();
    int code = RunCli(static_cast<int>(raw.size()), raw.data());
    std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(code, 2) << EscapeForTerminal(err);
    EXPECT_NE(err.find(why), std::string::npos) << EscapeForTerminal(err);
    EXPECT_FALSE(std::filesystem::exists(home)) << EscapeForTerminal(args.back());
  }
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace pgb

namespace pgb {
namespace {

TEST(IdleDurationTest, UnitsAndNever) {
  CLI::App app;
  std::optional<int64_t> seconds;
  app.add_option("--suspend-after", seconds)->transform(IdleDuration());
  struct Case {
    std::string text;
    std::optional<int64_t> want;  // nullopt: refused
  };
  for (const Case& c : std::vector<Case>{{"30s", 30},
                                         {"10m", 600},
                                         {"2h", 7200},
                                         {"1d", 86400},
                                         {"45", 45},
                                         {"never", 0},
                                         {"0", 0},
                                         {"-5m", std::nullopt},
                                         {"1.5h", std::nullopt},
                                         {"10x", std::nullopt},
                                         {"m", std::nullopt},
                                         {"400d", std::nullopt}}) {
    seconds.reset();
    std::vector<std::string> args = {"--suspend-after", c.text};
    std::reverse(args.begin(), args.end());
    bool parsed = true;
    try {
      app.parse(args);
    } catch (const CLI::ParseError&) {
      parsed = false;
    }
    if (c.want) {
      EXPECT_TRUE(parsed) << c.text;
      EXPECT_EQ(seconds, c.want) << c.text;
    } else {
      EXPECT_FALSE(parsed) << c.text;
    }
  }
}

TEST(LifetimeOptionTest, UnitsButNeverNoneOrZero) {
  for (const auto& [text, want] :
       std::vector<std::pair<std::string, std::optional<int64_t>>>{{"2d", 172800},
                                                                   {"90m", 5400},
                                                                   {"never", std::nullopt},
                                                                   {"0", std::nullopt},
                                                                   {"0h", std::nullopt},
                                                                   {"366d", std::nullopt},
                                                                   {"-1d", std::nullopt}}) {
    CLI::App app;
    std::optional<int64_t> seconds;
    app.add_option("--ttl", seconds)->transform(Lifetime());
    bool parsed = true;
    try {
      app.parse(std::vector<std::string>{text, "--ttl"});
    } catch (const CLI::ParseError& e) {
      parsed = false;
      if (text == "never")
        EXPECT_NE(std::string(e.what()).find("is not a lifetime"), std::string::npos);
    }
    EXPECT_EQ(parsed, want.has_value()) << text;
    if (want) EXPECT_EQ(seconds, want) << text;
  }
}

}  // namespace
}  // namespace pgb
