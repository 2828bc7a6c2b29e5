#include "engine/audit.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace pgb {

namespace {

struct AuditContext {
  std::string command;
  std::optional<int64_t> operation_id;
  std::string step;
  bool set = false;
};
thread_local AuditContext audit_context;

}  // namespace

struct AuditScope::Saved {
  AuditContext previous;
};

AuditScope::AuditScope(std::string command, std::optional<int64_t> operation_id)
    : saved_(std::make_unique<Saved>(Saved{audit_context})) {
  audit_context = AuditContext{std::move(command), operation_id, "", true};
}

AuditScope::~AuditScope() { audit_context = std::move(saved_->previous); }

void SetAuditStep(std::string step) { audit_context.step = std::move(step); }

void AuditLog::SetSink(Sink sink) {
  MutexLock lock(mu_);
  sink_ = std::move(sink);
}

void AuditLog::SetCommand(std::string command) {
  MutexLock lock(mu_);
  command_ = std::move(command);
}

Status AuditLog::Record(std::string operation, std::string object, std::string detail,
                        const std::function<Status()>& body) {
  TimePoint at = clock_.Now();
  auto start = std::chrono::steady_clock::now();
  Status s = body();
  AuditRow row;
  row.at = FormatTimestamp(at);
  if (audit_context.set) {
    row.command = audit_context.command;
    row.operation_id = audit_context.operation_id;
    row.step = audit_context.step;
  }
  row.operation = std::move(operation);
  row.object = std::move(object);
  row.detail = std::move(detail);
  row.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  row.ok = s.ok();
  row.error = s.ok() ? "" : s.ToString();
  Sink sink;
  {
    MutexLock lock(mu_);
    if (!audit_context.set) row.command = command_;
    sink = sink_;
  }
  Status written = sink ? sink(row) : Status::Internal("no sink");
  if (!written.ok()) {
    if (sink) spdlog::warn("audit row not written: {}", written.message());
    MutexLock lock(mu_);
    rows_.push_back(std::move(row));
  }
  return s;
}

std::vector<AuditRow> AuditLog::Take() {
  MutexLock lock(mu_);
  return std::exchange(rows_, {});
}

namespace {

class AuditedPool : public Pool {
 public:
  AuditedPool(std::unique_ptr<Pool> target, AuditLog& log)
      : target_(std::move(target)), log_(log) {}

  std::string Kind() const override { return target_->Kind(); }
  PoolCapabilities Capabilities() const override { return target_->Capabilities(); }
  std::string Describe() const override { return target_->Describe(); }
  std::string VolumePath(const std::string& volume) const override {
    return target_->VolumePath(volume);
  }
  std::string SnapshotPath(const std::string& volume, const std::string& snapshot) const override {
    return target_->SnapshotPath(volume, snapshot);
  }

  Status CreateVolume(const std::string& volume, std::optional<FileOwner> owner) override {
    return log_.Record("pool.CreateVolume", volume, Where(volume),
                       [&] { return target_->CreateVolume(volume, owner); });
  }
  Status CreateSnapshot(const std::string& volume, const std::string& snapshot,
                        const SnapshotBracket* bracket) override {
    return log_.Record("pool.CreateSnapshot", snapshot,
                       fmt::format("of {}{}", volume, bracket ? " (backup API bracket)" : ""),
                       [&] { return target_->CreateSnapshot(volume, snapshot, bracket); });
  }
  Status CloneSnapshot(const std::string& volume, const std::string& snapshot,
                       const std::string& new_volume) override {
    return log_.Record("pool.CloneSnapshot", new_volume,
                       fmt::format("from {}@{}", volume, snapshot),
                       [&] { return target_->CloneSnapshot(volume, snapshot, new_volume); });
  }
  Status DestroyVolume(const std::string& volume) override {
    return log_.Record("pool.DestroyVolume", volume, Where(volume),
                       [&] { return target_->DestroyVolume(volume); });
  }
  Status DestroySnapshot(const std::string& volume, const std::string& snapshot) override {
    return log_.Record("pool.DestroySnapshot", snapshot, fmt::format("of {}", volume),
                       [&] { return target_->DestroySnapshot(volume, snapshot); });
  }

  Result<std::vector<std::string>> ListVolumes() override { return target_->ListVolumes(); }
  Result<std::vector<std::string>> ListSnapshots() override { return target_->ListSnapshots(); }
  Result<SpaceUsage> VolumeSpace(const std::string& volume) override {
    return target_->VolumeSpace(volume);
  }
  Result<SpaceUsage> SnapshotSpace(const std::string& volume,
                                   const std::string& snapshot) override {
    return target_->SnapshotSpace(volume, snapshot);
  }
  Result<PoolUsage> Usage() override { return target_->Usage(); }
  Status SetSpaceLimit(const std::string& volume, std::optional<uint64_t> bytes) override {
    return log_.Record("pool.SetSpaceLimit", volume,
                       bytes ? fmt::format("{} bytes", *bytes) : std::string("none"),
                       [&] { return target_->SetSpaceLimit(volume, bytes); });
  }
  Result<SpaceLimit> GetSpaceLimit(const std::string& volume) override {
    return target_->GetSpaceLimit(volume);
  }
  Status ReserveSpace(const std::string& volume, uint64_t bytes) override {
    return log_.Record("pool.ReserveSpace", volume, fmt::format("{} bytes", bytes),
                       [&] { return target_->ReserveSpace(volume, bytes); });
  }

