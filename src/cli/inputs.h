// What people type, checked before anything runs: CLI11 validators that refuse a bad value with
// a message saying what to write instead (a usage error, exit 2), so a refused command changes
// nothing.
//
// CLI11's own conversions are lenient where a mistake costs data: integers go through strtoll
// with base 0 ("0x1f90" is 8080, "010" is 8, " 5" and "+5" pass), an empty value becomes 0
// ("--days ''" deleted snapshots), and an empty string option is indistinguishable from one
// left out. These validators accept decimal digits only, within bounds, and hand CLI11 the
// number in its canonical form; every value, named or positional, must be printable UTF-8.

#ifndef PGBRANCH_CLI_INPUTS_H_
#define PGBRANCH_CLI_INPUTS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

namespace pgb {

// A whole decimal number from `lo` to `hi`: digits 0-9, optionally after '-', nothing else. On
// success rewrites the value in canonical decimal ("08080" -> "8080"), so CLI11's base-0
// conversion that follows cannot read it as octal. Use with Option::transform. `unit` follows
// the bounds in messages ("days (100 years)").
CLI::Validator DecimalIn(int64_t lo, int64_t hi, const std::string& unit = "");

// The size of an image pool: a whole decimal number with an optional unit that
// CLI::AsSizeValue converts (K, M, G, T, P, E and KiB.. forms, powers of 1024; none means
// bytes), at least kMinImagePoolSize. Rewrites the value as a number of bytes. Use with
// Option::transform.
CLI::Validator ImageSize();
// The same for any size of at least `min_bytes`; `what` names it in messages ("a branch").
CLI::Validator SizeAtLeast(uint64_t min_bytes, const std::string& what);

// An idle time for --suspend-after: a whole number with a unit s, m, h or d (CLI11's
// AsNumberWithUnit; none means seconds), or "never" (0). Rewrites the value as seconds.
CLI::Validator IdleDuration();
// A lifetime for --ttl and --idle-ttl: the same forms, up to 365 days, but not 0 or "never".
CLI::Validator Lifetime();

// Printable text: not empty, well-formed UTF-8, no control character (common/bytes.h
// IsPrintableText). Such a value can reach a terminal, a log and JSON unchanged.
CLI::Validator PrintableValue();

// Adds PrintableValue to every option and positional argument of `app` and of all its
// subcommands that takes a value (flags take none), after the checks they already have.
void RequirePrintableValues(CLI::App& app);

// The message of a usage error, for App::failure_message: "<command>: <what>" on one line,
// escaped for the terminal, one line only. <command> is the subcommand path that was
// being parsed ("snapshot cleanup"), or "pgbranch".
std::string UsageErrorMessage(const CLI::App* app, const CLI::Error& error);

}  // namespace pgb

#endif  // PGBRANCH_CLI_INPUTS_H_
