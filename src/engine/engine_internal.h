// Private to the engine's .cc files: constants and small helpers they share.

#ifndef PGBRANCH_ENGINE_ENGINE_INTERNAL_H_
#define PGBRANCH_ENGINE_ENGINE_INTERNAL_H_

#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "state/catalog.h"

namespace pgb {
namespace internal {

constexpr size_t kPasswordLength = 32;
constexpr uint64_t kMinFreeBytes = 64 * kMiB;     // below this a pool counts as full
constexpr uint64_t kDefaultImageMax = 64 * kGiB;  // the embedded default pool's size cap
constexpr auto kReadyTimeout = std::chrono::seconds(120);
constexpr auto kReadyPoll = std::chrono::milliseconds(1);
constexpr auto kStopTimeout = std::chrono::seconds(60);
constexpr auto kLockWait = std::chrono::seconds(120);

// Catalog setting keys.
constexpr const char* kPoolKind = "pool.kind";
constexpr const char* kPoolRoot = "pool.root";
constexpr const char* kPoolImage = "pool.image";
constexpr const char* kPoolImageSize = "pool.image_size";
constexpr const char* kPoolFs = "pool.fs";
constexpr const char* kPortRange = "ports.range";
constexpr const char* kOsUser = "runtime.os_user";

// A tool's own message from its stderr, for our one-line error: its first error line
// ("psql:mask.sql:2: ERROR:  relation \"nope\" does not exist", "pg_restore: error: ..."),
// else its last line.
std::string ToolErrorLine(const std::string& err);

// The value of the field `label` ("Database cluster state:") in pg_controldata's output, "" if
// absent (its labels are stable across releases; docs "pg_controldata").
std::string ControlDataField(const std::string& text, std::string_view label);

// The client-facing host for a listen address: a wildcard is reached through loopback.
std::string ClientHost(const std::string& listen_address);
// "postgresql://user:password@host:port/database" (an IPv6 host in brackets). `database` goes in
// as given: '/' may stand in a path (docs 34.1.1.2); names pgbranch makes need no escaping.
std::string MakeUri(const std::string& user, const std::string& password, const std::string& host,
                    int port, const std::string& database = "postgres");

// True for a native project whose servers run as its own OS account (engine_users.cc).
bool HasOwnOsUser(const ProjectRow& project);

// The project's WAL segment size in bytes (a copied cluster keeps its source's).
inline uint64_t SegmentSize(const ProjectRow& p) {
  return p.wal_segment_size > 0 ? static_cast<uint64_t>(p.wal_segment_size) : uint64_t{16} << 20;
}

inline std::string Ref(const ProjectRow& p, const BranchRow& b) { return p.name + "/" + b.name; }

inline std::string JoinNames(const ProjectRow& p, const std::vector<BranchRow>& rows) {
  std::vector<std::string> names;
  for (const auto& r : rows) names.push_back(Ref(p, r));
  return fmt::format("{}", fmt::join(names, ", "));
}

constexpr const char* kPoolDataset = "pool.dataset";
// The filesystem of the image pool pgbranch makes when nothing better is there; chosen by the
// figures in README.md ("Which pool is the default").
constexpr const char* kDefaultImageFs = "btrfs";
constexpr const char* kPoolWhy = "pool.why";
// Set in a catalog made anew where the old one was lost; cleared by `catalog restore` (which
// replaces the whole catalog) and by `doctor --adopt`. While set, only those two may open it.
constexpr const char* kCatalogLost = "catalog.lost";
// How the home names what it keeps outside the catalog: "ids" (WAL archives under
// wal/<project id>/, containers pgbranch-<tag>.<project id>.<branch id>), so that a rename
// changes only the catalog, in one transaction; "names" (wal/<project name>/, containers by
// project and branch name) in a home whose projects an older pgbranch made, which keeps them.
// Decided once per home, when a command first opens it (Engine::DecideNaming).
constexpr const char* kNaming = "storage.naming";

// While one lives, the operations the calling thread runs record `command` (operations list,
// audit trail) instead of the engine's (Engine::SetCommand): `serve` names what it does on its
// own ("serve: expire demo/pr-7"). Scopes nest.
class CommandScope {
 public:
  explicit CommandScope(std::string command);
  ~CommandScope();
  CommandScope(const CommandScope&) = delete;
  CommandScope& operator=(const CommandScope&) = delete;
  // The innermost scope's command on this thread; empty outside any.
  static const std::string& Current();

 private:
  std::string previous_;
};

}  // namespace internal
}  // namespace pgb

#endif  // PGBRANCH_ENGINE_ENGINE_INTERNAL_H_
