#include "storage/zfs_pool.h"

#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/statfs.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/mutex.h"
#include "common/thread_annotations.h"
#include "common/time.h"
#include "common/undo.h"
#include "storage/volume_name.h"

namespace pgb {
namespace {

constexpr mode_t kPoolDirMode = 0711;
constexpr mode_t kVolumeMode = 0700;
constexpr const char* kRecordSize = "recordsize=8k";
// Compression algorithms to try, best first: zfs-fuse and OpenZFS pools without the
// lz4_compress feature refuse lz4.
constexpr const char* kCompressions[] = {"lz4", "lzjb"};
// zfs commands take milliseconds; this only stops a hung ZFS daemon from hanging us.
constexpr std::chrono::milliseconds kCommandTimeout{60'000};
// How long to retry a command that says "is busy" (zfs-fuse, just after an unmount).
constexpr std::chrono::milliseconds kBusyRetryBudget{3'000};
// A user property marking a volume that was destroyed while snapshots of it remained: it is
// unmounted and hidden, and goes with its last snapshot (DestroyVolume, DestroySnapshot).
constexpr const char* kRetiredProperty = "pgbranch:retired";
// A user property marking a quarantined volume or snapshot (pool.h Quarantine); its value is when
// (common/time.h FormatTimestamp). Only a value set on the object itself counts: ZFS hands a
// dataset's user properties down to its snapshots ("inherited from"), so a quarantined volume's
// snapshots show its value too. Hence `zfs get -s local`, never a column of `zfs list`.
constexpr const char* kQuarantinedProperty = "pgbranch:quarantined";
// On an adopted volume: the dataset's name before AdoptVolume renamed it (ReleaseVolume's way
// back).
constexpr const char* kAdoptedProperty = "pgbranch:adopted";
// <root>/quarantine, where quarantined objects are mounted: only root passes.
constexpr mode_t kQuarantineDirMode = 0700;

// Why a zfs-fuse pool has no space limits (measured with Debian's zfs-fuse 0.7.0: a clone with
// recordsize=8k and lzjb compression, quota 24 MiB in a 256 MiB pool and 100 MiB in a 1.5 GiB
// one, written with dd until it fails: the daemon exits, and every dataset with it). A limit
// would turn one branch reaching it into every branch and main losing their storage. A
// reservation would only move the point where the pool counts as full, and zfs-fuse is known
// to die on a full pool too (tests/e2e/conformance_e2e_test.cc, FullPoolRefusesBranch).
constexpr const char* kZfsFuseNoLimits =
    "zfs-fuse's daemon dies when a dataset reaches its quota or the pool fills, taking every "
    "branch with it; OpenZFS enforces quotas";

bool Contains(std::string_view text, std::string_view needle) {
  return text.find(needle) != std::string_view::npos;
}

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  for (;;) {
    size_t end = line.find('\t', start);
    fields.push_back(line.substr(start, end == std::string::npos ? end : end - start));
    if (end == std::string::npos) return fields;
    start = end + 1;
  }
}

// ---- Running zfs and zpool ----------------------------------------------------------------

Command ToolCommand(const char* program, std::vector<std::string> args) {
  Command command;
  command.argv.reserve(args.size() + 1);
  command.argv.emplace_back(program);
  for (auto& arg : args) command.argv.push_back(std::move(arg));
  command.env = {{"LC_ALL", "C"}};  // the messages we match are the untranslated ones
  command.timeout = kCommandTimeout;
  return command;
}

// Runs a zfs or zpool command. A non-zero exit is a successful Run (see ProcessRunner); a
// missing program is FailedPrecondition naming the packages that bring it.
Result<CommandResult> RunTool(ProcessRunner& runner, const Command& command) {
  Result<CommandResult> result = runner.Run(command);
  if (!result.ok() && result.status().Is(StatusCode::kNotFound)) {
    return Status::FailedPrecondition(fmt::format(
        "the {} command is not installed; install ZFS (Debian: zfsutils-linux for OpenZFS, or "
        "zfs-fuse)",
        command.argv[0]));
  }
  return result;
}

// The Status of a failed zfs/zpool command: CommandFailed with argv and stderr (CommandStatus),
// its code refined from the message, the only channel these commands have.
Status ToolFailure(const Command& command, const CommandResult& result) {
  Status status = CommandStatus(command, result);
  const std::string& err = result.err;
  const std::string& message = status.message();
  if (Contains(err, "out of space")) {
    return Status::ResourceExhausted(fmt::format(
        "{}: the pool is full; delete branches or snapshots, or grow the pool", message));
  }
  if (Contains(err, "zfs-fuse daemon is running") || Contains(err, "modules are not loaded") ||
      Contains(err, "failed to initialize ZFS library")) {
    return Status::FailedPrecondition(fmt::format(
        "{} (ZFS is not available: start the zfs-fuse daemon, or load the zfs module)", message));
  }
  if (Contains(err, "does not exist") || Contains(err, "no such pool")) {
    return Status::NotFound(message);
  }
  if (Contains(err, "already exists")) return Status::AlreadyExists(message);
  // Dataset names pgbranch accepts hold no spaces, so " is busy" comes from the message.
  if (Contains(err, " is busy")) return Status::Unavailable(message);
  return status;
}

enum class OnBusy { kFail, kRetry };

// Runs `program args...` and returns its stdout, or ToolFailure. With OnBusy::kRetry, a command
// that fails because something "is busy" is retried with backoff for up to kBusyRetryBudget.
Result<std::string> RunZfsTool(ProcessRunner& runner, const char* program,
                               std::vector<std::string> args, OnBusy on_busy = OnBusy::kFail) {
  const Command command = ToolCommand(program, std::move(args));
  const auto deadline = std::chrono::steady_clock::now() + kBusyRetryBudget;
  std::chrono::milliseconds backoff{50};
  for (;;) {
    PGB_ASSIGN_OR_RETURN(CommandResult result, RunTool(runner, command));
    if (result.Succeeded()) return std::move(result.out);
    const auto now = std::chrono::steady_clock::now();
    if (on_busy == OnBusy::kFail || !Contains(result.err, " is busy") || now >= deadline) {
      return ToolFailure(command, result);
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(backoff, deadline - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

Result<std::string> Zfs(ProcessRunner& runner, std::vector<std::string> args,
                        OnBusy on_busy = OnBusy::kFail) {
  return RunZfsTool(runner, "zfs", std::move(args), on_busy);
}

// Destroys dataset or snapshot `name` (no -r, no -R); a missing one is OK.
Status DestroyIfExists(ProcessRunner& runner, const std::string& name) {
  Status status = Zfs(runner, {"destroy", name}, OnBusy::kRetry).status();
  if (status.Is(StatusCode::kNotFound)) return Status::OK();
  return status;
}

// `zfs create <options...> -o recordsize=8k -o compression=C <name>`, trying the algorithms of
// kCompressions from *compression on while ZFS refuses them; *compression keeps the one that
// worked. AlreadyExists if `name` exists. If zfs fails after creating the dataset (it could not
// mount it), the dataset is destroyed again.
Status CreateDataset(ProcessRunner& runner, const std::vector<std::string>& options,
                     const std::string& name, std::string* compression) {
  auto first = std::find(std::begin(kCompressions), std::end(kCompressions), *compression);
  for (auto it = first == std::end(kCompressions) ? std::begin(kCompressions) : first;
       it != std::end(kCompressions); ++it) {
    std::vector<std::string> args = {"create"};
    args.insert(args.end(), options.begin(), options.end());
    args.insert(args.end(), {"-o", kRecordSize, "-o", fmt::format("compression={}", *it), name});
    const Command command = ToolCommand("zfs", std::move(args));
    PGB_ASSIGN_OR_RETURN(CommandResult result, RunTool(runner, command));
    if (result.Succeeded()) {
      *compression = *it;
      return Status::OK();
    }
    // zfs-fuse: "'compression' must be one of ..."; OpenZFS without the lz4_compress feature:
    // "pool must be upgraded to set this property or value".
    bool refused = Contains(result.err, "compression") || Contains(result.err, "upgraded");
    if (refused && std::next(it) != std::end(kCompressions)) continue;
    Status status = ToolFailure(command, result);
    // "filesystem successfully created, but not mounted": leave nothing behind.
    if (!status.Is(StatusCode::kAlreadyExists) && Contains(result.err, "successfully created")) {
      (void)DestroyIfExists(runner, name);
    }
    return status;
  }
  return Status::Internal("no compression algorithm to try");
}

// Mounts every filesystem of `listing` (lines "name\tmountpoint\tmounted\tcanmount" of `zfs
// list`) that is not mounted and may be (retired volumes have canmount=off), in listing order
// (parents first). A filesystem mounted meanwhile is fine.
Status MountUnmounted(ProcessRunner& runner, const std::string& listing) {
  for (const std::string& line : SplitLines(listing)) {
    std::vector<std::string> f = SplitTabs(line);
    if (f.size() < 3 || f[2] != "no" || f[1].empty() || f[1][0] != '/') continue;
    if (f.size() >= 4 && f[3] == "off") continue;
    // zfs-fuse answers "mountpoint or dataset is busy" for a while after an unmount.
    Status status = Zfs(runner, {"mount", f[0]}, OnBusy::kRetry).status();
    if (!status.ok() && !Contains(status.message(), "already mounted")) return status;
  }
  return Status::OK();
}

// Numeric properties of a dataset or snapshot, by name ("used" -> bytes). Properties this ZFS
// does not know (zfs-fuse: written, logicalreferenced) are left out and added to *unknown, so
// later calls do not ask again. NotFound if `name` does not exist.
Result<std::map<std::string, uint64_t>> GetSizes(ProcessRunner& runner, const std::string& name,
                                                 const std::vector<std::string>& wanted,
                                                 std::set<std::string>* unknown) {
  for (;;) {
    std::vector<std::string> props;
    for (const std::string& p : wanted) {
      if (!unknown->contains(p)) props.push_back(p);
    }
    const Command command = ToolCommand("zfs", {"get", "-H", "-p", "-o", "property,value",
                                                fmt::format("{}", fmt::join(props, ",")), name});
    PGB_ASSIGN_OR_RETURN(CommandResult result, RunTool(runner, command));
    if (!result.Succeeded()) {
      // "bad property list: invalid property 'written'"
      constexpr std::string_view kInvalid = "invalid property '";
      size_t at = result.err.find(kInvalid);
      if (at != std::string::npos) {
        size_t start = at + kInvalid.size();
        std::string prop = result.err.substr(start, result.err.find('\'', start) - start);
        if (std::find(props.begin(), props.end(), prop) != props.end() && props.size() > 1) {
          unknown->insert(prop);
          continue;
        }
      }
      return ToolFailure(command, result);
    }
    std::map<std::string, uint64_t> sizes;
    for (const std::string& line : SplitLines(result.out)) {
      std::vector<std::string> f = SplitTabs(line);
      if (f.size() != 2) continue;
      uint64_t value = 0;
      auto [end, ec] = std::from_chars(f[1].data(), f[1].data() + f[1].size(), value);
      if (ec == std::errc() && end == f[1].data() + f[1].size()) sizes[f[0]] = value;
    }
    return sizes;
  }
}

// A size that ZFS must have reported.
Result<uint64_t> Need(const std::map<std::string, uint64_t>& sizes, const std::string& prop,
                      const std::string& name) {
  auto it = sizes.find(prop);
  if (it == sizes.end()) {
    return Status::Internal(fmt::format("zfs get reported no {} for {}", prop, name));
  }
  return it->second;
}

// ---- The pool -----------------------------------------------------------------------------

class ZfsPool : public Pool {
 public:
  // `fuse`: the datasets are served by zfs-fuse rather than the kernel's OpenZFS.
  ZfsPool(std::string dataset, std::string root, bool fuse, ProcessRunner& runner)
      : dataset_(std::move(dataset)), root_(std::move(root)), fuse_(fuse), runner_(runner) {}

  std::string Kind() const override { return "zfs"; }
  PoolCapabilities Capabilities() const override {
    PoolCapabilities caps;
    caps.atomic_snapshots = true;
    caps.copy_on_write = true;
    caps.clones_pin_snapshots = true;
    caps.space_limits = !fuse_;
    caps.space_reservations = !fuse_;
    return caps;
  }
  std::string Describe() const override {
    if (fuse_) {
      return fmt::format("zfs dataset {} at {} (no per-branch space limits: {})", dataset_, root_,
                         kZfsFuseNoLimits);
    }
    return fmt::format("zfs dataset {} at {}", dataset_, root_);
  }

  std::string VolumePath(const std::string& volume) const override {
    return JoinPath(root_, volume);
  }

  // ZFS's snapshot directory of the volume that holds the snapshot (found by name if it is not
  // under `volume`); asks zfs where it is, so it is not free. Falls back to the path
  // under `volume` when the snapshot is missing or zfs cannot answer. zfs-fuse has no .zfs
  // directory: there the path does not exist, and snapshots are reached only by cloning them.
  std::string SnapshotPath(const std::string& volume, const std::string& snapshot) const override {
    if (IsVolumeName(volume) && IsSnapshotName(snapshot)) {
      Result<std::optional<std::string>> holder = LocateSnapshot(volume, snapshot);
      if (holder.ok() && holder->has_value()) return SnapshotDir(**holder, snapshot);
    }
    return SnapshotDir(volume, snapshot);
  }

  Status CreateVolume(const std::string& volume, std::optional<FileOwner> owner) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    const std::string dataset = VolumeDataset(volume);
    std::string compression = Compression();
    Status status = CreateDataset(runner_, {}, dataset, &compression);
    SetCompression(compression);
    if (status.Is(StatusCode::kAlreadyExists)) {
      return Status::AlreadyExists(fmt::format("volume {} exists", volume));
    }
    PGB_RETURN_IF_ERROR(status);
    // The dataset's root directory, now mounted: PostgreSQL wants its data directory private.
    status = SetMode(VolumePath(volume), kVolumeMode, owner);
    if (!status.ok()) {
      (void)DestroyIfExists(runner_, dataset);  // undo; the chmod/chown failure is the cause
      return status;
    }
    return Status::OK();
  }

  // The dataset mounted at `path` is renamed to be the volume and mounted under the pool's
  // root by inheriting the mountpoint; its old name stays in a user property for the way back.
  Status AdoptVolume(const std::string& path, const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    const std::string target = VolumeDataset(volume);
    PGB_ASSIGN_OR_RETURN(std::string out,
                         Zfs(runner_, {"list", "-H", "-o", "name,mountpoint", "-t", "filesystem"}));
    std::string source;
    for (const std::string& line : SplitLines(out)) {
      size_t tab = line.find('\t');
      if (tab != std::string::npos && line.substr(tab + 1) == path) source = line.substr(0, tab);
    }
    if (source.empty()) {
      return Status::FailedPrecondition(
          fmt::format("{} is not the mountpoint of a ZFS dataset", path));
    }
    auto zpool = [](const std::string& name) { return name.substr(0, name.find('/')); };
    if (zpool(source) != zpool(dataset_)) {
      return Status::FailedPrecondition(fmt::format(
          "{} is dataset {} of ZFS pool {}, not of the pool's {}; adopting renames a dataset, "
          "which stays within one ZFS pool",
          path, source, zpool(source), zpool(dataset_)));
    }
    PGB_ASSIGN_OR_RETURN(std::string below,
                         Zfs(runner_, {"list", "-H", "-o", "name", "-r", "-t", "all", source}));
    if (SplitLines(below).size() > 1) {
      return Status::FailedPrecondition(fmt::format(
          "dataset {} has snapshots or child datasets; pgbranch would take them for its own",
          source));
    }
    if (Zfs(runner_, {"list", "-H", "-o", "name", target}).ok()) {
      return Status::AlreadyExists(fmt::format("volume {} exists", volume));
    }
    PGB_RETURN_IF_ERROR(
        Zfs(runner_, {"set", fmt::format("{}={}", kAdoptedProperty, source), source}).status());
    PGB_RETURN_IF_ERROR(MoveDataset(source, target, {"inherit", "mountpoint", target}));
    return RemoveEmptyDir(path);  // the mountpoint it left
  }

  // `zfs rename from to` of an unmounted dataset (zfs-fuse refuses a mounted one as busy), then
  // `then` (which sets where it mounts) and the mount; a failed rename mounts `from` again.
  Status MoveDataset(const std::string& from, const std::string& to,
                     const std::vector<std::string>& then) {
    Status unmounted = Zfs(runner_, {"umount", from}, OnBusy::kRetry).status();
    if (!unmounted.ok() && !Contains(unmounted.message(), "not currently mounted")) {
      return unmounted;
    }
    Status renamed = Zfs(runner_, {"rename", from, to}, OnBusy::kRetry).status();
    if (!renamed.ok()) {
      (void)Zfs(runner_, {"mount", from});
      return renamed;
    }
    PGB_RETURN_IF_ERROR(Zfs(runner_, then, OnBusy::kRetry).status());
    Status mounted = Zfs(runner_, {"mount", to}, OnBusy::kRetry).status();
    if (!mounted.ok() && !Contains(mounted.message(), "already mounted")) return mounted;
    return Status::OK();
  }

  Status ReleaseVolume(const std::string& volume, const std::string& path) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    const std::string dataset = VolumeDataset(volume);
    Result<std::string> origin =
        Zfs(runner_, {"get", "-H", "-o", "value", kAdoptedProperty, dataset});
    if (origin.status().Is(StatusCode::kNotFound)) {
      if (PathExists(path)) return Status::OK();  // gone back already
      return Status::NotFound(fmt::format("volume {} does not exist", volume));
    }
    PGB_RETURN_IF_ERROR(origin.status());
    std::vector<std::string> lines = SplitLines(*origin);
    std::string name = lines.empty() ? "" : lines[0];
    if (name.empty() || name == "-") {
      return Status::FailedPrecondition(fmt::format("volume {} was not adopted", volume));
    }
    std::error_code ec;
    if (PathExists(path) && !(IsDirectory(path) && std::filesystem::is_empty(path, ec))) {
      return Status::AlreadyExists(
          fmt::format("{} exists; move it away so volume {} can go back there", path, volume));
    }
    PGB_RETURN_IF_ERROR(
        MoveDataset(dataset, name, {"set", fmt::format("mountpoint={}", path), name}));
    return Zfs(runner_, {"inherit", kAdoptedProperty, name}).status();
  }

  // Atomic: the bracket is not needed and ignored.
  Status CreateSnapshot(const std::string& volume, const std::string& snapshot,
                        const SnapshotBracket* /*bracket*/) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    Status status = Zfs(runner_, {"snapshot", SnapshotDataset(volume, snapshot)}).status();
    if (status.Is(StatusCode::kNotFound)) {
      return Status::NotFound(fmt::format("volume {} does not exist", volume));
    }
    if (status.Is(StatusCode::kAlreadyExists)) {
      return Status::AlreadyExists(fmt::format("snapshot {} exists", snapshot));
    }
    return status;
  }

  Status CloneSnapshot(const std::string& volume_hint, const std::string& snapshot,
                       const std::string& new_volume) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    PGB_RETURN_IF_ERROR(CheckVolumeName(new_volume));
    PGB_ASSIGN_OR_RETURN(std::optional<std::string> volume, HolderOf(volume_hint, snapshot));
    if (!volume) return Status::NotFound(fmt::format("snapshot {} does not exist", snapshot));
    std::string source = SnapshotDataset(*volume, snapshot);
    Status status = Clone(source, new_volume);
    if (status.Is(StatusCode::kNotFound)) {
      // The hint was wrong: find the snapshot by its (unique) name.
      PGB_ASSIGN_OR_RETURN(auto where, FindSnapshotByName(snapshot));
      if (!where) return Status::NotFound(fmt::format("snapshot {} does not exist", snapshot));
      if (SnapshotDataset(*where, snapshot) == source) return status;
      status = Clone(SnapshotDataset(*where, snapshot), new_volume);
    }
    return status;
  }

  // A volume whose snapshots are still there (branches were made from them, or they are kept)
  // is retired rather than destroyed: unmounted, marked and hidden from ListVolumes; it goes
  // with its last snapshot (DestroySnapshot). Neither -r, which would take those snapshots
  // along, nor -R, which would take the branches made from them; nor `zfs promote`, which would
  // hand the volume's own origin to a clone and so pin snapshots the caller no longer ties to it.
  Status DestroyVolume(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    const std::string dataset = VolumeDataset(volume);
    // A quarantined volume counts as missing (pool.h): never destroyed on a stale row's word.
    Result<ObjectState> state = StateOf(dataset);
    if (state.status().Is(StatusCode::kNotFound)) return Status::OK();
    PGB_RETURN_IF_ERROR(state.status());
    if (state->quarantined) return Status::OK();
    Status status = Zfs(runner_, {"destroy", dataset}, OnBusy::kRetry).status();
    if (status.ok() || status.Is(StatusCode::kNotFound)) return Status::OK();
    // "filesystem has children": its snapshots (volumes have no child datasets).
    if (!Contains(status.message(), "has children")) {
      // zfs-fuse unmounts before it finds the dataset busy, and leaves it unmounted: mount it
      // again, so the volume stays usable (and nothing writes into the pool dataset's empty
      // mountpoint directory). "already mounted" is the usual answer.
      (void)Zfs(runner_, {"mount", dataset});
      return status;
    }
    return Retire(dataset, VolumePath(volume));
  }

  Status DestroySnapshot(const std::string& volume_hint, const std::string& snapshot) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    PGB_ASSIGN_OR_RETURN(std::optional<std::string> volume, HolderOf(volume_hint, snapshot));
    if (!volume) return Status::OK();  // missing is OK
    std::string name = SnapshotDataset(*volume, snapshot);
    Result<ObjectState> state = StateOf(name);
    if (state.status().Is(StatusCode::kNotFound)) {
      PGB_ASSIGN_OR_RETURN(auto where, FindSnapshotByName(snapshot));
      if (!where || SnapshotDataset(*where, snapshot) == name) return Status::OK();
      name = SnapshotDataset(*where, snapshot);
      state = StateOf(name);
      if (state.status().Is(StatusCode::kNotFound)) return Status::OK();
    }
    PGB_RETURN_IF_ERROR(state.status());
    // A quarantined snapshot counts as missing (pool.h): never destroyed on a stale row's word.
    if (state->quarantined) return Status::OK();
    Status status = Zfs(runner_, {"destroy", name}, OnBusy::kRetry).status();
    if (status.ok() || status.Is(StatusCode::kNotFound)) {
      return CollectIfRetired(name.substr(0, name.find('@')));
    }
    Result<std::vector<std::string>> clones = ClonesOf(name);
    if (clones.ok() && !clones->empty()) {
      return Status::FailedPrecondition(fmt::format(
          "snapshot {} has clones ({}); destroy them first", snapshot, fmt::join(*clones, ", ")));
    }
    return status;
  }

  // Neither retired nor quarantined volumes.
  Result<std::vector<std::string>> ListVolumes() override {
    PGB_ASSIGN_OR_RETURN(auto filesystems, ListFilesystems());
    PGB_ASSIGN_OR_RETURN(std::vector<Marker> markers, Markers());
    std::set<std::string> quarantined;
    for (const Marker& marker : markers) {
      if (marker.snapshot.empty()) quarantined.insert(marker.volume);
    }
    std::vector<std::string> volumes;
    for (const auto& fs : filesystems) {
      if (!fs.retired && !quarantined.contains(fs.volume)) volumes.push_back(fs.volume);
    }
    std::sort(volumes.begin(), volumes.end());
    return volumes;
  }

  // All but the quarantined ones (also the snapshots of retired or quarantined volumes).
  Result<std::vector<std::string>> ListSnapshots() override {
    PGB_ASSIGN_OR_RETURN(std::string out, Zfs(runner_, {"list", "-H", "-o", "name", "-t",
                                                        "snapshot", "-r", dataset_}));
    PGB_ASSIGN_OR_RETURN(std::vector<Marker> markers, Markers());
    std::set<std::string> quarantined;
    for (const Marker& marker : markers) {
      if (!marker.snapshot.empty())
        quarantined.insert(SnapshotDataset(marker.volume, marker.snapshot));
    }
    std::vector<std::string> snapshots;
    for (const std::string& line : SplitLines(out)) {
      size_t at = line.find('@');
      if (at == std::string::npos || quarantined.contains(line)) continue;
      std::string snapshot = line.substr(at + 1);
      if (IsSnapshotName(snapshot)) snapshots.push_back(std::move(snapshot));
    }
    std::sort(snapshots.begin(), snapshots.end());
    return snapshots;
  }

  // exclusive: `written` (OpenZFS: what is not shared with the volume's latest snapshot or,
  // for a clone without snapshots, with its origin), else `used` (zfs-fuse: what the volume and
  // its snapshots hold that nothing else shares). logical: `logicalreferenced` (before
  // compression), else `referenced`.
  Result<SpaceUsage> VolumeSpace(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    const std::string dataset = VolumeDataset(volume);
    Result<std::map<std::string, uint64_t>> sizes =
        Sizes(dataset, {"written", "used", "logicalreferenced", "referenced"});
    if (sizes.status().Is(StatusCode::kNotFound)) {
      return Status::NotFound(fmt::format("volume {} does not exist", volume));
    }
    if (!sizes.ok()) return sizes.status();
    return Space(*sizes, dataset, sizes->contains("written") ? "written" : "used");
  }

  // exclusive: the snapshot's `used`, what destroying it would free.
  Result<SpaceUsage> SnapshotSpace(const std::string& volume_hint,
                                   const std::string& snapshot) override {
    PGB_RETURN_IF_ERROR(CheckSnapshotName(snapshot));
    PGB_ASSIGN_OR_RETURN(std::optional<std::string> volume, HolderOf(volume_hint, snapshot));
    if (!volume) return Status::NotFound(fmt::format("snapshot {} does not exist", snapshot));
    const std::vector<std::string> props = {"used", "logicalreferenced", "referenced"};
    std::string name = SnapshotDataset(*volume, snapshot);
    Result<std::map<std::string, uint64_t>> sizes = Sizes(name, props);
    if (sizes.status().Is(StatusCode::kNotFound)) {
      PGB_ASSIGN_OR_RETURN(auto where, FindSnapshotByName(snapshot));
      if (!where) return Status::NotFound(fmt::format("snapshot {} does not exist", snapshot));
      name = SnapshotDataset(*where, snapshot);
      sizes = Sizes(name, props);
    }
    if (!sizes.ok()) return sizes.status();
    return Space(*sizes, name, "used");
  }

  // `quota` on the volume's dataset: it bounds the dataset's `used`, which for a clone is what
  // it wrote (and what its snapshots keep), never the data it shares with its origin.
  Status SetSpaceLimit(const std::string& volume, std::optional<uint64_t> bytes) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    if (bytes && *bytes == 0) return Status::InvalidArgument("a space limit of 0 bytes");
    PGB_RETURN_IF_ERROR(CheckLimits());
    return SetSizeProperty(volume, "quota", bytes);
  }

