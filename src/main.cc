// pgbranch: instant copy-on-write branches of PostgreSQL.

#include <sys/stat.h>

#include "cli/cli.h"

int main(int argc, char** argv) {
  // Everything pgbranch creates is private unless it says otherwise (state, logs, images).
  umask(077);
  return pgb::RunCli(argc, argv);
}
