// Names of volumes and snapshots in a pool: computed here and nowhere else.
//
// Names are random ("v" or "s" + 16 hex digits), never derived from user input, so a project
// or branch name never reaches a path, a dataset name or an argv of a storage command, and a
// rename never moves data. The catalog maps branches and snapshots to these names.

#ifndef PGBRANCH_STORAGE_VOLUME_NAME_H_
#define PGBRANCH_STORAGE_VOLUME_NAME_H_

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/time.h"

namespace pgb {

// A fresh volume name, "v3f9a0c1d2e4b5a69".
std::string NewVolumeName();

// A fresh snapshot name, "s0a1b2c3d4e5f6071".
std::string NewSnapshotName();

// True for names of the shape above: a 'v' or 's' and 16 lower-case hex digits. Backends
// reject anything else with InvalidArgument before touching the filesystem.
bool IsVolumeName(std::string_view name);
bool IsSnapshotName(std::string_view name);

// OK for such names; InvalidArgument saying what was expected otherwise.
Status CheckVolumeName(std::string_view name);
Status CheckSnapshotName(std::string_view name);
// OK for a volume or a snapshot name; InvalidArgument otherwise.
Status CheckVolumeOrSnapshotName(std::string_view name);

// ---- Quarantine (Pool::Quarantine) ----------------------------------------------------------

// The directory below a pool's root that holds quarantined objects.
inline constexpr const char* kQuarantineDir = "quarantine";

// Where quarantined object `name` goes below kQuarantineDir: "<name>@<since>" with the time as
// common/time.h FormatTimestamp writes it, "v3f9a0c1d2e4b5a69@2026-11-21T14:30:00.123Z", so the
// pool itself says when (the catalog may be what was lost) and people can read it.
std::string QuarantineEntryName(std::string_view name, TimePoint since);

struct QuarantineEntry {
  std::string name;  // a volume or snapshot name
  TimePoint since;
};

// Parses what QuarantineEntryName writes; nullopt for anything else (never ours to touch).
std::optional<QuarantineEntry> ParseQuarantineEntryName(std::string_view entry);

}  // namespace pgb

#endif  // PGBRANCH_STORAGE_VOLUME_NAME_H_