  Result<SpaceLimit> GetSpaceLimit(const std::string& volume) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    PGB_RETURN_IF_ERROR(CheckLimits());
    const std::string dataset = VolumeDataset(volume);
    Result<std::map<std::string, uint64_t>> sizes =
        GetSizes(runner_, dataset, {"quota", "used"}, &unknown_props_);
    if (sizes.status().Is(StatusCode::kNotFound)) {
      return Status::NotFound(fmt::format("volume {} does not exist", volume));
    }
    if (!sizes.ok()) return sizes.status();
    SpaceLimit limit;
    PGB_ASSIGN_OR_RETURN(uint64_t quota, Need(*sizes, "quota", dataset));
    if (quota != 0) limit.limit_bytes = quota;  // 0: none
    PGB_ASSIGN_OR_RETURN(limit.used_bytes, Need(*sizes, "used", dataset));
    return limit;
  }

  // `refreservation`: the dataset can always write `bytes` more than its snapshots hold.
  Status ReserveSpace(const std::string& volume, uint64_t bytes) override {
    PGB_RETURN_IF_ERROR(CheckVolumeName(volume));
    PGB_RETURN_IF_ERROR(CheckLimits());
    return SetSizeProperty(volume, "refreservation", bytes);
  }

  Result<PoolUsage> Usage() override {
    PGB_ASSIGN_OR_RETURN(auto sizes, Sizes(dataset_, {"used", "available"}));
    PoolUsage usage;
    PGB_ASSIGN_OR_RETURN(usage.used_bytes, Need(sizes, "used", dataset_));
    PGB_ASSIGN_OR_RETURN(usage.free_bytes, Need(sizes, "available", dataset_));
    usage.size_bytes = usage.used_bytes + usage.free_bytes;
    return usage;
  }

