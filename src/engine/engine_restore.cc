// `project create P --from-dump FILE [--transform F.sql]...`: a logical load of a pg_dump
// archive into main, with masking transforms, inside the project's create operation.

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fs.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

// How long one restore or transform may take before it is stopped.
constexpr auto kLoadTimeout = std::chrono::hours(24);

}  // namespace

std::string internal::ToolErrorLine(const std::string& err) {
  std::string last;
  size_t at = 0;
  while (at < err.size()) {
    size_t end = err.find('\n', at);
    if (end == std::string::npos) end = err.size();
    std::string line = err.substr(at, end - at);
    if (line.find("ERROR:") != std::string::npos || line.find("error:") != std::string::npos ||
        line.find("FATAL:") != std::string::npos) {
      return line;
    }
    if (!line.empty()) last = line;
    at = end + 1;
  }
  return last;
}

namespace {

Status CheckReadable(const std::string& what, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::InvalidArgument(
        fmt::format("{} {}: {}", what, QuoteForDisplay(path), std::strerror(errno)));
  }
  ::close(fd);
  return Status::OK();
}

}  // namespace

Result<std::string> Engine::CheckDumpLoad(const ProjectRow& project,
                                          const ProjectCreateOptions& options) {
  if (options.restore_jobs < 1 || options.restore_jobs > 64) {
    return Status::InvalidArgument("--jobs must be from 1 to 64");
  }
  PGB_RETURN_IF_ERROR(CheckReadable("the dump", options.from_dump));
  PGB_ASSIGN_OR_RETURN(std::string bin,
                       ClientBinDir(project, "--from-dump", {"pg_restore", "psql"}));
  std::string pg_restore = JoinPath(bin, "pg_restore");
  // pg_restore reads the archive's table of contents: a plain-text dump, a damaged file or an
  // archive from a newer pg_dump is refused here, before anything is made.
  Command list;
  list.argv = {pg_restore, "--list", options.from_dump};
  list.clean_env = true;
  list.timeout = std::chrono::minutes(10);
  PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(list));
  if (!r.Succeeded()) {
    return Status::InvalidArgument(
        fmt::format("the dump {} cannot be restored by PostgreSQL {}: {}",
                    QuoteForDisplay(options.from_dump), project.pg_major, ToolErrorLine(r.err)));
  }
  return pg_restore;
}

Status Engine::LoadDump(const ProjectRow& project, const BranchRow& main,
                        const std::string& pg_restore, const std::string& dump, int jobs) {
  PGB_ASSIGN_OR_RETURN(BranchConnection c, ConnectionOf(BranchRef{project.name, main.name}));
  std::vector<std::pair<std::string, std::string>> env = ConnectionEnv(c);
  // The connection only from the variables above: nothing of the caller's (PGSERVICE,
  // PGPASSWORD, PGOPTIONS) reaches the tools.
  Command restore;
  restore.argv = {pg_restore,        "--exit-on-error", "--no-owner",
                  "--no-privileges", "--jobs",          std::to_string(jobs),
                  "--dbname",        "postgres",        dump};
  restore.env = env;
  restore.clean_env = true;
  restore.timeout = kLoadTimeout;
  PGB_RETURN_IF_ERROR(Timed("Restore", [&]() -> Status {
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(restore));
    if (!r.Succeeded()) {
      return Status::Internal(fmt::format("pg_restore failed: {}", ToolErrorLine(r.err)));
    }
    return Status::OK();
  }));
  return Status::OK();
}

}  // namespace pgb
