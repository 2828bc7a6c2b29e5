// A branch's lifetime and guard: TTL, idle TTL, protection and labels (`branch set`,
// `branch protect`), and the expiry `serve` runs.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

// The longest TTL or idle TTL: the same bound as every day count (common/time.h).
constexpr int64_t kMaxLifetimeSeconds = int64_t{kMaxDays} * 86400;

Status CheckLifetime(const std::string& option, std::optional<int64_t> seconds) {
  if (seconds && (*seconds <= 0 || *seconds > kMaxLifetimeSeconds)) {
    return Status::InvalidArgument(
        fmt::format("{} must be between 1 second and {} days", option, kMaxDays));
  }
  return Status::OK();
}

// The later of two stored timestamps (either may be empty or unreadable: then the other).
std::optional<TimePoint> LaterOf(const std::string& a, const std::string& b) {
  std::optional<TimePoint> out;
  for (const auto* text : {&a, &b}) {
    if (text->empty()) continue;
    auto t = ParseTimestamp(*text);
    if (t.ok() && (!out || *t > *out)) out = *t;
  }
  return out;
}

}  // namespace

Result<LabelFilter> ParseLabelFilter(const std::vector<std::string>& wanted) {
  LabelFilter f;
  for (const auto& w : wanted) {
    if (w.find('=') == std::string::npos) {
      PGB_RETURN_IF_ERROR(ValidateLabel(w, ""));
      f.wanted.emplace_back(w, std::nullopt);
    } else {
      PGB_ASSIGN_OR_RETURN(auto kv, ParseLabel(w));
      f.wanted.emplace_back(kv.first, kv.second);
    }
  }
  return f;
}

bool LabelFilter::Matches(const std::map<std::string, std::string>& labels) const {
  return std::all_of(wanted.begin(), wanted.end(), [&](const auto& w) {
    auto it = labels.find(w.first);
    return it != labels.end() && (!w.second || it->second == *w.second);
  });
}

Status Engine::ApplyLifetime(const BranchCreateOptions& options, BranchRow* row) {
  PGB_RETURN_IF_ERROR(CheckLifetime("--ttl", options.ttl_s));
  PGB_RETURN_IF_ERROR(CheckLifetime("--idle-ttl", options.idle_ttl_s));
  for (const auto& [k, v] : options.labels) PGB_RETURN_IF_ERROR(ValidateLabel(k, v));
  if (options.ttl_s) {
    row->expires_at = FormatTimestamp(env_.clock->Now() + std::chrono::seconds(*options.ttl_s));
  }
  row->idle_ttl_s = options.idle_ttl_s;
  row->is_protected = options.protect;
  row->labels = options.labels;
  return Status::OK();
}

void Engine::DescribeLifetime(const BranchRow& branch, BranchInfo* info) {
  if (!branch.expires_at.empty()) info->expires_at = branch.expires_at;
  info->idle_ttl_s = branch.idle_ttl_s;
  if (branch.idle_ttl_s) {
    if (auto since = LaterOf(branch.created_at, branch.last_active_at)) {
      info->idle_expires_at = FormatTimestamp(*since + std::chrono::seconds(*branch.idle_ttl_s));
    }
  }
  info->is_protected = branch.is_protected;
  info->labels = branch.labels;
}

Result<BranchInfo> Engine::SetBranch(const BranchRef& ref, const BranchChanges& changes) {
  std::string what = "set " + ref.ToString();
  PGB_RETURN_IF_ERROR(CheckLifetime("--ttl", changes.ttl_s));
  PGB_RETURN_IF_ERROR(CheckLifetime("--idle-ttl", changes.idle_ttl_s));
  if (changes.clear_ttl && (changes.ttl_s || changes.idle_ttl_s)) {
    return Status::InvalidArgument("--no-ttl goes alone, without --ttl or --idle-ttl");
  }
  for (const auto& [k, v] : changes.add_labels) PGB_RETURN_IF_ERROR(ValidateLabel(k, v));
  PGB_ASSIGN_OR_RETURN(LockHandle home, HomeShared(what));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/false, nullptr));
  if (changes.clear_ttl) {
    b.row.expires_at.clear();
    b.row.idle_ttl_s.reset();
  }
  if (changes.ttl_s) {
    b.row.expires_at = FormatTimestamp(env_.clock->Now() + std::chrono::seconds(*changes.ttl_s));
  }
  if (changes.idle_ttl_s) b.row.idle_ttl_s = changes.idle_ttl_s;
  for (const auto& k : changes.remove_labels) b.row.labels.erase(k);
  for (const auto& [k, v] : changes.add_labels) b.row.labels[k] = v;
  PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(b.row));
  return Describe(b.project, b.row, SizeMode::kNone);
}