  // ---- Quarantine (pool.h; the layout in zfs_pool.h) ----------------------------------------

  Status Quarantine(const std::string& name, TimePoint now) override {
    PGB_RETURN_IF_ERROR(CheckVolumeOrSnapshotName(name));
    return IsSnapshotName(name) ? QuarantineSnapshot(name, now) : QuarantineVolume(name, now);
  }

  // Two commands: the markers, and where the filesystems are mounted.
  Result<std::vector<QuarantinedObject>> ListQuarantined() override {
    std::vector<QuarantinedObject> objects;
    PGB_ASSIGN_OR_RETURN(std::vector<Marker> markers, Markers());
    if (markers.empty()) return objects;
    PGB_ASSIGN_OR_RETURN(std::string out,
                         Zfs(runner_, {"list", "-H", "-o", "name,mountpoint,mounted", "-t",
                                       "filesystem", "-r", dataset_}));
    std::map<std::string, std::string> mounted_at;  // dataset -> mountpoint, if mounted
    for (const std::string& line : SplitLines(out)) {
      std::vector<std::string> f = SplitTabs(line);
      if (f.size() == 3 && f[2] == "yes") mounted_at[f[0]] = f[1];
    }
    for (const Marker& marker : markers) {
      const bool is_snapshot = !marker.snapshot.empty();
      auto it = mounted_at.find(is_snapshot ? ReaderDataset(marker.snapshot)
                                            : VolumeDataset(marker.volume));
      objects.push_back({is_snapshot ? marker.snapshot : marker.volume, is_snapshot,
                         it == mounted_at.end() ? "" : it->second, marker.since});
    }
    std::sort(objects.begin(), objects.end(), [](const auto& a, const auto& b) {
      return std::tie(a.since, a.name) < std::tie(b.since, b.name);
    });
    return objects;
  }

