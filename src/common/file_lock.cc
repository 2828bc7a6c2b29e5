#include "common/file_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "common/cancel.h"
#include "common/fs.h"
#include "common/time.h"

namespace pgb {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(5);

// The holder line is "<unix seconds> <text>\n".
std::string HolderText(const std::string& line, std::chrono::system_clock::time_point now) {
  size_t space = line.find(' ');
  if (space == std::string::npos) return "";
  long long since = std::atoll(line.substr(0, space).c_str());
  std::string text = line.substr(space + 1);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return "";
  auto age = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch() -
                                                              std::chrono::seconds(since));
  if (age.count() < 0) age = std::chrono::seconds(0);
  return fmt::format("{} since {}", text, FormatAge(age));
}

}  // namespace

std::string FileLock::DescribeHolder(const std::string& path) {
  Result<std::string> line = ReadFile(path);
  if (!line.ok()) return "";
  return HolderText(*line, std::chrono::system_clock::now());
}

Result<std::unique_ptr<FileLock>> FileLock::Acquire(const std::string& path,
                                                    std::chrono::milliseconds wait) {
  Options options;
  options.wait = wait;
  return Acquire(path, options);
}

Result<std::unique_ptr<FileLock>> FileLock::Acquire(const std::string& path,
                                                    const Options& options) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(fmt::format("open lock {}", path), errno);
  const int op = (options.mode == LockMode::kShared ? LOCK_SH : LOCK_EX) | LOCK_NB;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + options.wait;
  auto next_note = start + options.note_after;
  const std::string what = options.what.empty() ? path : options.what;
  for (;;) {
    if (::flock(fd, op) == 0) break;
    int err = errno;
    if (err != EWOULDBLOCK && err != EINTR) {
      ::close(fd);
      return PosixError(fmt::format("lock {}", path), err);
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      ::close(fd);
      std::string holder = DescribeHolder(path);
      return Status::Unavailable(
          fmt::format("{} is busy{}; waited {}, try again when it finishes", what,
                      holder.empty() ? " (another pgbranch command holds its lock)" : ": " + holder,
                      FormatSeconds(options.wait)));
    }
    Status cancelled = CheckCancelled();
    if (!cancelled.ok()) {
      ::close(fd);
      return Status::Cancelled(fmt::format("{} while waiting for {}", cancelled.message(), what));
    }
    if (options.on_wait && now >= next_note) {
      std::string holder = DescribeHolder(path);
      options.on_wait(fmt::format("waiting for {}: {}", what,
                                  holder.empty() ? "another pgbranch command holds it" : holder));
      next_note = now + options.note_every;
    }
    std::this_thread::sleep_for(kPoll);
  }
  bool wrote = false;
  if (options.mode == LockMode::kExclusive && !options.holder.empty()) {
    auto since = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch());
    std::string line = fmt::format("{} {}\n", since.count(), options.holder);
    // Best effort: the line only feeds messages.
    if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, line.data(), line.size(), 0) >= 0) wrote = true;
  }
  return std::unique_ptr<FileLock>(new FileLock(fd, wrote));
}

FileLock::~FileLock() {
  if (wrote_holder_) {
    int ignored = ::ftruncate(fd_, 0);
    (void)ignored;
  }
  ::close(fd_);
}

}  // namespace pgb