Result<BranchInfo> Engine::ProtectBranch(const BranchRef& ref, bool protect) {
  PGB_ASSIGN_OR_RETURN(LockHandle home,
                       HomeShared((protect ? "protect " : "unprotect ") + ref.ToString()));
  PGB_ASSIGN_OR_RETURN(LockedBranch b, LockBranch(ref, /*require_settled=*/false, nullptr));
  b.row.is_protected = protect;
  PGB_RETURN_IF_ERROR(catalog_->UpdateBranch(b.row));
  return Describe(b.project, b.row, SizeMode::kNone);
}

Status Engine::MarkBranchActive(int64_t branch_id) {
  // Not under the branch's lock: a single-row update of one column, and an operation holding
  // the lock (reset, rename) reads the row again before it writes it.
  return catalog_->SetBranchLastActive(branch_id, FormatTimestamp(env_.clock->Now()));
}

Status Engine::CheckNotProtected(const ProjectRow& project, const std::vector<BranchRow>& rows,
                                 const std::string& doing, bool force) {
  if (force) return Status::OK();
  std::vector<BranchRow> guarded;
  for (const auto& r : rows) {
    if (r.is_protected) guarded.push_back(r);
  }
  if (guarded.empty()) return Status::OK();
  return Status::FailedPrecondition(
      fmt::format("{} {} protected; unprotect with 'pgbranch branch unprotect', or {} with --force",
                  JoinNames(project, guarded), guarded.size() == 1 ? "is" : "are", doing));
}

Result<std::vector<Expiry>> Engine::ExpireBranches() {
  TimePoint now = env_.clock->Now();
  PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
  std::vector<Expiry> out;
  for (const auto& project : projects) {
    PGB_ASSIGN_OR_RETURN(auto branches, catalog_->ListBranches(project.id));
    for (const auto& row : branches) {
      Expiry e;
      e.branch = Ref(project, row);
      if (!row.expires_at.empty()) {
        auto at = ParseTimestamp(row.expires_at);
        if (at.ok() && *at <= now) e.reason = fmt::format("its TTL ended at {}", row.expires_at);
      }
      if (e.reason.empty() && row.idle_ttl_s) {
        auto since = LaterOf(row.created_at, row.last_active_at);
        auto idle = since ? SecondsBetween(*since, now) : std::chrono::seconds(0);
        if (idle.count() >= *row.idle_ttl_s) {
          e.reason = fmt::format("no session for {} (idle TTL {})", FormatAge(idle),
                                 FormatAge(std::chrono::seconds(*row.idle_ttl_s)));
        }
      }
      if (e.reason.empty() || !IsSettledState(row.state)) continue;  // not due, or in an op
      BranchRef ref{project.name, row.name};
      if (!row.parent_id) {
        e.kept_because = "it is the project's main branch";
      } else if (row.is_protected) {
        e.kept_because = fmt::format("it is protected (pgbranch branch unprotect {})", e.branch);
      } else if (auto children = catalog_->ChildBranches(row.id);
                 children.ok() && !children->empty()) {
        e.kept_because = fmt::format("it has child branches ({})", JoinNames(project, *children));
      } else if (e.reason.rfind("no session", 0) == 0 && row.state == kStateRunning) {
        // The idle TTL counts from the last session serve saw; look once more right now.
        auto activity = Activity(ref);
        if (activity.ok() && (activity->client_sessions > 0 || activity->wal_senders > 0)) {
          (void)MarkBranchActive(row.id);
          continue;
        }
      }
      std::string command = fmt::format("serve: expire {} ({})", e.branch, e.reason);
      if (e.kept_because.empty()) {
        CommandScope scope(command);
        Status s = DeleteBranch(ref, /*recursive=*/false, /*force=*/false);
        if (s.ok()) {
          e.deleted = true;
        } else {
          e.kept_because = s.message();
        }
      }
      if (!e.kept_because.empty()) {
        // Said once in the audit trail, not at every look (until the reason changes).
        bool said;
        {
          MutexLock lock(expiry_mu_);
          std::string& last = expiry_kept_[e.branch];
          said = last == e.kept_because;
          last = e.kept_because;
        }
        if (!said) {
          AuditScope scope(command, std::nullopt);
          (void)audit_.Record("expire.kept", e.branch, e.kept_because, [] { return Status::OK(); });
        }
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace pgb