  Status Release(const std::string& name) override {
    PGB_RETURN_IF_ERROR(CheckVolumeOrSnapshotName(name));
    return IsSnapshotName(name) ? ReleaseSnapshot(name) : ReleaseVolume(name);
  }

  Status Purge(const std::string& name) override {
    PGB_RETURN_IF_ERROR(CheckVolumeOrSnapshotName(name));
    return IsSnapshotName(name) ? PurgeSnapshot(name) : PurgeVolume(name);
  }

 private:
  Status CheckLimits() const {
    if (!fuse_) return Status::OK();
    return Status::NotSupported(fmt::format("no space limits in this pool: {}", kZfsFuseNoLimits));
  }

  // `zfs set <property>=<bytes|none> <volume's dataset>`. NotFound for a missing volume;
  // ResourceExhausted if ZFS says there is not enough space (a reservation larger than what is
  // available); InvalidArgument if it refuses the value (a quota below what the dataset holds).
  Status SetSizeProperty(const std::string& volume, const char* property,
                         std::optional<uint64_t> bytes) {
    std::string value = bytes ? std::to_string(*bytes) : "none";
    Status status =
        Zfs(runner_, {"set", fmt::format("{}={}", property, value), VolumeDataset(volume)})
            .status();
    if (status.ok()) return status;
    if (status.Is(StatusCode::kNotFound)) {
      return Status::NotFound(fmt::format("volume {} does not exist", volume));
    }
    // "size is greater than available space" (a reservation); "size is less than current used
    // or reserved space" (a quota).
    if (Contains(status.message(), "greater than available")) {
      return Status::ResourceExhausted(
          fmt::format("{}: the pool is full; delete branches or snapshots, or grow the pool",
                      status.message()));
    }
    if (Contains(status.message(), "less than current")) {
      return Status::InvalidArgument(status.message());
    }
    return status;
  }

