#include "storage/pool.h"

#include <fmt/format.h>

#include "storage/btrfs_pool.h"
#include "storage/image.h"
#include "storage/tree_copy.h"
#include "storage/tree_pool.h"
#include "storage/zfs_pool.h"

namespace pgb {
namespace {

// The absolute root of a directory pool ("btrfs", "reflink", "copy").
Result<std::string> DirectoryRoot(const PoolConfig& config) {
  if (config.root.empty()) {
    return Status::InvalidArgument(fmt::format("{} pool without a root directory", config.kind));
  }
  return AbsolutePath(config.root);
}

// How a tree pool of `kind` ("reflink" or "copy") copies files.
CopyMethod TreeCopyMethod(const std::string& kind) {
  return kind == "reflink" ? CopyMethod::kReflink : CopyMethod::kFull;
}

bool IsTreeKind(const std::string& kind) { return kind == "reflink" || kind == "copy"; }

std::string DescribeTreePool(const std::string& kind, const std::string& root) {
  if (kind == "reflink") return fmt::format("reflink directory {}", root);
  return fmt::format("copy directory {} (full copies: slow, no sharing)", root);
}

Status UnknownKind(const PoolConfig& config) {
  return Status::InvalidArgument(fmt::format(
      "unknown pool kind \"{}\"; known kinds: btrfs, zfs, reflink, copy, image", config.kind));
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
    PGB_ASSIGN_OR_RETURN(effective.root, DirectoryRoot(config));
    PGB_RETURN_IF_ERROR(InitBtrfsPoolDirectory(effective.root));
    return effective;
  }
  if (IsTreeKind(config.kind)) {
    PGB_ASSIGN_OR_RETURN(effective.root, DirectoryRoot(config));
    PGB_RETURN_IF_ERROR(InitTreePoolDirectory(effective.root, TreeCopyMethod(config.kind)));
    return effective;
  }
  if (config.kind == "zfs") return CreateZfsPool(config, runner);
  return UnknownKind(config);
}

Result<std::unique_ptr<Pool>> OpenPool(const PoolConfig& config, ProcessRunner& runner) {
  if (config.kind == "image") return OpenImagePool(config, runner);
  if (config.kind == "btrfs") {
    PGB_ASSIGN_OR_RETURN(std::string root, DirectoryRoot(config));
    return OpenBtrfsPool(root, "btrfs", fmt::format("btrfs directory {}", root));
  }
  if (IsTreeKind(config.kind)) {
    PGB_ASSIGN_OR_RETURN(std::string root, DirectoryRoot(config));
    return OpenTreePool(root, TreeCopyMethod(config.kind), config.kind,
                        DescribeTreePool(config.kind, root));
  }
  if (config.kind == "zfs") return OpenZfsPool(config, runner);
  return UnknownKind(config);
}

Status ClosePool(const PoolConfig& config) {
  if (config.kind == "image") return CloseImagePool(config);
  // Directory pools hold nothing mounted; a ZFS dataset belongs to the host's ZFS.
  if (config.kind == "btrfs" || config.kind == "zfs" || IsTreeKind(config.kind)) {
    return Status::OK();
  }
  return UnknownKind(config);
}

}  // namespace pgb
