#include "common/file_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace pgb {

Result<std::unique_ptr<FileLock>> FileLock::Acquire(const std::string& path,
                                                    std::chrono::milliseconds wait) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(fmt::format("open lock {}", path), errno);
  auto deadline = std::chrono::steady_clock::now() + wait;
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return std::unique_ptr<FileLock>(new FileLock(fd));
    int err = errno;
    if (err != EWOULDBLOCK && err != EINTR) {
      ::close(fd);
      return PosixError(fmt::format("lock {}", path), err);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return Status::Unavailable(
          fmt::format("another pgbranch command is still working on it (lock {})", path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

FileLock::~FileLock() { ::close(fd_); }

}  // namespace pgb