  std::string VolumeDataset(const std::string& volume) const { return dataset_ + "/" + volume; }
  std::string SnapshotDataset(const std::string& volume, const std::string& snapshot) const {
    return VolumeDataset(volume) + "@" + snapshot;
  }
  std::string SnapshotDir(const std::string& volume, const std::string& snapshot) const {
    return JoinPath(VolumePath(volume), ".zfs/snapshot/" + snapshot);
  }

  // The volume name of `name` if it is a direct child of the pool dataset with a volume name.
  std::optional<std::string> VolumeOf(std::string_view name) const {
    if (name.size() <= dataset_.size() + 1 || !name.starts_with(dataset_) ||
        name[dataset_.size()] != '/') {
      return std::nullopt;
    }
    std::string_view rest = name.substr(dataset_.size() + 1);
    if (!IsVolumeName(rest)) return std::nullopt;
    return std::string(rest);
  }

  // `zfs clone <source> <new_volume>`: AlreadyExists if the volume exists, NotFound (cause
  // unchanged) if the source snapshot is missing.
  Status Clone(const std::string& source, const std::string& new_volume) {
    const std::string target = VolumeDataset(new_volume);
    Status status = Zfs(runner_, {"clone", source, target}).status();
    if (status.Is(StatusCode::kAlreadyExists)) {
      return Status::AlreadyExists(fmt::format("volume {} exists", new_volume));
    }
    // "filesystem successfully created, but not mounted": leave nothing behind.
    if (!status.ok() && Contains(status.message(), "successfully created")) {
      (void)DestroyIfExists(runner_, target);
    }
    return status;
  }

  struct Filesystem {
    std::string volume;
    std::string origin;  // "" for none
    bool retired = false;
  };

  // The volumes of the pool (retired ones included) with their origins, in zfs list order.
  Result<std::vector<Filesystem>> ListFilesystems() const {
    PGB_ASSIGN_OR_RETURN(
        std::string out,
        Zfs(runner_, {"list", "-H", "-o", fmt::format("name,origin,{}", kRetiredProperty), "-t",
                      "filesystem", "-r", dataset_}));
    std::vector<Filesystem> filesystems;
    for (const std::string& line : SplitLines(out)) {
      std::vector<std::string> f = SplitTabs(line);
      if (f.size() != 3) continue;
      std::optional<std::string> volume = VolumeOf(f[0]);
      if (volume)
        filesystems.push_back({std::move(*volume), f[1] == "-" ? "" : f[1], f[2] == "yes"});
    }
    return filesystems;
  }

  // Names of the snapshots of `dataset`, oldest first. NotFound if the dataset does not exist.
  Result<std::vector<std::string>> SnapshotsOf(const std::string& dataset) const {
    PGB_ASSIGN_OR_RETURN(std::string out, Zfs(runner_, {"list", "-H", "-o", "name", "-t",
                                                        "snapshot", "-r", dataset}));
    std::vector<std::string> names;
    for (const std::string& line : SplitLines(out)) {
      if (line.compare(0, dataset.size() + 1, dataset + "@") == 0) {
        names.push_back(line.substr(dataset.size() + 1));
      }
    }
    return names;
  }

  // Retires volume `dataset` (see DestroyVolume): canmount=off, unmounted, marked; then removes
  // the directory `mountpoint` it was mounted at. If it cannot be unmounted (busy), it is left
  // mountable and mounted.
  Status Retire(const std::string& dataset, const std::string& mountpoint) {
    PGB_RETURN_IF_ERROR(Zfs(runner_, {"set", "canmount=off", dataset}).status());
    Status unmounted = Zfs(runner_, {"umount", dataset}, OnBusy::kRetry).status();
    if (!unmounted.ok() && !Contains(unmounted.message(), "not currently mounted")) {
      (void)Zfs(runner_, {"set", "canmount=on", dataset});
      return unmounted;
    }
    PGB_RETURN_IF_ERROR(
        Zfs(runner_, {"set", fmt::format("{}=yes", kRetiredProperty), dataset}).status());
    return RemoveEmptyDir(mountpoint);  // now empty
  }

  // After a snapshot of volume `dataset` went: the last snapshot of a retired volume takes the
  // volume with it.
  Status CollectIfRetired(const std::string& dataset) {
    PGB_ASSIGN_OR_RETURN(bool retired, IsRetired(dataset));
    if (!retired) return Status::OK();
    Result<std::vector<std::string>> left = SnapshotsOf(dataset);
    if (!left.ok() || !left->empty()) return left.status();
    return DestroyIfExists(runner_, dataset);
  }

  Result<bool> IsRetired(const std::string& dataset) const {
    Result<std::string> value =
        Zfs(runner_, {"get", "-H", "-o", "value", kRetiredProperty, dataset});
    if (value.status().Is(StatusCode::kNotFound)) return false;
    PGB_RETURN_IF_ERROR(value.status());
    return value->rfind("yes", 0) == 0;
  }

  // The volumes cloned from snapshot `name` (full "dataset/volume@snapshot"), sorted.
  Result<std::vector<std::string>> ClonesOf(const std::string& name) const {
    PGB_ASSIGN_OR_RETURN(auto filesystems, ListFilesystems());
    std::vector<std::string> clones;
    for (const auto& fs : filesystems) {
      if (fs.origin == name) clones.push_back(fs.volume);
    }
    std::sort(clones.begin(), clones.end());
    return clones;
  }

  // The volume that holds snapshot `snapshot`, searched by name in the whole pool; nullopt if
  // no volume has it.
  Result<std::optional<std::string>> FindSnapshotByName(const std::string& snapshot) const {
    PGB_ASSIGN_OR_RETURN(std::vector<std::string> holders, HoldersOf(snapshot));
    if (holders.empty()) return std::optional<std::string>();
    return std::optional(std::move(holders.front()));
  }

