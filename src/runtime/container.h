// Containers: how pgbranch names them and talks to their engines, and the images it runs.
//
// Docker and Podman are driven through their command lines, one argv vector per call (never a
// shell): their `run`, `inspect`, `stop`, `kill`, `logs`, `rm`, `rename`, `ps`, `image
// inspect` and `import` verbs take the same flags for everything pgbranch uses, so one
// implementation serves both (Docker CLI reference, docs.docker.com/reference/cli/docker/;
// Podman, docs.podman.io/en/latest/Commands.html).
//
// The images pgbranch runs are laid out like the official `postgres` images: the server
// binaries under /usr/lib/postgresql/<major>/bin or on PATH, and a `postgres` account. pgbranch
// runs `initdb` and `postgres` itself (--entrypoint), so no entrypoint script is involved and
// no secret is ever passed to a container: the password is set over the socket afterwards.

#ifndef PGBRANCH_RUNTIME_CONTAINER_H_
#define PGBRANCH_RUNTIME_CONTAINER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/subprocess.h"

namespace pgb {

// argv prefix for `engine` ("docker" or "podman"). Podman is told to keep its events in a file
// and manage cgroups itself, which works with or without systemd as PID 1.
std::vector<std::string> EngineArgv(std::string_view engine);

// `engine args...` (EngineArgv first), killed after `timeout`.
Command EngineCommand(std::string_view engine, const std::vector<std::string>& args,
                      std::chrono::milliseconds timeout = std::chrono::seconds(120));

// A throwaway container of `image` without network that runs `program args...` and is removed
// when it exits: `run --rm --network none`, EngineRunFlags, `flags` (user, mounts, ...), then
// `--entrypoint program image args...`.
Command ThrowawayCommand(std::string_view engine, const std::string& image,
                         const std::string& program, const std::vector<std::string>& args,
                         const std::vector<std::string>& flags = {});

// Flags every `run` of `engine` gets. For Podman, the resource limits pgbranch itself has:
// rootful Podman otherwise asks the OCI runtime for nofile 1048576 and nproc 4194304, which
// fails ("error setting rlimit") wherever pgbranch lacks CAP_SYS_RESOURCE (inside another
// container or a sandbox); nproc is capped at 32768, the limit Podman gives its own conmon.
std::vector<std::string> EngineRunFlags(std::string_view engine);

// 8 lowercase hex digits of SHA-256(home): what keeps the host-wide names of two pgbranch
// homes apart (containers, the projects' OS accounts).
std::string HomeTag(const std::string& home);

// The container of branch `project`/`branch` in the pgbranch home `home`:
// "pgbranch-<HomeTag(home)>.<project>.<branch>". Project and branch names cannot hold '.', so
// the parts stay unambiguous.
std::string ContainerName(const std::string& home, const std::string& project,
                          const std::string& branch);

// Unavailable with a hint to start the engine when `err` (an engine's stderr) says its daemon
// or service cannot be reached; else CommandFailed with `what` and the last lines of `err`.
Status EngineError(std::string_view engine, std::string_view what, const std::string& err);

// What an image holds, found by ProbeImage.
struct ImageInfo {
  std::string image;    // the reference probed
  std::string id;       // the engine's image id ("sha256:...")
  std::string bin_dir;  // "/usr/lib/postgresql/17/bin"
  int major = 0;        // 17
  std::string version;  // "17.6"
  uid_t uid = 0;        // of the image's `postgres` account
  gid_t gid = 0;
};

// Inspects `image` in `engine`'s local store and runs throwaway containers of it to find the
// PostgreSQL binaries (PG_MAJOR's /usr/lib/postgresql/N/bin first, then PATH's directories)
// and the uid/gid of `postgres` in its /etc/passwd. NotFound if the image is not in the store
// (with the command that builds or pulls it), FailedPrecondition if it has no postgres/initdb
// or no postgres account, Unavailable if the engine is not running.
Result<ImageInfo> ProbeImage(ProcessRunner& runner, std::string_view engine,
                             const std::string& image);

// The id of `image` in `engine`'s local store. NotFound (with how to get it) if absent;
// Unavailable if the engine is not running.
Result<std::string> ImageId(ProcessRunner& runner, std::string_view engine,
                            const std::string& image);

// "repository:tag" of every image in `engine`'s store whose repository is `repository`.
Result<std::vector<std::string>> ListImages(ProcessRunner& runner, std::string_view engine,
                                            const std::string& repository);

// The repository of the images `pgbranch image build` makes.
inline constexpr const char* kImageRepository = "pgbranch/postgres";

// The image `pgbranch image build --pg-version N` makes: "pgbranch/postgres:N".
std::string DefaultImageName(int major);

// The Debian release that ships PostgreSQL `major` as its postgresql-N package: 13 bullseye,
// 15 bookworm, 17 trixie. InvalidArgument for any other major.
Result<std::string> DebianReleaseFor(int major);

struct ImageBuildOptions {
  int major = 0;                     // 13, 15 or 17
  std::vector<std::string> engines;  // import into each: "docker", "podman"
  std::string image;                 // tag; empty: DefaultImageName(major)
  std::string work_dir;              // scratch space (the root file system is built here)
  std::string mirror = "http://deb.debian.org/debian";
};

// Builds an image without a registry: `debootstrap --variant=minbase --include=postgresql-N`
// of DebianReleaseFor(major) into work_dir, the cluster Debian's packaging made removed, then
// `tar` of that tree and `<engine> import` with PG_MAJOR, PATH and USER set (--change). Each
// step is an argv; the scratch tree is removed whatever happens. `progress` gets one line per
// step. Returns the probed image of the first engine.
Result<ImageInfo> BuildImage(ProcessRunner& runner, const ImageBuildOptions& options,
                             const std::function<void(std::string_view)>& progress);

}  // namespace pgb

#endif  // PGBRANCH_RUNTIME_CONTAINER_H_
