// The JSON shapes of the engine's results: one serializer for the CLI's --json and the HTTP API
// (server/api.h), documented in README.md ("JSON output") and api/openapi.json.
// Thread-safe (pure functions).

#ifndef PGBRANCH_ENGINE_JSON_H_
#define PGBRANCH_ENGINE_JSON_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "engine/engine.h"

namespace pgb {

// Which URI a branch's "uri" carries: commands about one branch, which a user runs to reach it
// (create, get, reset, start, stop, rename), carry the password; lists (branch list, project
// get, status) carry it masked as "****", so no listing shows every branch's secret.
enum class UriForm { kWithPassword, kMasked };
nlohmann::json ToJson(const BranchInfo& b, UriForm uri);
// `branch get`: the branch with `limit_bytes`, its space limit as the pool holds it (null: none).
nlohmann::json ToJson(const BranchInfo& b, const std::optional<uint64_t>& limit_bytes);
nlohmann::json ToJson(const WalWindow& w);
nlohmann::json ToJson(const WalInfo& w);
nlohmann::json ToJson(const ProjectInfo& p);
nlohmann::json ToJson(const StatusInfo& s);
nlohmann::json ToJson(const SnapshotInfo& s);
nlohmann::json ToJson(const ScheduleInfo& s);
nlohmann::json ToJson(const OperationInfo& o);
nlohmann::json ToJson(const CatalogBackup& b);

// `pgbranch log --json`, `audit --json`, `doctor --json`, `token list --json`.
nlohmann::json ToJson(const LogEntry& l);
nlohmann::json ToJson(const AuditRow& r);
nlohmann::json ToJson(const DoctorFinding& f);
nlohmann::json ToJson(const TokenInfo& t);
// `snapshot cleanup --json` and `wal cleanup --json`: the report and whether it was a dry run.
nlohmann::json ToJson(const CleanupReport& r, bool dry_run);
nlohmann::json ToJson(const WalCleanupReport& r, bool dry_run);
// A list of any of the above, as a JSON array.
template <typename T, typename... Extra>
nlohmann::json ToJsonArray(const std::vector<T>& items, const Extra&... extra) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& item : items) arr.push_back(ToJson(item, extra...));
  return arr;
}

}  // namespace pgb

#endif  // PGBRANCH_ENGINE_JSON_H_