  // The volumes that hold a snapshot named `snapshot` (one at most, but for a quarantined
  // snapshot and a live namesake), in zfs list order.
  Result<std::vector<std::string>> HoldersOf(const std::string& snapshot) const {
    PGB_ASSIGN_OR_RETURN(std::string out, Zfs(runner_, {"list", "-H", "-o", "name", "-t",
                                                        "snapshot", "-r", dataset_}));
    std::vector<std::string> holders;
    for (const std::string& line : SplitLines(out)) {
      size_t at = line.find('@');
      if (at == std::string::npos || line.compare(at + 1, std::string::npos, snapshot) != 0) {
        continue;
      }
      std::optional<std::string> volume = VolumeOf(std::string_view(line).substr(0, at));
      if (volume) holders.push_back(std::move(*volume));
    }
    return holders;
  }

  // The volume that holds snapshot `snapshot`: `volume` if it does, else the one a lookup by
  // name finds; nullopt if the snapshot does not exist.
  // The volume to try first for `snapshot`: the hint if it is a volume name (pool.h: snapshot
  // calls take the volume as a hint), else wherever a lookup by name finds it (nullopt: none).
  Result<std::optional<std::string>> HolderOf(const std::string& hint,
                                              const std::string& snapshot) const {
    if (IsVolumeName(hint)) return std::optional<std::string>(hint);
    return FindSnapshotByName(snapshot);
  }

  Result<std::optional<std::string>> LocateSnapshot(const std::string& volume,
                                                    const std::string& snapshot) const {
    Result<std::string> exact = Zfs(
        runner_, {"list", "-H", "-o", "name", "-t", "snapshot", SnapshotDataset(volume, snapshot)});
    if (exact.ok()) return std::optional(volume);
    if (!exact.status().Is(StatusCode::kNotFound)) return exact.status();
    return FindSnapshotByName(snapshot);
  }

  // ---- Quarantine helpers ----

  // A quarantine marker: volume `volume`, or its snapshot `snapshot`, quarantined since `since`.
  struct Marker {
    std::string volume;
    std::string snapshot;  // "" for the volume itself
    TimePoint since;
  };

  // Every marker in the pool, in one command. A value that is not a timestamp marks nothing.
  Result<std::vector<Marker>> Markers() const {
    PGB_ASSIGN_OR_RETURN(std::string out,
                         Zfs(runner_, {"get", "-H", "-o", "name,value", "-s", "local", "-r",
                                       kQuarantinedProperty, dataset_}));
    std::vector<Marker> markers;
    for (const std::string& line : SplitLines(out)) {
      std::vector<std::string> f = SplitTabs(line);
      if (f.size() != 2) continue;
      Result<TimePoint> since = ParseTimestamp(f[1]);
      size_t at = f[0].find('@');
      std::optional<std::string> volume = VolumeOf(std::string_view(f[0]).substr(0, at));
      std::string snapshot = at == std::string::npos ? "" : f[0].substr(at + 1);
      if (!since.ok() || !volume || !(snapshot.empty() || IsSnapshotName(snapshot))) continue;
      markers.push_back({std::move(*volume), std::move(snapshot), *since});
    }
    return markers;
  }

  // What the quarantine calls need to know of a volume or snapshot, in one command.
  struct ObjectState {
    std::optional<TimePoint> quarantined;  // its marker, set on it (not inherited)
    bool retired = false;                  // volumes
    bool can_mount = true;                 // volumes: canmount is not "off"
    std::string mountpoint;                // volumes
    bool mounted = false;                  // volumes
  };

  // The state of dataset or snapshot `name`; NotFound if it does not exist.
  Result<ObjectState> StateOf(const std::string& name) const {
    PGB_ASSIGN_OR_RETURN(std::string out,
                         Zfs(runner_, {"get", "-H", "-o", "property,value,source",
                                       fmt::format("{},{},canmount,mountpoint,mounted",
                                                   kQuarantinedProperty, kRetiredProperty),
                                       name}));
    ObjectState state;
    for (const std::string& line : SplitLines(out)) {
      std::vector<std::string> f = SplitTabs(line);
      if (f.size() != 3) continue;
      if (f[0] == kQuarantinedProperty && f[2] == "local") {
        Result<TimePoint> since = ParseTimestamp(f[1]);
        if (since.ok()) state.quarantined = *since;
      } else if (f[0] == kRetiredProperty) {
        state.retired = f[1] == "yes";
      } else if (f[0] == "canmount") {
        state.can_mount = f[1] != "off";
      } else if (f[0] == "mountpoint") {
        state.mountpoint = f[1];
      } else if (f[0] == "mounted") {
        state.mounted = f[1] == "yes";
      }
    }
    return state;
  }

  // Where a snapshot named `snapshot` is: the volume holding it live, and the marker of a
  // quarantined one (names are unique, so normally one of the two at most).
  struct SnapshotPlaces {
    std::optional<std::string> live;
    std::optional<Marker> held;
  };
  Result<SnapshotPlaces> PlacesOf(const std::string& snapshot) const {
    SnapshotPlaces places;
    PGB_ASSIGN_OR_RETURN(std::vector<Marker> markers, Markers());
    for (Marker& marker : markers) {
      if (marker.snapshot == snapshot) places.held = std::move(marker);
    }
    PGB_ASSIGN_OR_RETURN(std::vector<std::string> holders, HoldersOf(snapshot));
    for (std::string& volume : holders) {
      if (!places.held || places.held->volume != volume) places.live = std::move(volume);
    }
    return places;
  }

  // Sets the quarantine mark of volume or snapshot `name` (a dataset name), or takes it off.
  Status Mark(const std::string& name, TimePoint since) {
    return Zfs(runner_,
               {"set", fmt::format("{}={}", kQuarantinedProperty, FormatTimestamp(since)), name})
        .status();
  }
  Status Unmark(const std::string& name) {
    return Zfs(runner_, {"inherit", kQuarantinedProperty, name}).status();
  }

  // Where quarantined `name` is mounted: <root>/quarantine/<name>@<since>.
  std::string QuarantinePath(const std::string& name, TimePoint since) const {
    return JoinPath(JoinPath(root_, kQuarantineDir), QuarantineEntryName(name, since));
  }
  // The read-only clone a quarantined snapshot is read through: <dataset>/<snapshot>, a name no
  // volume can have (ListVolumes and ClonesOf never see it).
  std::string ReaderDataset(const std::string& snapshot) const { return dataset_ + "/" + snapshot; }
  // Removes `dir` if it is an empty directory below <root>/quarantine: a mountpoint ZFS leaves
  // behind (zfs-fuse removes some, not all). Anything else is left alone.
  void RemoveQuarantineMountpoint(const std::string& dir) const {
    if (dir.starts_with(JoinPath(root_, kQuarantineDir) + "/")) (void)RemoveEmptyDir(dir);
  }

  static Status HalfPurged(const std::string& volume) {
    return Status::FailedPrecondition(fmt::format(
        "volume {} is being purged (an interrupted Purge unmounted it); purge it again", volume));
  }

  // A volume's files in use when ZFS must unmount it: Unavailable, saying what to do.
  static Status InUse(Status status, const std::string& name) {
    if (status.ok()) return status;
    if (!status.Is(StatusCode::kUnavailable) && !Contains(status.message(), "cannot unmount")) {
      return status;
    }
    return Status::Unavailable(fmt::format(
        "{} is in use (stop the server or process using it first): {}", name, status.message()));
  }