  Status Quarantine(const std::string& name, TimePoint now) override {
    return log_.Record("pool.Quarantine", name,
                       fmt::format("{} since {}", target_->Kind(), FormatTimestamp(now)),
                       [&] { return target_->Quarantine(name, now); });
  }
  Result<std::vector<QuarantinedObject>> ListQuarantined() override {
    return target_->ListQuarantined();
  }
  Status AdoptVolume(const std::string& path, const std::string& volume) override {
    return log_.Record("pool.AdoptVolume", volume, fmt::format("from {}", path),
                       [&] { return target_->AdoptVolume(path, volume); });
  }
  Status ReleaseVolume(const std::string& volume, const std::string& path) override {
    return log_.Record("pool.ReleaseVolume", volume, fmt::format("to {}", path),
                       [&] { return target_->ReleaseVolume(volume, path); });
  }
  Status Release(const std::string& name) override {
    return log_.Record("pool.Release", name, target_->Kind(),
                       [&] { return target_->Release(name); });
  }
  Status Purge(const std::string& name) override {
    return log_.Record("pool.Purge", name, target_->Kind(), [&] { return target_->Purge(name); });
  }

 private:
  std::string Where(const std::string& volume) const {
    return fmt::format("{} {}", target_->Kind(), target_->VolumePath(volume));
  }
  std::unique_ptr<Pool> target_;
  AuditLog& log_;
};

class AuditedRuntime : public Runtime {
 public:
  AuditedRuntime(std::unique_ptr<Runtime> target, AuditLog& log)
      : target_(std::move(target)), log_(log) {}

  std::string Kind() const override { return target_->Kind(); }
  Status Start(const InstanceSpec& spec) override {
    return log_.Record("runtime.Start", spec.name,
                       fmt::format("{} {}", target_->Kind(), spec.data_dir),
                       [&] { return target_->Start(spec); });
  }
  Status Stop(const InstanceSpec& spec, StopMode mode, std::chrono::milliseconds timeout) override {
    return log_.Record("runtime.Stop", spec.name,
                       fmt::format("{} {} ({})", target_->Kind(), spec.data_dir,
                                   mode == StopMode::kFast ? "fast" : "immediate"),
                       [&] { return target_->Stop(spec, mode, timeout); });
  }
  Result<InstanceStatus> Inspect(const InstanceSpec& spec) override {
    return target_->Inspect(spec);
  }
  Result<std::string> Logs(const InstanceSpec& spec, int tail_lines) override {
    return target_->Logs(spec, tail_lines);
  }
  Result<CommandResult> RunTool(const InstanceSpec& spec, const std::string& tool,
                                const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) override {
    Result<CommandResult> result = Status::Internal("not run");
    Status ignored = log_.Record(
        "runtime.RunTool", spec.name,
        fmt::format("{} {} {}", target_->Kind(), tool, FormatArgv(args)), [&]() -> Status {
          result = target_->RunTool(spec, tool, args, timeout);
          if (!result.ok()) return result.status();
          return result->Succeeded() ? Status::OK()
                                     : Status::CommandFailed(TailLines(result->err, 3));
        });
    (void)ignored;  // a non-zero exit is the caller's to judge; the trail keeps it
    return result;
  }
  Status Remove(const InstanceSpec& spec) override {
    if (target_->Kind() == "native") return Status::OK();
    return log_.Record("runtime.Remove", spec.name,
                       fmt::format("{} {}", target_->Kind(), spec.container_name),
                       [&] { return target_->Remove(spec); });
  }
  Status Rename(const InstanceSpec& from, const InstanceSpec& to) override {
    if (target_->Kind() == "native") return Status::OK();
    return log_.Record(
        "runtime.Rename", to.name,
        fmt::format("{} {} -> {}", target_->Kind(), from.container_name, to.container_name),
        [&] { return target_->Rename(from, to); });
  }
  Result<std::vector<RuntimeInstance>> ListInstances(const std::string& home) override {
    return target_->ListInstances(home);
  }

 private:
  std::unique_ptr<Runtime> target_;
  AuditLog& log_;
};

class AuditedRunner : public ProcessRunner {
 public:
  AuditedRunner(ProcessRunner& target, AuditLog& log) : target_(target), log_(log) {}

  Result<CommandResult> Run(const Command& command) override {
    Result<CommandResult> result = Status::Internal("not run");
    Status ignored = log_.Record("exec", command.argv.empty() ? "" : command.argv[0],
                                 FormatArgv(command.argv), [&]() -> Status {
                                   result = target_.Run(command);
                                   if (!result.ok()) return result.status();
                                   return CommandStatus(command, *result);
                                 });
    (void)ignored;  // a non-zero exit is the caller's to judge; the trail keeps it
    return result;
  }

  Result<pid_t> SpawnDaemon(const Command& command, const std::string& log_path) override {
    Result<pid_t> pid = Status::Internal("not run");
    Status ignored = log_.Record("spawn", command.argv.empty() ? "" : command.argv[0],
                                 FormatArgv(command.argv), [&]() -> Status {
                                   pid = target_.SpawnDaemon(command, log_path);
                                   return pid.status();
                                 });
    (void)ignored;
    return pid;
  }

 private:
  ProcessRunner& target_;
  AuditLog& log_;
};

}  // namespace

std::unique_ptr<Pool> NewAuditedPool(std::unique_ptr<Pool> target, AuditLog& log) {
  return std::make_unique<AuditedPool>(std::move(target), log);
}
std::unique_ptr<Runtime> NewAuditedRuntime(std::unique_ptr<Runtime> target, AuditLog& log) {
  return std::make_unique<AuditedRuntime>(std::move(target), log);
}
std::unique_ptr<ProcessRunner> NewAuditedRunner(ProcessRunner& target, AuditLog& log) {
  return std::make_unique<AuditedRunner>(target, log);
}

}  // namespace pgb
