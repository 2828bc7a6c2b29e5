// The container runtime: one container per branch, run by Docker or Podman.
//
// A branch's container runs the image's own `postgres` as its PID 1 (--entrypoint), as the
// image's postgres uid, with host networking (pgbranch picks the port; the engine needs no
// bridge) and the branch's volume bind-mounted at its host path, so pgbranch.conf, the socket
// directory and the WAL archive mean the same inside and out. SIGINT is its stop signal, so
// `stop` is PostgreSQL's fast shutdown; `kill -s QUIT` its immediate one.
//
// The engine is the truth about what runs: Inspect asks it for the container's state (running,
// exited with its code, restarting) and reads postmaster.pid only to tell "starting" from
// "ready". A stopped container is kept (its log stays readable with `branch logs`) until the
// next Start replaces it or Remove deletes it.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/fs.h"
#include "pg/cluster.h"
#include "runtime/container.h"
#include "runtime/runtime.h"

namespace pgb {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Json = nlohmann::json;

constexpr auto kCliTimeout = std::chrono::seconds(120);
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr auto kKillWait = std::chrono::seconds(10);

bool NoSuchContainer(const std::string& err) {
  std::string lower = err;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("no such container") != std::string::npos ||
         lower.find("no such object") != std::string::npos ||
         lower.find("no container with name or id") != std::string::npos;
}

// Docker and Podman print RFC 3339 with nanoseconds ("2026-11-21T14:30:00.123456789Z");
// ParseTimestamp takes up to milliseconds.
std::optional<TimePoint> ParseEngineTime(std::string text) {
  size_t dot = text.find('.');
  if (dot != std::string::npos) {
    size_t end = dot + 1;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
    text.erase(std::min(dot + 4, end), end - std::min(dot + 4, end));
  }
  Result<TimePoint> t = ParseTimestamp(text);
  if (!t.ok() || t->time_since_epoch().count() <= 0) return std::nullopt;
  return *t;
}

class ContainerRuntime : public Runtime {
 public:
  ContainerRuntime(ProcessRunner& runner, std::string engine)
      : runner_(runner), engine_(std::move(engine)) {}

  std::string Kind() const override { return engine_; }

  Status Start(const InstanceSpec& spec) override {
    PGB_ASSIGN_OR_RETURN(State state, Query(spec.container_name));
    if (state.exists && state.status.running) {
      return Status::FailedPrecondition(fmt::format("container {} of {} already runs",
                                                    spec.container_name, spec.name));
    }
    if (state.exists) PGB_RETURN_IF_ERROR(Remove(spec));
    if (!spec.os_user) return Status::Internal("a container needs the image's postgres uid");
    std::vector<std::string> argv = {"run", "--detach", "--name", spec.container_name};
    for (auto& flag : EngineRunFlags(engine_)) argv.push_back(std::move(flag));
    for (auto& flag : SpecFlags(spec)) argv.push_back(std::move(flag));
    argv.insert(argv.end(), {"--network", "host", "--stop-signal", "SIGINT",
                             // PostgreSQL's parallel queries use POSIX shared memory in /dev/shm,
                             // which engines limit to 64 MB by default.
                             "--shm-size", "256m", "--entrypoint",
                             JoinPath(spec.bin_dir, "postgres"), spec.image, "-D", spec.data_dir});
    PGB_RETURN_IF_ERROR(Cli(argv, fmt::format("start container {}", spec.container_name)).status());
    return Status::OK();
  }