  // Marks the volume and moves its mountpoint into the quarantine. If the move fails (the volume
  // is busy), the mark is taken back: the volume stays live.
  Status QuarantineVolume(const std::string& volume, TimePoint now) {
    const std::string dataset = VolumeDataset(volume);
    Result<ObjectState> state = StateOf(dataset);
    if (state.status().Is(StatusCode::kNotFound)) {
      return Status::NotFound(fmt::format("no volume or snapshot {} in the pool", volume));
    }
    PGB_RETURN_IF_ERROR(state.status());
    if (state->retired || !state->can_mount) {
      if (state->quarantined) return HalfPurged(volume);
      return Status::NotFound(fmt::format(
          "volume {} was destroyed (it stays, hidden, while snapshots of it remain)", volume));
    }
    const bool marked_now = !state->quarantined;
    const TimePoint since = state->quarantined.value_or(now);
    if (marked_now) PGB_RETURN_IF_ERROR(Mark(dataset, since));
    const std::string target = QuarantinePath(volume, since);
    Status status = EnsureDir(Dirname(target), kQuarantineDirMode);
    if (status.ok() && state->mountpoint != target) {
      status = Zfs(runner_, {"set", "mountpoint=" + target, dataset}, OnBusy::kRetry).status();
    }
    if (!status.ok()) {
      // ZFS keeps the old mountpoint when it cannot unmount: only the mark is to take back.
      if (marked_now) (void)Unmark(dataset);
      return InUse(status, fmt::format("volume {}", volume));
    }
    // Not mounted before (ZFS lost it): mounting it is what makes `path` readable; if it fails,
    // ListQuarantined says so with an empty path.
    if (!state->mounted) (void)Zfs(runner_, {"mount", dataset});
    (void)RemoveEmptyDir(VolumePath(volume));  // its old mountpoint, where ZFS left it
    return Status::OK();
  }

  // Marks the snapshot, then mounts a read-only clone of it in the quarantine. If the clone
  // fails, the mark is taken back: the snapshot stays live.
  Status QuarantineSnapshot(const std::string& snapshot, TimePoint now) {
    PGB_ASSIGN_OR_RETURN(SnapshotPlaces places, PlacesOf(snapshot));
    if (places.live && places.held) {
      return Status::AlreadyExists(fmt::format(
          "{} is live in volume {}, and quarantined too in volume {}; release or purge that one "
          "first",
          snapshot, *places.live, places.held->volume));
    }
    if (!places.live && !places.held) {
      return Status::NotFound(fmt::format("no volume or snapshot {} in the pool", snapshot));
    }
    const std::string name =
        SnapshotDataset(places.held ? places.held->volume : *places.live, snapshot);
    const TimePoint since = places.held ? places.held->since : now;
    if (!places.held) PGB_RETURN_IF_ERROR(Mark(name, since));
    const std::string target = QuarantinePath(snapshot, since);
    Status status = EnsureDir(Dirname(target), kQuarantineDirMode);
    if (status.ok()) {
      status = Zfs(runner_, {"clone", "-o", "readonly=on", "-o", "mountpoint=" + target, name,
                             ReaderDataset(snapshot)})
                   .status();
      // Made by the interrupted call this one finishes.
      if (status.Is(StatusCode::kAlreadyExists)) status = Status::OK();
      // "filesystem successfully created, but not mounted": leave nothing behind.
      if (!status.ok() && Contains(status.message(), "successfully created")) {
        (void)DestroyIfExists(runner_, ReaderDataset(snapshot));
      }
    }
    if (!status.ok() && !places.held) (void)Unmark(name);  // it stays live
    return status;
  }

  // Mountpoint back (inherited again), then the mark off: until then it stays quarantined.
  Status ReleaseVolume(const std::string& volume) {
    const std::string dataset = VolumeDataset(volume);
    Result<ObjectState> state = StateOf(dataset);
    if (state.status().Is(StatusCode::kNotFound) || (state.ok() && !state->quarantined)) {
      return Status::NotFound(fmt::format("volume {} is not quarantined", volume));
    }
    PGB_RETURN_IF_ERROR(state.status());
    if (state->retired || !state->can_mount) return HalfPurged(volume);
    PGB_RETURN_IF_ERROR(
        InUse(Zfs(runner_, {"inherit", "mountpoint", dataset}, OnBusy::kRetry).status(),
              fmt::format("volume {}", volume)));
    PGB_RETURN_IF_ERROR(Unmark(dataset));
    RemoveQuarantineMountpoint(state->mountpoint);
    return Status::OK();
  }

  // The reading clone goes first (it pins the snapshot), then the mark.
  Status ReleaseSnapshot(const std::string& snapshot) {
    PGB_ASSIGN_OR_RETURN(SnapshotPlaces places, PlacesOf(snapshot));
    if (!places.held) {
      return Status::NotFound(fmt::format("snapshot {} is not quarantined", snapshot));
    }
    if (places.live) {
      return Status::AlreadyExists(
          fmt::format("a live snapshot {} exists (in volume {}); its quarantined namesake stays",
                      snapshot, *places.live));
    }
    PGB_RETURN_IF_ERROR(InUse(DestroyIfExists(runner_, ReaderDataset(snapshot)),
                              fmt::format("snapshot {}", snapshot)));
    PGB_RETURN_IF_ERROR(Unmark(SnapshotDataset(places.held->volume, snapshot)));
    RemoveQuarantineMountpoint(QuarantinePath(snapshot, places.held->since));
    return Status::OK();
  }

  // As DestroyVolume: destroyed, or retired while snapshots of it remain (live ones are never
  // taken along); then the mark goes.
  Status PurgeVolume(const std::string& volume) {
    const std::string dataset = VolumeDataset(volume);
    Result<ObjectState> state = StateOf(dataset);
    if (state.status().Is(StatusCode::kNotFound) || (state.ok() && !state->quarantined)) {
      return Status::NotFound(fmt::format("volume {} is not quarantined", volume));
    }
    PGB_RETURN_IF_ERROR(state.status());
    Status status = Zfs(runner_, {"destroy", dataset}, OnBusy::kRetry).status();
    if (status.ok() || status.Is(StatusCode::kNotFound)) {
      RemoveQuarantineMountpoint(state->mountpoint);
      return Status::OK();
    }
    if (!Contains(status.message(), "has children")) {
      (void)Zfs(runner_, {"mount", dataset});  // as DestroyVolume: zfs-fuse leaves it unmounted
      return InUse(status, fmt::format("volume {}", volume));
    }
    PGB_RETURN_IF_ERROR(
        InUse(Retire(dataset, state->mountpoint), fmt::format("volume {}", volume)));
    return Unmark(dataset);
  }

  // FailedPrecondition while volumes are cloned from it; else its reading clone, then the
  // snapshot, then (the last snapshot of a retired volume) the volume.
  Status PurgeSnapshot(const std::string& snapshot) {
    PGB_ASSIGN_OR_RETURN(SnapshotPlaces places, PlacesOf(snapshot));
    if (!places.held) {
      return Status::NotFound(fmt::format("snapshot {} is not quarantined", snapshot));
    }
    const std::string name = SnapshotDataset(places.held->volume, snapshot);
    PGB_ASSIGN_OR_RETURN(std::vector<std::string> clones, ClonesOf(name));
    if (!clones.empty()) {
      return Status::FailedPrecondition(
          fmt::format("snapshot {} has clones ({}); destroy or purge them first", snapshot,
                      fmt::join(clones, ", ")));
    }
    PGB_RETURN_IF_ERROR(InUse(DestroyIfExists(runner_, ReaderDataset(snapshot)),
                              fmt::format("snapshot {}", snapshot)));
    PGB_RETURN_IF_ERROR(DestroyIfExists(runner_, name));
    RemoveQuarantineMountpoint(QuarantinePath(snapshot, places.held->since));
    return CollectIfRetired(VolumeDataset(places.held->volume));
  }

  Result<SpaceUsage> Space(const std::map<std::string, uint64_t>& sizes, const std::string& name,
                           const std::string& exclusive_prop) const {
    SpaceUsage space;
    PGB_ASSIGN_OR_RETURN(space.exclusive_bytes, Need(sizes, exclusive_prop, name));
    PGB_ASSIGN_OR_RETURN(
        space.logical_bytes,
        Need(sizes, sizes.contains("logicalreferenced") ? "logicalreferenced" : "referenced",
             name));
    return space;
  }

