#include "storage/pool.h"

#include <fmt/format.h>

#include "storage/btrfs_pool.h"
#include "storage/image.h"
#include "storage/zfs_pool.h"

namespace pgb {
namespace {

// The absolute root of a "btrfs" pool.
Result<std::string> BtrfsRoot(const PoolConfig& config) {
  if (config.root.empty()) return Status::InvalidArgument("btrfs pool without a root directory");
  return AbsolutePath(config.root);
}

Status UnknownKind(const PoolConfig& config) {
  return Status::InvalidArgument(
      fmt::format("unknown pool kind \"{}\"; known kinds: btrfs, image, zfs", config.kind));
}

}  // namespace

Result<PoolConfig> CreatePool(const PoolConfig& config, ProcessRunner& runner) {
  PoolConfig effective = config;
  if (config.kind == "image") {
    PGB_RETURN_IF_ERROR(CreateImagePool(config, runner));
    PGB_ASSIGN_OR_RETURN(effective.image, AbsolutePath(config.image));
    PGB_ASSIGN_OR_RETURN(effective.root, AbsolutePath(config.root));
    return effective;
  }
  if (config.kind == "btrfs") {
    PGB_ASSIGN_OR_RETURN(effective.root, BtrfsRoot(config));
    PGB_RETURN_IF_ERROR(InitBtrfsPoolDirectory(effective.root));
    return effective;
  }
  if (config.kind == "zfs") return CreateZfsPool(config, runner);
  return UnknownKind(config);
}

Result<std::unique_ptr<Pool>> OpenPool(const PoolConfig& config, ProcessRunner& runner) {
  if (config.kind == "image") return OpenImagePool(config, runner);
  if (config.kind == "btrfs") {
    PGB_ASSIGN_OR_RETURN(std::string root, BtrfsRoot(config));
    return OpenBtrfsPool(root, "btrfs", fmt::format("btrfs directory {}", root));
  }
  if (config.kind == "zfs") return OpenZfsPool(config, runner);
  return UnknownKind(config);
}

Status ClosePool(const PoolConfig& config) {
  if (config.kind == "image") return CloseImagePool(config);
  if (config.kind == "btrfs") return Status::OK();
  if (config.kind == "zfs") return Status::OK();  // the dataset belongs to the host's ZFS
  return UnknownKind(config);
}

}  // namespace pgb
