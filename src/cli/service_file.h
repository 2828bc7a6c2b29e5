// Entries of libpq's connection service file (PostgreSQL docs 34.17, "The Connection Service
// File"): `branch url P/B --service` writes one per branch, so that `psql service=P-B` connects
// with no password on any command line.

#ifndef PGBRANCH_CLI_SERVICE_FILE_H_
#define PGBRANCH_CLI_SERVICE_FILE_H_

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace pgb {

// One section of a service file.
struct ServiceEntry {
  std::string name;  // the section, "demo-dev": [A-Za-z0-9_-]+
  // Who made it, written as the comment "# <owner>" on the line after the header; only a
  // section carrying the same comment is ever replaced.
  std::string owner;
  std::vector<std::pair<std::string, std::string>> keywords;  // libpq keywords, in order
};

// "<project>-<branch>": the service name of a branch.
std::string ServiceName(const std::string& project, const std::string& branch);

// Returns `text` (a whole service file, possibly empty) with `entry` in it: the section of the
// same name is replaced in place when its first line is entry.owner's comment, else `entry`
// is appended; every other line stays byte for byte. AlreadyExists if a section of that name
// exists that `entry.owner` did not make (someone's own): "has a section [name] ...".
// InvalidArgument if the name, a keyword or a value cannot be written (a line break, '=' in a
// keyword, a bad name). Pure.
Result<std::string> PutServiceEntry(const std::string& text, const ServiceEntry& entry);

}  // namespace pgb

#endif  // PGBRANCH_CLI_SERVICE_FILE_H_
