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

// A tool's own message from its stderr, for our one-line error: its first error line
// ("psql:mask.sql:2: ERROR:  relation \"nope\" does not exist", "pg_restore: error: ..."),
// else its last line.
std::string ToolError(const std::string& err) {
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
  for (const auto& t : options.transforms) {
    PGB_RETURN_IF_ERROR(CheckReadable("the transform", t));
    if (IsDirectory(t)) {
      return Status::InvalidArgument(
          fmt::format("the transform {} is a directory; give an SQL file", QuoteForDisplay(t)));
    }
  }
  // The project's own client tools: the server's bin directory (native), else the host's
  // installation of the same major (containers run the server; the load runs from here).
  std::string bin = IsContainerRuntime(project.runtime)
                        ? fmt::format("/usr/lib/postgresql/{}/bin", project.pg_major)
                        : project.pg_bin;
  std::string pg_restore = JoinPath(bin, "pg_restore");
  if (!PathExists(pg_restore) || !PathExists(JoinPath(bin, "psql"))) {
    return Status::NotFound(fmt::format(
        "--from-dump needs pg_restore and psql of PostgreSQL {} in {} (Debian: apt-get install "
        "postgresql-client-{})",
        project.pg_major, bin, project.pg_major));
  }
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
                    QuoteForDisplay(options.from_dump), project.pg_major, ToolError(r.err)));
  }
  return pg_restore;
}

Status Engine::LoadDump(const ProjectRow& project, const BranchRow& main,
                        const std::string& pg_restore, const ProjectCreateOptions& options) {
  PGB_ASSIGN_OR_RETURN(BranchConnection c, ConnectionOf(BranchRef{project.name, main.name}));
  std::vector<std::pair<std::string, std::string>> env = ConnectionEnv(c);
  // The connection only from the variables above: nothing of the caller's (PGSERVICE,
  // PGPASSWORD, PGOPTIONS) reaches the tools.
  Command restore;
  restore.argv = {pg_restore,        "--exit-on-error", "--no-owner",
                  "--no-privileges", "--jobs",          std::to_string(options.restore_jobs),
                  "--dbname",        "postgres",        options.from_dump};
  restore.env = env;
  restore.clean_env = true;
  restore.timeout = kLoadTimeout;
  PGB_RETURN_IF_ERROR(Timed("Restore", [&]() -> Status {
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(restore));
    if (!r.Succeeded()) {
      return Status::Internal(fmt::format("pg_restore failed: {}", ToolError(r.err)));
    }
    return Status::OK();
  }));
  std::string psql = JoinPath(Dirname(pg_restore), "psql");
  for (const auto& file : options.transforms) {
    Command run;
    // One transaction, stopped at the first error (docs: psql --single-transaction,
    // ON_ERROR_STOP): a failing transform leaves nothing half-applied, and fails the create.
    run.argv = {
        psql,     "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1", "--single-transaction",
        "--file", file};
    run.env = env;
    run.clean_env = true;
    run.timeout = kLoadTimeout;
    PGB_RETURN_IF_ERROR(Timed("Transform", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(CommandResult r, runner_->Run(run));
      if (!r.Succeeded()) {
        return Status::Internal(
            fmt::format("transform {} failed: {}", QuoteForDisplay(file), ToolError(r.err)));
      }
      return Status::OK();
    }));
  }
  return Status::OK();
}

}  // namespace pgb
