// Test helpers for ZFS: a zfs-fuse daemon started on demand, and a throwaway file-backed zpool.
// Header-only, for the unit tests (storage/zfs_pool_test.cc) and the end-to-end tests.
//
// Needs root, /dev/fuse and Debian's zfs-fuse package (or a host whose OpenZFS answers
// `zpool list`, in which case no daemon is started). Everything goes through a ProcessRunner:
// no shell. A daemon is stopped only by the ZfsFuseDaemon that started it, and only after the
// tests destroyed their zpools (a pool left imported would be imported again at the next start,
// from /var/lib/zfs/zpool.cache).
//
// Why the zombie check: where PID 1 does not reap orphans, a daemon that exited stays a zombie
// with its /proc entry; a zombie counts as not running.

#ifndef PGBRANCH_STORAGE_ZFS_TESTUTIL_H_
#define PGBRANCH_STORAGE_ZFS_TESTUTIL_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/random.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "storage/pool_testutil.h"

namespace pgb {
namespace zfs_test {

// True if `pid` is a live (not zombie) process named zfs-fuse, from /proc/PID/stat.
inline bool IsLiveZfsFuse(pid_t pid) {
  Result<std::string> stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) return false;
  // "PID (COMM) STATE ...": COMM may hold spaces and parentheses; the state follows the last ')'.
  size_t open = stat->find('('), close = stat->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat->size()) {
    return false;
  }
  return stat->substr(open + 1, close - open - 1) == "zfs-fuse" && (*stat)[close + 2] != 'Z';
}

// True if a live zfs-fuse process runs, whoever started it.
inline bool AnyZfsFuseRuns() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (IsLiveZfsFuse(static_cast<pid_t>(std::stol(name)))) return true;
  }
  return false;
}

// True if `zpool list` answers, i.e. some ZFS (zfs-fuse or OpenZFS) serves the commands.
inline bool ZpoolAnswers(ProcessRunner& runner) {
  Command command;
  command.argv = {"zpool", "list", "-H", "-o", "name"};
  command.timeout = std::chrono::seconds(10);
  Result<CommandResult> result = runner.Run(command);
  return result.ok() && result->Succeeded();
}

// Makes sure ZFS answers, starting zfs-fuse if needed; stops it again (StopIfStarted, or the
// destructor) only if it was this object that started it.
class ZfsFuseDaemon {
 public:
  ZfsFuseDaemon() = default;
  ZfsFuseDaemon(const ZfsFuseDaemon&) = delete;
  ZfsFuseDaemon& operator=(const ZfsFuseDaemon&) = delete;
  ~ZfsFuseDaemon() { (void)StopIfStarted(); }