  Status Stop(const InstanceSpec& spec, StopMode mode, std::chrono::milliseconds timeout) override {
    PGB_ASSIGN_OR_RETURN(State state, Query(spec.container_name));
    if (!state.exists || !state.status.running) return Status::OK();
    if (mode == StopMode::kFast) {
      // SIGINT (the stop signal), then SIGKILL after the timeout: `stop` waits for the exit.
      auto seconds = std::max<long long>(
          1, std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
      Command cmd = EngineCommand({"stop", "--time", std::to_string(seconds), spec.container_name});
      cmd.timeout = timeout + kCliTimeout;
      PGB_ASSIGN_OR_RETURN(CommandResult r, runner_.Run(cmd));
      if (!r.Succeeded() && !NoSuchContainer(r.err)) {
        return EngineError(engine_, fmt::format("stop container {}", spec.container_name), r.err);
      }
      return Status::OK();
    }
    // Immediate shutdown: SIGQUIT, then SIGKILL if the postmaster outlives the timeout.
    PGB_RETURN_IF_ERROR(Signal(spec, "SIGQUIT"));
    if (WaitStopped(spec, std::min<std::chrono::milliseconds>(timeout, kKillWait))) {
      return Status::OK();
    }
    spdlog::warn("{}: container {} ignores SIGQUIT; sending SIGKILL", spec.name,
                 spec.container_name);
    PGB_RETURN_IF_ERROR(Signal(spec, "SIGKILL"));
    if (!WaitStopped(spec, kKillWait)) {
      return Status::Unavailable(
          fmt::format("container {} survives SIGKILL", spec.container_name));
    }
    return Status::OK();
  }

  Result<InstanceStatus> Inspect(const InstanceSpec& spec) override {
    PGB_ASSIGN_OR_RETURN(State state, Query(spec.container_name));
    if (state.exists && state.status.running) {
      // PostgreSQL's own word on whether it accepts connections yet.
      Result<std::optional<PostmasterPid>> file = ReadPostmasterPid(spec.data_dir);
      std::string pg_status = file.ok() && file->has_value() ? (*file)->status : "";
      state.status.ready = pg_status == "ready" || pg_status == "standby";
      if (!state.status.ready) {
        state.status.detail = pg_status.empty() ? "running (starting)"
                                                : fmt::format("running ({})", pg_status);
      }
    }
    return state.status;
  }

  Result<std::string> Logs(const InstanceSpec& spec, int tail_lines) override {
    if (tail_lines <= 0) return std::string();
    Command cmd =
        EngineCommand({"logs", "--tail", std::to_string(tail_lines), spec.container_name});
    cmd.timeout = kCliTimeout;
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_.Run(cmd));
    if (!r.Succeeded()) {
      if (NoSuchContainer(r.err)) return std::string();
      return EngineError(engine_, fmt::format("read the log of {}", spec.container_name), r.err);
    }
    // PostgreSQL writes its log to stderr; the engine replays the container's stderr there.
    return TailLines(r.out + r.err, tail_lines);
  }

  Result<CommandResult> RunTool(const InstanceSpec& spec, const std::string& tool,
                                const std::vector<std::string>& args,
                                std::chrono::milliseconds timeout) override {
    if (!spec.os_user) return Status::Internal("a container needs the image's postgres uid");
    Command cmd = ThrowawayCommand(engine_, spec.image, JoinPath(spec.bin_dir, tool), args,
                                   SpecFlags(spec));
    cmd.timeout = timeout + kCliTimeout;
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_.Run(cmd));
    if (!r.Succeeded() && r.exit_code == 125) {
      // The engine's own failure (no such image, daemon gone), not the tool's.
      return EngineError(engine_, fmt::format("run {} in {}", tool, spec.image), r.err);
    }
    return r;
  }

  Status Remove(const InstanceSpec& spec) override {
    PGB_ASSIGN_OR_RETURN(CommandResult r,
                         runner_.Run(EngineCommand({"rm", "--force", spec.container_name})));
    if (!r.Succeeded() && !NoSuchContainer(r.err)) {
      return EngineError(engine_, fmt::format("remove container {}", spec.container_name), r.err);
    }
    return Status::OK();
  }

  Status Rename(const InstanceSpec& from, const InstanceSpec& to) override {
    if (from.container_name == to.container_name) return Status::OK();
    PGB_ASSIGN_OR_RETURN(
        CommandResult r,
        runner_.Run(EngineCommand({"rename", from.container_name, to.container_name})));
    if (!r.Succeeded() && !NoSuchContainer(r.err)) {
      return EngineError(engine_, fmt::format("rename container {}", from.container_name), r.err);
    }
    return Status::OK();
  }

