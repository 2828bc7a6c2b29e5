#include "common/failpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "common/cancel.h"

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

void PausePoint(std::string_view name) {
  if (!FailpointEnabled(fmt::format("pause:{}", name))) return;
  const char* dir = std::getenv("PGBRANCH_PAUSE_DIR");
  if (dir == nullptr) return;
  std::filesystem::path file = std::filesystem::path(dir) / std::string(name);
  std::ofstream(file).close();
  std::error_code ec;
  for (int i = 0; i < 6000 && std::filesystem::exists(file, ec) && CheckCancelled().ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace pgb
