#include "common/failpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace pgb {

bool FailpointEnabled(std::string_view name) {
#ifdef PGBRANCH_FAILPOINTS
  const char* list = std::getenv("PGBRANCH_FAILPOINTS");
  if (list == nullptr) return false;
  std::string_view rest(list);
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    if (rest.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
#endif
  (void)name;
  return false;
}

Status Failpoint(std::string_view name) {
  if (FailpointEnabled(name)) return Status::Internal(fmt::format("fail point {}", name));
  return Status::OK();
}

void CrashPoint(std::string_view name) {
  if (FailpointEnabled(name)) _exit(70);
}

}  // namespace pgb