  // OK once `zpool list` answers. If it does not and no zfs-fuse runs, starts
  // `zfs-fuse --no-daemon` detached (its log in /run) and waits up to 15 s for it.
  Status Ensure(ProcessRunner& runner) {
    using Clock = std::chrono::steady_clock;
    if (ZpoolAnswers(runner)) return Status::OK();
    if (!AnyZfsFuseRuns()) {
      if (!PathExists("/dev/fuse")) {
        return Status::FailedPrecondition("/dev/fuse is missing; zfs-fuse needs FUSE");
      }
      Command command;
      command.argv = {"zfs-fuse", "--no-daemon"};
      Result<pid_t> pid = runner.SpawnDaemon(command, kLogPath);
      if (!pid.ok()) {
        return Status(pid.status().code(),
                      "start zfs-fuse (apt-get install zfs-fuse): " + pid.status().message());
      }
      pid_ = *pid;
    }
    for (auto deadline = Clock::now() + std::chrono::seconds(15); !ZpoolAnswers(runner);) {
      if (Clock::now() >= deadline) {
        return Status::Unavailable("zfs-fuse runs but `zpool list` does not answer; see " +
                                   std::string(kLogPath));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return Status::OK();
  }

  bool started() const { return pid_ != 0; }

  // Stops the daemon this object started (SIGTERM, SIGKILL after 20 s) and removes its log.
  // OK if it started none.
  Status StopIfStarted() {
    if (pid_ == 0) return Status::OK();
    pid_t pid = pid_;
    pid_ = 0;
    ::kill(pid, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (IsLiveZfsFuse(pid)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid, SIGKILL);
        return Status::Unavailable("zfs-fuse ignored SIGTERM for 20 s; killed it");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    (void)RemoveFile(kLogPath);
    return Status::OK();
  }

 private:
  static constexpr const char* kLogPath = "/run/pgbranch-test-zfs-fuse.log";
  pid_t pid_ = 0;
};

// A zpool on a sparse file in a fresh temporary directory ("pgbt" + random hex, mountpoint
// none), destroyed again by Destroy() or the destructor, leaving no pool, mount or directory.
class TempZpool {
 public:
  TempZpool() = default;
  TempZpool(const TempZpool&) = delete;
  TempZpool& operator=(const TempZpool&) = delete;
  ~TempZpool() { (void)Destroy(); }

  // Creates the directory, a sparse file of `size` bytes and the pool on it.
  Status Create(ProcessRunner& runner, uint64_t size) {
    runner_ = &runner;
    char tmpl[] = "/tmp/pgb-zfs-test-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return PosixError("mkdtemp", errno);
    dir_ = tmpl;
    std::string file = dir_ + "/vdev.img";
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return PosixError("create " + file, errno);
    int rc = ::ftruncate(fd, static_cast<off_t>(size));
    int err = errno;
    ::close(fd);
    if (rc != 0) return PosixError("truncate " + file, err);
    name_ = "pgbt" + RandomHex(4);
    Command command;
    command.argv = {"zpool", "create", "-m", "none", name_, file};
    command.timeout = std::chrono::seconds(60);
    Status status = RunChecked(runner, command).status();
    if (!status.ok()) name_.clear();
    return status;
  }

  // Destroys the pool (retrying while zfs-fuse says it is busy, then with -f), detaches
  // whatever is still mounted below the directory, and removes the directory. If the pool
  // cannot be destroyed, its directory and backing file stay (removing the file under an
  // imported pool would leave a FAULTED pool in zpool.cache): the error says which pool.
  Status Destroy() {
    Status status;
    if (!name_.empty()) {
      PGB_RETURN_IF_ERROR(DestroyPool().WithContext("destroy zpool " + name_ + " in " + dir_));
      name_.clear();
    }
    if (!dir_.empty()) {
      for (const std::string& target : storage_test::MountsBelow(dir_)) {
        ::umount2(target.c_str(), MNT_DETACH);
        if (status.ok()) status = Status::Internal("still mounted below the pool dir: " + target);
      }
      if (!storage_test::MountsBelow(dir_).empty()) return status;
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      if (ec && status.ok()) status = Status::IOError("remove " + dir_ + ": " + ec.message());
      dir_.clear();
    }
    return status;
  }

  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }

 private:
  Status DestroyPool() {
    Command command;
    command.argv = {"zpool", "destroy", name_};
    command.timeout = std::chrono::seconds(60);
    Status status;
    for (int attempt = 0; attempt < 20; ++attempt) {
      if (attempt == 10) command.argv = {"zpool", "destroy", "-f", name_};
      Result<CommandResult> result = runner_->Run(command);
      if (!result.ok()) return result.status();
      status = CommandStatus(command, *result);
      if (status.ok() || result->err.find("no such pool") != std::string::npos) {
        return Status::OK();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * (attempt + 1)));
    }
    return status;
  }

  ProcessRunner* runner_ = nullptr;
  std::string dir_;
  std::string name_;
};

}  // namespace zfs_test
}  // namespace pgb

#endif  // PGBRANCH_STORAGE_ZFS_TESTUTIL_H_
