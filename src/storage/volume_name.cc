#include "storage/volume_name.h"

#include <fmt/format.h>

#include "common/random.h"

namespace pgb {
namespace {

bool HasShape(std::string_view name, char prefix) {
  if (name.size() != 17 || name[0] != prefix) return false;
  for (char c : name.substr(1)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string NewVolumeName() { return "v" + RandomHex(8); }
std::string NewSnapshotName() { return "s" + RandomHex(8); }
bool IsVolumeName(std::string_view name) { return HasShape(name, 'v'); }
bool IsSnapshotName(std::string_view name) { return HasShape(name, 's'); }

Status CheckVolumeName(std::string_view name) {
  if (IsVolumeName(name)) return Status::OK();
  return Status::InvalidArgument(
      fmt::format("invalid volume name \"{}\": expected 'v' and 16 lower-case hex digits", name));
}

Status CheckVolumeOrSnapshotName(std::string_view name) {
  if (IsVolumeName(name) || IsSnapshotName(name)) return Status::OK();
  return Status::InvalidArgument(fmt::format(
      "invalid volume or snapshot name \"{}\": expected 'v' or 's' and 16 lower-case hex digits",
      name));
}

Status CheckSnapshotName(std::string_view name) {
  if (IsSnapshotName(name)) return Status::OK();
  return Status::InvalidArgument(
      fmt::format("invalid snapshot name \"{}\": expected 's' and 16 lower-case hex digits", name));
}

std::string QuarantineEntryName(std::string_view name, TimePoint since) {
  return fmt::format("{}@{}", name, FormatTimestamp(since));
}

std::optional<QuarantineEntry> ParseQuarantineEntryName(std::string_view entry) {
  size_t at = entry.find('@');
  if (at == std::string_view::npos) return std::nullopt;
  std::string_view name = entry.substr(0, at);
  if (!IsVolumeName(name) && !IsSnapshotName(name)) return std::nullopt;
  Result<TimePoint> since = ParseTimestamp(std::string(entry.substr(at + 1)));
  if (!since.ok()) return std::nullopt;
  return QuarantineEntry{std::string(name), *since};
}

}  // namespace pgb
