#include "engine/locks.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/fs.h"

namespace pgb {
namespace {

struct Held {
  LockLevel level;
  int64_t id;
};

// What the calling thread holds, in the order taken.
thread_local std::vector<Held> held_locks;

const char* LevelName(LockLevel level) {
  switch (level) {
    case LockLevel::kHome:
      return "home";
    case LockLevel::kProject:
      return "project";
    case LockLevel::kBranch:
      return "branch";
  }
  return "?";
}

// OK when taking (level, id) now keeps the hierarchy; Internal naming the violation otherwise.
Status CheckOrder(LockLevel level, int64_t id) {
  for (const Held& h : held_locks) {
    if (h.level == level && h.id == id) {
      return Status::Internal(
          fmt::format("lock order: {} {} is already held by this thread", LevelName(level), id));
    }
    bool ok = static_cast<int>(h.level) < static_cast<int>(level) ||
              (h.level == LockLevel::kBranch && level == LockLevel::kBranch && h.id < id);
    if (!ok) {
      return Status::Internal(fmt::format("lock order: {} {} taken while holding {} {}",
                                          LevelName(level), id, LevelName(h.level), h.id));
    }
  }
  return Status::OK();
}

}  // namespace

HeldLock::HeldLock(std::unique_ptr<FileLock> lock, LockLevel level, int64_t id)
    : lock_(std::move(lock)), level_(level), id_(id) {
  held_locks.push_back({level, id});
}

HeldLock::~HeldLock() {
  auto it = std::find_if(held_locks.rbegin(), held_locks.rend(),
                         [&](const Held& h) { return h.level == level_ && h.id == id_; });
  if (it != held_locks.rend()) held_locks.erase(std::next(it).base());
  lock_.reset();
}

Locks::Locks(std::string dir, std::function<void(const std::string&)> on_wait)
    : dir_(std::move(dir)), on_wait_(std::move(on_wait)) {}

Result<LockHandle> Locks::Take(LockLevel level, int64_t id, const std::string& file, LockMode mode,
                               const std::string& what, const std::string& holder,
                               std::chrono::milliseconds wait) {
  PGB_RETURN_IF_ERROR(CheckOrder(level, id));
  FileLock::Options options;
  options.mode = mode;
  options.wait = wait;
  options.what = what;
  options.holder = mode == LockMode::kExclusive ? holder : "";
  options.on_wait = on_wait_;
  PGB_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> lock,
                       FileLock::Acquire(JoinPath(dir_, file), options));
  return std::make_unique<HeldLock>(std::move(lock), level, id);
}

Result<LockHandle> Locks::Home(LockMode mode, const std::string& holder,
                               std::chrono::milliseconds wait) {
  return Take(LockLevel::kHome, 0, "home.lock", mode, "the pgbranch home", holder, wait);
}

Result<LockHandle> Locks::Project(int64_t project_id, const std::string& project_name,
                                  const std::string& holder, std::chrono::milliseconds wait) {
  return Take(LockLevel::kProject, project_id, fmt::format("project-{}.lock", project_id),
              LockMode::kExclusive, fmt::format("project {}", project_name), holder, wait);
}

Result<LockHandle> Locks::Branch(int64_t branch_id, const std::string& branch_ref,
                                 const std::string& holder, std::chrono::milliseconds wait) {
  return Take(LockLevel::kBranch, branch_id, fmt::format("branch-{}.lock", branch_id),
              LockMode::kExclusive, branch_ref, holder, wait);
}

void Locks::RemoveProjectLock(int64_t project_id) {
  ::unlink(JoinPath(dir_, fmt::format("project-{}.lock", project_id)).c_str());
}

void Locks::RemoveBranchLock(int64_t branch_id) {
  ::unlink(JoinPath(dir_, fmt::format("branch-{}.lock", branch_id)).c_str());
}

std::string Locks::HeldByThisThread() {
  std::vector<std::string> parts;
  for (const Held& h : held_locks) {
    parts.push_back(h.level == LockLevel::kHome ? "home"
                                                : fmt::format("{}:{}", LevelName(h.level), h.id));
  }
  return fmt::format("{}", fmt::join(parts, ","));
}

}  // namespace pgb