  // What this ZFS was found to accept, shared by the threads that use the pool (the engine reads
  // sizes from any thread). Copied out for each `zfs` command and merged back after it, so no
  // lock is held while a command runs.
  std::string Compression() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return compression_;
  }
  void SetCompression(std::string compression) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    compression_ = std::move(compression);
  }
  // GetSizes, skipping the properties any call found missing.
  Result<std::map<std::string, uint64_t>> Sizes(const std::string& name,
                                                const std::vector<std::string>& wanted)
      EXCLUDES(mu_) {
    std::set<std::string> unknown;
    {
      MutexLock lock(mu_);
      unknown = unknown_props_;
    }
    Result<std::map<std::string, uint64_t>> sizes = GetSizes(runner_, name, wanted, &unknown);
    MutexLock lock(mu_);
    unknown_props_.insert(unknown.begin(), unknown.end());
    return sizes;
  }

  const std::string dataset_;
  const std::string root_;
  const bool fuse_;
  ProcessRunner& runner_;
  Mutex mu_;
  // The compression algorithm that worked last (kCompressions).
  std::string compression_ GUARDED_BY(mu_) = kCompressions[0];
  // Properties this ZFS does not have (GetSizes).
  std::set<std::string> unknown_props_ GUARDED_BY(mu_);
};

// The absolute root directory from a config; InvalidArgument if it is empty.
Result<std::string> ZfsRoot(const PoolConfig& config) {
  if (config.root.empty()) {
    return Status::InvalidArgument(fmt::format(
        "zfs pool {} without a root directory to mount the dataset at", config.dataset));
  }
  return AbsolutePath(config.root);
}

bool IsDatasetChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

}  // namespace

Status CheckZfsDatasetName(const std::string& dataset) {
  auto invalid = [&](std::string_view why) {
    return Status::InvalidArgument(fmt::format(
        "invalid ZFS dataset name \"{}\": {}; expected POOL/DATASET, e.g. tank/pgbranch", dataset,
        why));
  };
  if (dataset.size() > 200) return invalid("too long");
  if (dataset.find('/') == std::string::npos) return invalid("no dataset below the pool");
  size_t start = 0;
  for (;;) {
    size_t end = dataset.find('/', start);
    std::string_view part = std::string_view(dataset).substr(
        start, end == std::string::npos ? std::string::npos : end - start);
    if (part.empty()) return invalid("empty component");
    if (part == "." || part == "..") return invalid("\".\" or \"..\" component");
    if (part[0] == '-') return invalid("a component starts with '-'");
    if (!std::all_of(part.begin(), part.end(), IsDatasetChar)) {
      return invalid("only letters, digits and _-.: are allowed");
    }
    if (start == 0 && !((part[0] >= 'a' && part[0] <= 'z') || (part[0] >= 'A' && part[0] <= 'Z'))) {
      return invalid("the pool name must start with a letter");
    }
    if (end == std::string::npos) return Status::OK();
    start = end + 1;
  }
}

Result<PoolConfig> CreateZfsPool(const PoolConfig& config, ProcessRunner& runner) {
  PGB_RETURN_IF_ERROR(CheckZfsDatasetName(config.dataset));
  PoolConfig effective = config;
  effective.kind = "zfs";
  const std::string& dataset = config.dataset;
  const std::string zpool = dataset.substr(0, dataset.find('/'));

  Status status = RunZfsTool(runner, "zpool", {"list", "-H", "-o", "name", zpool}).status();
  if (status.Is(StatusCode::kNotFound)) {
    return Status::FailedPrecondition(fmt::format(
        "ZFS pool {} does not exist; create it first (zpool create {} DEVICE...)", zpool, zpool));
  }
  PGB_RETURN_IF_ERROR(status);

  Result<std::string> listing = Zfs(runner, {"list", "-H", "-o", "name,mountpoint,mounted,canmount",
                                             "-t", "filesystem", dataset});
  if (listing.ok()) {
    // Adopt the existing dataset where it is mounted.
    std::vector<std::string> lines = SplitLines(*listing);
    std::vector<std::string> f = lines.empty() ? std::vector<std::string>{} : SplitTabs(lines[0]);
    if (f.size() != 4) {
      return Status::Internal(fmt::format("unexpected zfs list output: {}", *listing));
    }
    if (f[1].empty() || f[1][0] != '/') {
      return Status::FailedPrecondition(
          fmt::format("ZFS dataset {} has mountpoint {}; give it a directory (zfs set "
                      "mountpoint=DIR {}) or choose another dataset",
                      dataset, f[1], dataset));
    }
    PGB_RETURN_IF_ERROR(MountUnmounted(runner, *listing));
    effective.root = f[1];
    return effective;
  }
  if (!listing.status().Is(StatusCode::kNotFound)) return listing.status();

  // Create it, with the parents it lacks; on failure destroy what was made, deepest first.
  PGB_ASSIGN_OR_RETURN(effective.root, ZfsRoot(config));
  std::vector<std::string> made = {dataset};  // what `zfs create -p` will make, deepest first
  for (std::string parent = dataset.substr(0, dataset.rfind('/')); parent != zpool;
       parent = parent.substr(0, parent.rfind('/'))) {
    Status exists = Zfs(runner, {"list", "-H", "-o", "name", parent}).status();
    if (exists.ok()) break;
    if (!exists.Is(StatusCode::kNotFound)) return exists;
    made.push_back(parent);
  }
  UndoStack undo;
  for (auto it = made.rbegin(); it != made.rend(); ++it) {
    std::string name = *it;
    undo.Push(fmt::format("destroy ZFS dataset {}", name),
              [&runner, name] { return DestroyIfExists(runner, name); });
  }
  std::string compression = kCompressions[0];
  status =
      CreateDataset(runner, {"-p", "-o", "mountpoint=" + effective.root}, dataset, &compression);
  if (status.ok()) status = SetMode(effective.root, kPoolDirMode);
  if (!status.ok()) return undo.Rollback(status);
  undo.Commit();
  return effective;
}

Result<std::unique_ptr<Pool>> OpenZfsPool(const PoolConfig& config, ProcessRunner& runner) {
  PGB_RETURN_IF_ERROR(CheckZfsDatasetName(config.dataset));
  PGB_ASSIGN_OR_RETURN(std::string root, ZfsRoot(config));
  Result<std::string> listing = Zfs(runner, {"list", "-H", "-o", "name,mountpoint,mounted,canmount",
                                             "-t", "filesystem", "-r", config.dataset});
  if (listing.status().Is(StatusCode::kNotFound)) {
    return Status::FailedPrecondition(fmt::format(
        "ZFS dataset {} does not exist; was the pool created with pgbranch init?", config.dataset));
  }
  if (!listing.ok()) return listing.status();
  std::vector<std::string> lines = SplitLines(*listing);
  std::vector<std::string> f = lines.empty() ? std::vector<std::string>{} : SplitTabs(lines[0]);
  if (f.size() != 4 || f[0] != config.dataset) {
    return Status::Internal(fmt::format("unexpected zfs list output: {}", *listing));
  }
  if (f[1] != root) {
    return Status::FailedPrecondition(fmt::format(
        "ZFS dataset {} has mountpoint {}, but the pool's root is {}; set it back with zfs set "
        "mountpoint={} {}",
        config.dataset, f[1], root, root, config.dataset));
  }
  PGB_RETURN_IF_ERROR(MountUnmounted(runner, *listing));
  // zfs-fuse serves its datasets through FUSE; OpenZFS's kernel module as "zfs" filesystems.
  struct statfs st {};
  bool fuse = ::statfs(root.c_str(), &st) == 0 &&
              st.f_type == static_cast<decltype(st.f_type)>(FUSE_SUPER_MAGIC);
  return std::unique_ptr<Pool>(std::make_unique<ZfsPool>(config.dataset, root, fuse, runner));
}

}  // namespace pgb
