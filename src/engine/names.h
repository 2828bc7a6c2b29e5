// Project and branch names, and "project/branch" references.
//
// A name is 1-63 characters of lowercase ASCII letters, digits, '-' and '_', starting with a
// letter or digit: safe as a file name component, a PostgreSQL cluster_name, a container name
// and a URL path segment, and unable to smuggle in a path ("..", "/"), an option ("-x") or
// shell syntax. Names are checked before anything is created. (63 is PostgreSQL's NAMEDATALEN-1
// and a DNS label's limit.)

#ifndef PGBRANCH_ENGINE_NAMES_H_
#define PGBRANCH_ENGINE_NAMES_H_

#include <string>
#include <string_view>

#include "common/status.h"

namespace pgb {

inline constexpr size_t kMaxNameLength = 63;
inline constexpr const char* kMainBranch = "main";

// OK for a valid name; InvalidArgument explaining the rule otherwise. `what` is "project" or
// "branch", for the message.
Status ValidateName(std::string_view what, std::string_view name);

struct BranchRef {
  std::string project;
  std::string branch;
  std::string ToString() const { return project + "/" + branch; }
};

// Parses "project/branch"; both parts validated. InvalidArgument for anything else.
Result<BranchRef> ParseBranchRef(std::string_view text);

// A label on a branch (`--label key=value`), as Kubernetes labels are written: the key 1-63
// characters of ASCII letters, digits, '-', '_', '.' and '/', starting with a letter or digit;
// the value 0-63 of the same (empty allowed). InvalidArgument naming the rule otherwise.
Status ValidateLabel(std::string_view key, std::string_view value);
// Parses "key=value" (ValidateLabel); InvalidArgument otherwise.
Result<std::pair<std::string, std::string>> ParseLabel(std::string_view text);

// `text` made safe to print in a message: printable ASCII kept, anything else (control
// characters, escape sequences, non-ASCII bytes) shown as \xNN, and cut at 80 characters.
std::string QuoteForDisplay(std::string_view text);

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_NAMES_H_
