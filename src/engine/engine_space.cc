// Space limits: a full pool never takes down a branch that did not fill it.
//
// Every branch's volume gets a limit on the new data it may write (storage/pool.h
// SetSpaceLimit: Btrfs quota groups, ZFS `quota`), and every main keeps headroom that branches
// cannot take (ReserveSpace: ZFS `refreservation`; on Btrfs a cap on the group of all limited
// volumes). A branch that reaches its limit gets "Disk quota exceeded" in its own server; the
// pool keeps room, so main goes on committing. Pools that cannot limit (reflink, copy) are left
// as they were; `status` and `doctor` say so (through Pool::Describe).
//
// The policy, and why:
//  - Headroom for main: a tenth of the pool, at least 64 MiB and at most 8 GiB. Main must be
//    able to finish what it is doing when branches fill the rest: commit, and reach its next
//    checkpoint, which recycles WAL (max_wal_size is 1 GiB by default). A tenth scales with
//    the pool people chose; 8 GiB covers several checkpoint cycles of a busy main without
//    locking away a large share of a big ZFS pool (refreservation really reserves it); 64 MiB
//    keeps tiny test pools usable.
//  - Default limit of a branch: what is free when it is made, less that headroom. A branch can
//    then use all the room there is, but never the headroom; on Btrfs the group cap makes that
//    hold for all branches together, on ZFS main's refreservation does. A branch with less
//    than 64 MiB of room (its server needs WAL segments of 16 MiB to start) is refused.
//  - A reset keeps the branch's limit (read back from the volume it replaces); nothing is
//    stored outside the pool.

#include <fmt/format.h>

#include <algorithm>

#include "common/bytes.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

constexpr uint64_t kMinHeadroom = 64 * kMiB;
constexpr uint64_t kMaxHeadroom = 8 * kGiB;
constexpr uint64_t kMinBranchLimit = 64 * kMiB;

// The room kept for a main branch's own writes in a pool of `size` bytes.
uint64_t MainHeadroom(uint64_t size) {
  return std::clamp<uint64_t>(size / 10, kMinHeadroom, kMaxHeadroom);
}

}  // namespace

Status Engine::ReserveMainSpace(const BranchRow& main) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  if (!pool->Capabilities().space_reservations) return Status::OK();
  PGB_ASSIGN_OR_RETURN(PoolUsage usage, pool->Usage());
  return pool->ReserveSpace(main.volume, MainHeadroom(usage.size_bytes));
}

Status Engine::LimitBranchSpace(const ProjectRow& project, const BranchRow& row) {
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  PoolCapabilities capabilities = pool->Capabilities();
  if (!capabilities.space_limits) return Status::OK();

  // Renew main's headroom first: on Btrfs it is a cap computed from the usage of now.
  PGB_ASSIGN_OR_RETURN(PoolUsage usage, pool->Usage());
  uint64_t headroom = MainHeadroom(usage.size_bytes);
  PGB_ASSIGN_OR_RETURN(std::optional<BranchRow> main,
                       catalog_->FindBranch(project.id, kMainBranch));
  if (capabilities.space_reservations && main) {
    PGB_RETURN_IF_ERROR(pool->ReserveSpace(main->volume, headroom));
  }

  // A reset: the catalog still points at the volume this one replaces.
  PGB_ASSIGN_OR_RETURN(BranchRow stored, catalog_->GetBranch(row.id));
  if (stored.volume != row.volume) {
    Result<SpaceLimit> old = pool->GetSpaceLimit(stored.volume);
    if (old.ok() && old->limit_bytes) return pool->SetSpaceLimit(row.volume, old->limit_bytes);
  }

  if (usage.free_bytes < headroom + kMinBranchLimit) {
    return Status::ResourceExhausted(fmt::format(
        "the pool is nearly full: {} free of {}, and {} of it is kept for the main branches' "
        "own writes; a branch needs at least {} beyond that: delete branches or snapshots, or "
        "grow the pool",
        FormatBytes(usage.free_bytes), FormatBytes(usage.size_bytes), FormatBytes(headroom),
        FormatBytes(kMinBranchLimit)));
  }
  return pool->SetSpaceLimit(row.volume, usage.free_bytes - headroom);
}

Status Engine::SetBranchSpaceLimit(const BranchRow& row, uint64_t bytes) {
  if (bytes < kMinBranchLimit) {
    return Status::InvalidArgument(
        fmt::format("--max-size {}: a branch needs at least {} (its server writes WAL in "
                    "segments of 16 MiB)",
                    FormatBytes(bytes), FormatBytes(kMinBranchLimit)));
  }
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  return pool->SetSpaceLimit(row.volume, bytes);
}

Result<SpaceLimit> Engine::BranchSpaceLimit(const BranchRef& ref) {
  PGB_ASSIGN_OR_RETURN(ProjectRow project, LoadProject(ref.project));
  PGB_ASSIGN_OR_RETURN(BranchRow row, LoadBranch(project, ref.branch));
  PGB_ASSIGN_OR_RETURN(Pool * pool, RequirePool(false));
  return pool->GetSpaceLimit(row.volume);
}

}  // namespace pgb