  Result<std::vector<RuntimeInstance>> ListInstances(const std::string& home) override {
    PGB_ASSIGN_OR_RETURN(
        CommandResult ids,
        runner_.Run(EngineCommand({"ps", "--all", "--quiet", "--no-trunc", "--filter",
                                   fmt::format("label={}={}", kLabelHome, home)})));
    if (!ids.Succeeded()) return EngineError(engine_, "list containers", ids.err);
    // One line per container, the same from Docker and Podman: id, name, state, labels.
    std::vector<std::string> argv = {
        "container", "inspect", "--format",
        "{{.Id}}\t{{.Name}}\t{{.State.Status}}\t{{json .Config.Labels}}"};
    size_t base = argv.size();
    for (std::string& line : SplitLines(ids.out)) argv.push_back(std::move(line));
    std::vector<RuntimeInstance> out;
    if (argv.size() == base) return out;
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_.Run(EngineCommand(argv)));
    // A container removed between the two calls makes inspect fail for it alone.
    if (!r.Succeeded() && !NoSuchContainer(r.err)) {
      return EngineError(engine_, "inspect containers", r.err);
    }
    for (const std::string& line : SplitLines(r.out)) {
      std::vector<std::string> f;
      size_t pos = 0;
      for (int i = 0; i < 3; ++i) {
        size_t tab = line.find('\t', pos);
        if (tab == std::string::npos) break;
        f.push_back(line.substr(pos, tab - pos));
        pos = tab + 1;
      }
      if (f.size() != 3) continue;
      RuntimeInstance inst;
      inst.id = f[0];
      inst.name = f[1];
      if (!inst.name.empty() && inst.name[0] == '/') inst.name.erase(0, 1);  // Docker's
      inst.state = f[2];
      Json labels = Json::parse(line.substr(pos), nullptr, /*allow_exceptions=*/false);
      if (labels.is_object()) {
        inst.branch = labels.value(kLabelBranch, "");
        std::string id = labels.value(kLabelBranchId, "");
        std::from_chars(id.data(), id.data() + id.size(), inst.branch_id);
      }
      out.push_back(std::move(inst));
    }
    return out;
  }

 private:
  struct State {
    bool exists = false;
    InstanceStatus status;
  };

  Command EngineCommand(const std::vector<std::string>& args) const {
    return pgb::EngineCommand(engine_, args, kCliTimeout);
  }

  Result<CommandResult> Cli(const std::vector<std::string>& args, std::string_view what) {
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_.Run(EngineCommand(args)));
    if (!r.Succeeded()) return EngineError(engine_, what, r.err);
    return r;
  }

  // Flags shared by a branch's container and a tool's throwaway one: who runs, what is
  // mounted, the labels.
  static std::vector<std::string> SpecFlags(const InstanceSpec& spec) {
    std::vector<std::string> flags = {
        "--user", fmt::format("{}:{}", spec.os_user->uid, spec.os_user->gid), "--workdir", "/"};
    std::vector<std::string> mounts = {spec.data_dir};
    for (const auto& m : spec.mounts) {
      if (std::find(mounts.begin(), mounts.end(), m) == mounts.end()) mounts.push_back(m);
    }
    for (const auto& m : mounts) flags.insert(flags.end(), {"--volume", fmt::format("{}:{}", m, m)});
    for (const auto& [key, value] : spec.labels) {
      flags.insert(flags.end(), {"--label", fmt::format("{}={}", key, value)});
    }
    return flags;
  }

  Status Signal(const InstanceSpec& spec, const char* signal) {
    PGB_ASSIGN_OR_RETURN(
        CommandResult r,
        runner_.Run(EngineCommand({"kill", "--signal", signal, spec.container_name})));
    // Killing a container that just exited fails (Docker: "is not running"; Podman: "can only
    // kill running containers"): that is success here.
    if (!r.Succeeded() && !NoSuchContainer(r.err) &&
        r.err.find("not running") == std::string::npos &&
        r.err.find("can only kill running") == std::string::npos) {
      return EngineError(engine_, fmt::format("signal container {}", spec.container_name), r.err);
    }
    return Status::OK();
  }

  bool WaitStopped(const InstanceSpec& spec, std::chrono::milliseconds wait) {
    const auto deadline = SteadyClock::now() + wait;
    while (true) {
      Result<State> state = Query(spec.container_name);
      if (state.ok() && (!state->exists || !state->status.running)) return true;
      if (SteadyClock::now() >= deadline) return false;
      std::this_thread::sleep_for(kPollInterval);
    }
  }

  // The engine's view of one container.
  Result<State> Query(const std::string& name) {
    PGB_ASSIGN_OR_RETURN(CommandResult r, runner_.Run(EngineCommand(
                                              {"container", "inspect", "--format",
                                               "{{json .State}}", name})));
    State state;
    if (!r.Succeeded()) {
      if (NoSuchContainer(r.err)) {
        state.status.detail = "stopped (no container)";
        return state;
      }
      return EngineError(engine_, fmt::format("inspect container {}", name), r.err);
    }
    Json j = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      return Status::Internal(
          fmt::format("{} inspect printed no state for {}: {}", engine_, name, TailLines(r.out, 2)));
    }
    state.exists = true;
    std::string status = j.value("Status", "");
    bool running = j.value("Running", false);
    bool restarting = j.value("Restarting", false);
    int exit_code = j.value("ExitCode", 0);
    InstanceStatus& st = state.status;
    // Podman says "stopped" and Docker "dead" for what is, to a user, an exited container.
    bool exited = status == "exited" || status == "stopped" || status == "dead";
    st.engine_state = restarting ? "restarting" : exited ? "exited" : status;
    if (running && !restarting && status != "paused") {
      st.running = true;
      st.pid = j.value("Pid", 0);
      st.started_at = ParseEngineTime(j.value("StartedAt", ""));
      st.detail = "running";
    } else if (restarting || status == "restarting") {
      st.detail = "restarting";
    } else if (exited) {
      st.detail = j.value("OOMKilled", false)
                      ? fmt::format("exited (code {}, out of memory)", exit_code)
                      : fmt::format("exited (code {})", exit_code);
    } else {
      st.detail = status.empty() ? "unknown" : status;  // created, paused, removing
    }
    return state;
  }

  ProcessRunner& runner_;
  const std::string engine_;
};

}  // namespace

bool IsContainerRuntime(std::string_view kind) { return kind == "docker" || kind == "podman"; }

std::unique_ptr<Runtime> NewContainerRuntime(ProcessRunner& runner, const std::string& engine) {
  return std::make_unique<ContainerRuntime>(runner, engine);
}

}  // namespace pgb
