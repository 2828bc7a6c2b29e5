// The engine's pool settings: `pgbranch init` and the automatic choice of a pool.

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "common/fs.h"
#include "common/os_user.h"
#include "engine/engine.h"
#include "engine/engine_internal.h"
#include "storage/image.h"
#include "storage/mounts.h"

namespace pgb {
using namespace internal;  // NOLINT: the engine's own private helpers

namespace {

bool IsZfsMount(const MountedFilesystem& fs) {
  return fs.type == "zfs" || fs.type == "fuse.zfs-fuse" ||
         (fs.type == "fuse" && !fs.source.empty() && fs.source[0] != '/');
}

}  // namespace

Result<PoolConfig> Engine::LoadPoolConfig() {
  PGB_ASSIGN_OR_RETURN(auto kind, catalog_->GetSetting(kPoolKind));
  if (!kind) return Status::NotFound("no pool configured");
  PoolConfig config;
  config.kind = *kind;
  auto get = [&](const char* key) -> Result<std::string> {
    PGB_ASSIGN_OR_RETURN(auto value, catalog_->GetSetting(key));
    return value.value_or("");
  };
  PGB_ASSIGN_OR_RETURN(config.root, get(kPoolRoot));
  PGB_ASSIGN_OR_RETURN(config.dataset, get(kPoolDataset));
  PGB_ASSIGN_OR_RETURN(config.image, get(kPoolImage));
  PGB_ASSIGN_OR_RETURN(std::string size, get(kPoolImageSize));
  config.image_size = std::strtoull(size.c_str(), nullptr, 10);
  PGB_ASSIGN_OR_RETURN(config.fs, get(kPoolFs));
  if (config.fs.empty()) config.fs = "btrfs";
  return config;
}

Result<PoolConfig> Engine::ChooseDefaultPool(std::string* why) {
  // The best pool the machine offers, in order: a ZFS dataset or Btrfs where $PGBRANCH_HOME
  // lives (atomic snapshots), a reflink-capable directory there, an image file pgbranch
  // formats itself (root only: it loop-mounts), and plain copies as the last resort.
  const std::string& home = env_.home;
  std::string dir = JoinPath(home, "pool");
  PGB_ASSIGN_OR_RETURN(MountedFilesystem fs, FilesystemOf(home));
  PoolConfig config;
  config.root = dir;
  if (IsZfsMount(fs)) {
    config.kind = "zfs";
    config.dataset = fs.source + "/pgbranch";
    config.root = JoinPath(home, "zfs");
    *why = fmt::format("automatic: {} is on the ZFS dataset {}", home, fs.source);
    return config;
  }
  if (fs.type == "btrfs") {
    config.kind = "btrfs";
    *why = fmt::format("automatic: {} is on Btrfs", home);
    return config;
  }
  // A reflink probe needs the directory; CreatePool removes what it made if the probe fails.
  PGB_RETURN_IF_ERROR(EnsureDir(dir, 0711));
  config.kind = "reflink";
  auto probe = CreatePool(config, *runner_);
  if (probe.ok()) {
    *why = fmt::format("automatic: {} is on {}, which clones files (reflink)", home, fs.type);
    return *probe;
  }
  PGB_RETURN_IF_ERROR(RemoveEmptyDir(dir));
  if (RunningAsRoot()) {
    config.kind = "image";
    config.fs = kDefaultImageFs;
    config.image = JoinPath(home, "pool.img");
    config.root = dir;
    *why = fmt::format(
        "automatic: {} is on {} (no snapshots, no reflinks), so a {} image file pgbranch "
        "formats and loop-mounts",
        home, fs.type, config.fs == "xfs" ? "XFS (reflink)" : "Btrfs");
    return config;
  }
  config.kind = "copy";
  *why = fmt::format(
      "automatic: {} is on {} (no snapshots, no reflinks) and an image pool needs root: full "
      "copies, slow",
      home, fs.type);
  return config;
}

Result<StatusInfo> Engine::Init(const InitOptions& options) {
  CancelScope cancel(env_.cancel);
  // The pool is the home's own business: no other command runs while it is chosen.
  PGB_ASSIGN_OR_RETURN(
      LockHandle home_lock,
      locks_->Home(LockMode::kExclusive, fmt::format("init by pid {}", ::getpid())));
  // Everything is checked before anything is written: a refused init changes nothing.
  std::map<std::string, std::string> settings;
  if (options.port_range) {
    PGB_ASSIGN_OR_RETURN(PortRange range, ParsePortRange(*options.port_range));
    settings[kPortRange] = FormatPortRange(range);
  }
  if (options.os_user) {
    PGB_ASSIGN_OR_RETURN(OsUser user, LookupOsUser(*options.os_user));
    if (user.uid == 0) return Status::InvalidArgument("PostgreSQL refuses to run as root");
    settings[kOsUser] = user.name;
  }
  auto save_settings = [&]() -> Status {
    return catalog_->Transaction([&]() -> Status {
      for (const auto& [key, value] : settings) {
        PGB_RETURN_IF_ERROR(catalog_->SetSetting(key, value));
      }
      return Status::OK();
    });
  };

  int chosen = (options.image ? 1 : 0) + (options.btrfs_dir ? 1 : 0) +
               (options.zfs_dataset ? 1 : 0) + (options.reflink_dir ? 1 : 0) +
               (options.copy_dir ? 1 : 0);
  if (chosen > 1) {
    return Status::InvalidArgument("choose one pool: --image, --btrfs, --zfs, --reflink or --copy");
  }
  if ((options.size_bytes || options.fs) && !options.image) {
    return Status::InvalidArgument("--size and --fs go with --image");
  }
  if (options.size_bytes && *options.size_bytes < kMinImagePoolSize) {
    return Status::InvalidArgument(fmt::format("--size {}: an image pool needs at least {}",
                                               FormatBytes(*options.size_bytes),
                                               FormatBytes(kMinImagePoolSize)));
  }
  const std::string& home = env_.home;
  PoolConfig config;
  std::string why;
  if (options.image) {
    config.kind = "image";
    PGB_ASSIGN_OR_RETURN(config.image, AbsolutePath(*options.image));
    config.root =
        config.image == JoinPath(home, "pool.img") ? JoinPath(home, "pool") : config.image + ".mnt";
    config.fs = options.fs.value_or("btrfs");
    if (config.fs != "btrfs" && config.fs != "xfs") {
      return Status::InvalidArgument(
          fmt::format("--fs {}: an image pool is btrfs or xfs", QuoteForDisplay(config.fs)));
    }
    why = fmt::format("chosen: pgbranch init --image {} --fs {}", config.image, config.fs);
  } else if (options.btrfs_dir || options.reflink_dir || options.copy_dir) {
    config.kind = options.btrfs_dir ? "btrfs" : options.reflink_dir ? "reflink" : "copy";
    const std::string& dir = options.btrfs_dir     ? *options.btrfs_dir
                             : options.reflink_dir ? *options.reflink_dir
                                                   : *options.copy_dir;
    PGB_ASSIGN_OR_RETURN(config.root, AbsolutePath(dir));
    why = fmt::format("chosen: pgbranch init --{} {}", config.kind, config.root);
  } else if (options.zfs_dataset) {
    const std::string& ds = *options.zfs_dataset;
    // ZFS names: components of [A-Za-z0-9_.:-], separated by '/'; no option look-alikes.
    bool valid = !ds.empty() && ds.front() != '/' && ds.back() != '/' && ds.front() != '-' &&
                 ds.find("//") == std::string::npos &&
                 ds.find_first_not_of(
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789_.:-/") == std::string::npos &&
                 ds.find('/') != std::string::npos;
    if (!valid) {
      return Status::InvalidArgument(
          fmt::format("--zfs {}: expected POOL/DATASET (letters, digits, '_', '.', ':', '-')",
                      QuoteForDisplay(ds)));
    }
    if (!RunningAsRoot()) {
      // Every branch is a dataset pgbranch mounts; zfs-allow(8): "Delegations are supported
      // under Linux with the exception of mount, unmount, mountpoint, canmount, rename, and
      // share", so no delegation makes this work for a user.
      return Status::FailedPrecondition(fmt::format(
          "--zfs {}: a ZFS pool needs root, since every branch is a dataset pgbranch mounts and "
          "Linux lets no user mount one ('zfs allow' cannot delegate mount on Linux, "
          "zfs-allow(8)); as root, 'pgbranch setup --user {}' prepares a Btrfs image instead, "
          "or use --reflink DIR or --copy DIR",
          ds, CurrentOsUser().ok() ? CurrentOsUser()->name : "USER"));
    }
    config.kind = "zfs";
    config.dataset = ds;
    config.root = JoinPath(home, "zfs");
    why = fmt::format("chosen: pgbranch init --zfs {}", ds);
  }

  auto existing = LoadPoolConfig();
  bool same = existing.ok() && (config.kind.empty() ||
                                (config.kind == existing->kind && config.root == existing->root &&
                                 config.dataset == existing->dataset));
  if (same) {
    // Nothing to change about the pool; make sure it is usable.
    PGB_RETURN_IF_ERROR(RequirePool(false).status());
    PGB_RETURN_IF_ERROR(save_settings());
    PGB_RETURN_IF_ERROR(WriteHomeMarker());
    return GetStatus();
  }
  if (existing.ok()) {
    PGB_ASSIGN_OR_RETURN(auto projects, catalog_->ListProjects());
    if (!projects.empty()) {
      return Status::FailedPrecondition(fmt::format(
          "a pool is already configured ({}) and holds {} project(s); delete them before "
          "choosing another pool",
          existing->kind == "image" ? existing->image
          : existing->kind == "zfs" ? existing->dataset
                                    : existing->root,
          projects.size()));
    }
  } else if (!existing.status().Is(StatusCode::kNotFound)) {
    return existing.status();
  }

  if (config.kind.empty()) {
    PGB_ASSIGN_OR_RETURN(config, ChooseDefaultPool(&why));
  }
  if (config.kind == "image" && !PathExists(config.image)) {
    if (options.size_bytes) {
      config.image_size = *options.size_bytes;
    } else {
      PGB_ASSIGN_OR_RETURN(config.image_size, DefaultImageSize(config.image, kDefaultImageMax));
    }
  } else if (config.kind == "image") {
    // Adopting an existing image (e.g. a re-created $PGBRANCH_HOME): mounted, not made.
    struct stat st {};
    if (::stat(config.image.c_str(), &st) == 0) config.image_size = st.st_size;
  }
  if (config.kind == "btrfs" || config.kind == "reflink" || config.kind == "copy") {
    if (config.root == JoinPath(home, "pool")) PGB_RETURN_IF_ERROR(EnsureDir(config.root, 0711));
  }

  UndoStack undo;  // a failed init leaves no image behind, so the corrected retry works
  if (config.kind != "image" || !PathExists(config.image)) {
    PGB_RETURN_IF_ERROR(Timed("Pool", [&]() -> Status {
      PGB_ASSIGN_OR_RETURN(config, CreatePool(config, *runner_));
      return Status::OK();
    }));
    if (config.kind == "image") {
      undo.Push("remove the new image", [this, config] {
        {
          MutexLock lock(init_mu_);
          if (pool_) retired_pools_.push_back(std::move(pool_));
        }
        return RemoveImagePool(config);
      });
    }
  }
  PGB_ASSIGN_OR_RETURN(std::unique_ptr<Pool> pool, OpenPool(config, *runner_));
  std::string described = pool->Describe();
  {
    MutexLock lock(init_mu_);
    if (pool_) retired_pools_.push_back(std::move(pool_));
    pool_ = NewAuditedPool(std::move(pool), audit_);
  }
  Note(fmt::format("pool: {} ({})", described, why));
  settings[kPoolKind] = config.kind;
  settings[kPoolRoot] = config.root;
  settings[kPoolDataset] = config.dataset;
  settings[kPoolImage] = config.image;
  settings[kPoolImageSize] = std::to_string(config.image_size);
  settings[kPoolFs] = config.fs;
  settings[kPoolWhy] = why;
  Status saved = save_settings();
  if (saved.ok()) saved = WriteHomeMarker();
  if (!saved.ok()) return undo.Rollback(saved);
  undo.Commit();
  return GetStatus();
}

}  // namespace pgb
