// The pgbranch command line (CLI11). Thin: parses, calls the engine, prints.

#ifndef PGBRANCH_CLI_CLI_H_
#define PGBRANCH_CLI_CLI_H_

namespace pgb {

// Runs one pgbranch invocation. Returns the process exit code: 0 on success, 1 when the
// operation failed (after printing "<operation> <object>: <cause>" on stderr), 2 on a usage
// error.
int RunCli(int argc, char** argv);

}  // namespace pgb

#endif  // PGBRANCH_CLI_CLI_H_
