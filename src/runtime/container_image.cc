// Container engines' command lines, container names, and the images pgbranch runs (container.h).

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/digest.h"
#include "common/fs.h"
#include "common/random.h"
#include "pg/cluster.h"
#include "runtime/container.h"

namespace pgb {
namespace {

constexpr auto kBuildTimeout = std::chrono::minutes(30);
constexpr const char* kSystemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// uid and gid of `name` in a passwd(5) file.
std::optional<std::pair<uid_t, gid_t>> PasswdEntry(const std::string& passwd,
                                                   std::string_view name) {
  for (const std::string& entry : SplitLines(passwd)) {
    std::string_view line(entry);
    std::vector<std::string_view> fields;
    size_t start = 0;
    while (true) {
      size_t colon = line.find(':', start);
      fields.push_back(line.substr(start, colon == std::string_view::npos ? colon : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (fields.size() < 4 || fields[0] != name) continue;
    uid_t uid = 0;
    gid_t gid = 0;
    auto [p1, e1] = std::from_chars(fields[2].data(), fields[2].data() + fields[2].size(), uid);
    auto [p2, e2] = std::from_chars(fields[3].data(), fields[3].data() + fields[3].size(), gid);
    if (e1 != std::errc() || e2 != std::errc()) return std::nullopt;
    return std::make_pair(uid, gid);
  }
  return std::nullopt;
}

// Unmounts whatever is still mounted below `root` (debootstrap mounts /proc and /sys in its
// target and may leave them when it fails), deepest first, so removing the tree cannot reach
// into the host's /proc.
void UnmountBelow(const std::string& root) {
  Result<std::string> mounts = ReadFile("/proc/self/mounts");
  if (!mounts.ok()) return;
  std::vector<std::string> below;
  for (const std::string& line : SplitLines(*mounts)) {
    size_t a = line.find(' ');
    size_t b = a == std::string::npos ? a : line.find(' ', a + 1);
    if (b == std::string::npos) continue;
    std::string target = line.substr(a + 1, b - a - 1);
    if (target.rfind(root + "/", 0) == 0) below.push_back(target);
  }
  std::sort(below.rbegin(), below.rend());
  for (const auto& m : below) {
    if (::umount2(m.c_str(), MNT_DETACH) != 0) spdlog::warn("could not unmount {}", m);
  }
}

}  // namespace

Command EngineCommand(std::string_view engine, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout) {
  Command cmd;
  cmd.argv = EngineArgv(engine);
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.timeout = timeout;
  return cmd;
}

Command ThrowawayCommand(std::string_view engine, const std::string& image,
                         const std::string& program, const std::vector<std::string>& args,
                         const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {"run", "--rm", "--network", "none"};
  for (auto& flag : EngineRunFlags(engine)) argv.push_back(std::move(flag));
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"--entrypoint", program, image});
  argv.insert(argv.end(), args.begin(), args.end());
  return EngineCommand(engine, argv);
}

std::vector<std::string> EngineArgv(std::string_view engine) {
  if (engine == "podman") {
    return {"podman", "--cgroup-manager=cgroupfs", "--events-backend=file"};
  }
  return {std::string(engine)};
}

std::vector<std::string> EngineRunFlags(std::string_view engine) {
  if (engine != "podman") return {};
  auto limit = [](int resource, rlim_t cap) {
    struct rlimit rl = {};
    if (::getrlimit(resource, &rl) != 0) rl.rlim_cur = rl.rlim_max = cap;
    rlim_t soft = std::min(rl.rlim_cur, cap), hard = std::min(rl.rlim_max, cap);
    return fmt::format("{}:{}", soft, hard);
  };
  return {"--ulimit", "nofile=" + limit(RLIMIT_NOFILE, 1048576), "--ulimit",
          "nproc=" + limit(RLIMIT_NPROC, 32768)};
}

std::string HomeTag(const std::string& home) { return Sha256Hex(home).substr(0, 8); }

std::string ContainerName(const std::string& home, const std::string& project,
                          const std::string& branch) {
  return fmt::format("pgbranch-{}.{}.{}", HomeTag(home), project, branch);
}

Status EngineError(std::string_view engine, std::string_view what, const std::string& err) {
  std::string last = TailLines(err, 3);
  if (err.find("Cannot connect to the Docker daemon") != std::string::npos ||
      err.find("Is the docker daemon running") != std::string::npos ||
      err.find("cannot connect to Podman") != std::string::npos) {
    return Status::Unavailable(
        fmt::format("cannot {}: the {} engine is not running ({}); start it{}", what, engine, last,
                    engine == "docker" ? " (dockerd, or 'systemctl start docker')" : ""));
  }
  return Status::CommandFailed(fmt::format("cannot {}: {}", what, last));
}

std::string DefaultImageName(int major) { return fmt::format("{}:{}", kImageRepository, major); }

Result<std::string> DebianReleaseFor(int major) {
  switch (major) {
    case 13:
      return std::string("bullseye");
    case 15:
      return std::string("bookworm");
    case 17:
      return std::string("trixie");
    default:
      return Status::InvalidArgument(fmt::format(
          "no Debian release pgbranch builds from ships PostgreSQL {}; choose 13 (bullseye), "
          "15 (bookworm) or 17 (trixie), or run any image laid out like the official postgres "
          "images with --image",
          major));
  }
}

namespace {

// `engine image inspect --format FORMAT image`'s output; NotFound with how to get the image.
Result<std::string> InspectImage(ProcessRunner& runner, std::string_view engine,
                                 const std::string& image, const std::string& format) {
  PGB_ASSIGN_OR_RETURN(
      CommandResult r,
      runner.Run(EngineCommand(engine, {"image", "inspect", "--format", format, image})));
  if (r.Succeeded()) return r.out;
  if (r.err.find("No such image") != std::string::npos ||
      r.err.find("image not known") != std::string::npos ||
      r.err.find("no such image") != std::string::npos) {
    return Status::NotFound(
        fmt::format("image {} is not in {}'s image store; build one with 'pgbranch image build "
                    "--pg-version N --runtime {}' or fetch it with '{} pull {}'",
                    image, engine, engine, engine, image));
  }
  return EngineError(engine, fmt::format("inspect image {}", image), r.err);
}

}  // namespace

Result<std::string> ImageId(ProcessRunner& runner, std::string_view engine,
                            const std::string& image) {
  PGB_ASSIGN_OR_RETURN(std::string id, InspectImage(runner, engine, image, "{{.Id}}"));
  return TailLines(id, 1);
}

Result<std::vector<std::string>> ListImages(ProcessRunner& runner, std::string_view engine,
                                            const std::string& repository) {
  PGB_ASSIGN_OR_RETURN(
      CommandResult r,
      runner.Run(EngineCommand(engine, {"image", "ls", "--format", "{{.Repository}}:{{.Tag}}"})));
  if (!r.Succeeded()) return EngineError(engine, "list images", r.err);
  std::vector<std::string> out;
  for (const std::string& line : SplitLines(r.out)) {
    // Podman names local images "localhost/<repository>".
    std::string bare = line.rfind("localhost/", 0) == 0 ? line.substr(10) : line;
    if (bare.rfind(repository + ":", 0) == 0) out.push_back(bare);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<ImageInfo> ProbeImage(ProcessRunner& runner, std::string_view engine,
                             const std::string& image) {
  ImageInfo info;
  info.image = image;
  // One inspect: the id, a tab, then the environment as JSON.
  PGB_ASSIGN_OR_RETURN(std::string inspected,
                       InspectImage(runner, engine, image, "{{.Id}}\t{{json .Config.Env}}"));
  size_t tab = inspected.find('\t');
  info.id = inspected.substr(0, tab);
  nlohmann::json env = nlohmann::json::parse(
      tab == std::string::npos ? std::string() : inspected.substr(tab + 1), nullptr, false);
  std::string pg_major;
  std::vector<std::string> path;
  for (const auto& e : env.is_array() ? env : nlohmann::json::array()) {
    if (!e.is_string()) continue;
    std::string kv = e.get<std::string>();
    if (kv.rfind("PG_MAJOR=", 0) == 0) pg_major = kv.substr(9);
    if (kv.rfind("PATH=", 0) != 0) continue;
    std::string p = kv.substr(5);
    size_t pos = 0;
    while (pos <= p.size()) {
      size_t end = p.find(':', pos);
      if (end == std::string::npos) end = p.size();
      if (end > pos) path.push_back(p.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  // Where the official images and Debian's packages put the server, then PATH.
  std::vector<std::string> candidates;
  if (!pg_major.empty()) candidates.push_back(fmt::format("/usr/lib/postgresql/{}/bin", pg_major));
  for (const auto& p : path) candidates.push_back(p);
  if (path.empty()) {
    for (const char* p : {"/usr/local/bin", "/usr/bin"}) candidates.push_back(p);
  }
  std::string tried;
  for (const auto& dir : candidates) {
    PGB_ASSIGN_OR_RETURN(
        CommandResult r,
        runner.Run(ThrowawayCommand(engine, image, JoinPath(dir, "postgres"), {"--version"})));
    if (r.exit_code == 125 && !r.Succeeded()) {
      // The engine could not even create the container (no such file, permission): try on.
      tried += (tried.empty() ? "" : ", ") + dir;
      if (r.err.find("no such file") == std::string::npos &&
          r.err.find("not found") == std::string::npos &&
          r.err.find("executable file") == std::string::npos) {
        return EngineError(engine, fmt::format("run a container of {}", image), r.err);
      }
      continue;
    }
    if (!r.Succeeded()) {
      tried += (tried.empty() ? "" : ", ") + dir;
      continue;
    }
    PGB_ASSIGN_OR_RETURN(PgBinaries bins, ParsePostgresVersion(dir, r.out));
    info.bin_dir = bins.bin_dir;
    info.major = bins.major;
    info.version = bins.version;
    break;
  }
  if (info.bin_dir.empty()) {
    return Status::FailedPrecondition(fmt::format(
        "image {} has no postgres binary (looked in {}); use an image laid out like the "
        "official postgres images",
        image, tried.empty() ? "nothing" : tried));
  }
  PGB_ASSIGN_OR_RETURN(CommandResult passwd,
                       runner.Run(ThrowawayCommand(engine, image, "cat", {"/etc/passwd"})));
  auto ids = passwd.Succeeded() ? PasswdEntry(passwd.out, "postgres") : std::nullopt;
  if (!ids) {
    return Status::FailedPrecondition(
        fmt::format("image {} has no postgres account in /etc/passwd", image));
  }
  if (ids->first == 0) {
    return Status::FailedPrecondition(fmt::format(
        "the postgres account of image {} is uid 0; PostgreSQL refuses to run as root", image));
  }
  info.uid = ids->first;
  info.gid = ids->second;
  return info;
}

Result<ImageInfo> BuildImage(ProcessRunner& runner, const ImageBuildOptions& options,
                             const std::function<void(std::string_view)>& progress) {
  PGB_ASSIGN_OR_RETURN(std::string release, DebianReleaseFor(options.major));
  if (options.engines.empty()) return Status::InvalidArgument("no container engine to import into");
  const std::string image = options.image.empty() ? DefaultImageName(options.major) : options.image;
  const std::string root =
      JoinPath(options.work_dir, fmt::format("image-{}-{}", options.major, RandomPassword(8)));
  const std::string tarball = root + ".tar";
  PGB_RETURN_IF_ERROR(EnsureDir(options.work_dir, 0700));
  auto cleanup = [&] {
    UnmountBelow(root);
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
    std::filesystem::remove(tarball, ec);
  };
  auto run = [&](std::string_view step, Command cmd) -> Status {
    if (progress) progress(step);
    cmd.timeout = kBuildTimeout;
    Result<CommandResult> r = RunChecked(runner, cmd);
    return r.status();
  };
  Status s = [&]() -> Status {
    Command debootstrap;
    debootstrap.argv = {"debootstrap",
                        "--variant=minbase",
                        fmt::format("--include=postgresql-{}", options.major),
                        release,
                        root,
                        options.mirror};
    debootstrap.env = {{"DEBIAN_FRONTEND", "noninteractive"}};
    PGB_RETURN_IF_ERROR(run(
        fmt::format("debootstrap {} with postgresql-{} (a few minutes)", release, options.major),
        debootstrap));
    // Debian's packaging made a cluster of its own; pgbranch runs initdb itself.
    std::error_code ec;
    std::filesystem::remove_all(JoinPath(root, fmt::format("var/lib/postgresql/{}", options.major)),
                                ec);
    std::filesystem::remove_all(JoinPath(root, fmt::format("etc/postgresql/{}", options.major)),
                                ec);
    std::filesystem::remove_all(JoinPath(root, "var/cache/apt/archives"), ec);
    std::filesystem::create_directories(JoinPath(root, "var/cache/apt/archives/partial"), ec);
    UnmountBelow(root);
    Command tar;
    tar.argv = {"tar", "--numeric-owner", "--one-file-system", "-C", root, "-cf", tarball, "."};
    PGB_RETURN_IF_ERROR(run("pack the root file system", tar));
    for (const auto& engine : options.engines) {
      Command import = EngineCommand(
          engine,
          {"import", "--change", fmt::format("ENV PG_MAJOR={}", options.major), "--change",
           fmt::format("ENV PATH=/usr/lib/postgresql/{}/bin:{}", options.major, kSystemPath),
           "--change", "ENV LANG=C.UTF-8", "--change", "USER postgres", "--change",
           fmt::format("LABEL io.pgbranch.pg-major={}", options.major), tarball, image});
      PGB_RETURN_IF_ERROR(run(fmt::format("{} import as {}", engine, image), import));
    }
    return Status::OK();
  }();
  cleanup();
  PGB_RETURN_IF_ERROR(s);
  return ProbeImage(runner, options.engines.front(), image);
}

}  // namespace pgb
