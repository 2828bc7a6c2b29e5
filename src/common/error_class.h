// One classification of errors: how each Status code shows at every boundary — the CLI's exit
// status, the HTTP API's status, the proxy's SQLSTATE (PostgreSQL docs, Appendix A "PostgreSQL
// Error Codes"). Nowhere else decides (STYLE.md; DLE's toStatusCode, Neon's ErrorKind).

#ifndef PGBRANCH_COMMON_ERROR_CLASS_H_
#define PGBRANCH_COMMON_ERROR_CLASS_H_

#include "common/status.h"

namespace pgb {

struct ErrorClass {
  StatusCode code;
  int exit_code;         // the CLI's exit status (usage errors exit 2 before anything runs)
  int http_status;       // RFC 9110 status code
  const char* sqlstate;  // five-character SQLSTATE
};

// The class of `code`. Thread-safe (a constant table).
const ErrorClass& Classify(StatusCode code);

// The exit status an interrupted command ends with (128 + SIGINT, as shells report it).
inline constexpr int kExitInterrupted = 130;

}  // namespace pgb

#endif  // PGBRANCH_COMMON_ERROR_CLASS_H_
