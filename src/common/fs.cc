#include "common/fs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "common/random.h"

namespace pgb {
namespace {

Status WriteAll(int fd, const std::string& data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(fmt::format("write {}", path), errno);
    done += n;
  }
  return Status::OK();
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return PosixError(fmt::format("open {}", dir), errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return PosixError(fmt::format("fsync {}", dir), err);
  return Status::OK();
}

}  // namespace

std::string Dirname(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

Result<std::string> AbsolutePath(const std::string& path) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) return Status::InvalidArgument(fmt::format("path {}: {}", path, ec.message()));
  std::string normal = abs.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode,
                       std::optional<FileOwner> owner) {
  std::string tmp = fmt::format("{}.tmp-{}", path, RandomHex(6));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return PosixError(fmt::format("create {}", tmp), errno);
  Status s = WriteAll(fd, data, tmp);
  if (s.ok() && ::fchmod(fd, mode) != 0) s = PosixError(fmt::format("chmod {}", tmp), errno);
  if (s.ok() && owner && ::fchown(fd, owner->uid, owner->gid) != 0) {
    s = PosixError(fmt::format("chown {}", tmp), errno);
  }
  if (s.ok() && ::fsync(fd) != 0) s = PosixError(fmt::format("fsync {}", tmp), errno);
  ::close(fd);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = PosixError(fmt::format("rename {} to {}", tmp, path), errno);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return FsyncDir(Dirname(path));
}

Result<std::string> ReadFile(const std::string& path) { return ReadFileTail(path, SIZE_MAX); }

Result<std::string> ReadFileTail(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError(fmt::format("open {}", path), errno);
  struct stat st {};
  if (max_bytes != SIZE_MAX && ::fstat(fd, &st) == 0 &&
      static_cast<size_t>(st.st_size) > max_bytes) {
    ::lseek(fd, st.st_size - static_cast<off_t>(max_bytes), SEEK_SET);
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return PosixError(fmt::format("read {}", path), err);
    }
    if (n == 0) break;
    out.append(buf, n);
  }
  ::close(fd);
  return out;
}

Status SetMode(const std::string& path, mode_t mode, std::optional<FileOwner> owner) {
  if (::chmod(path.c_str(), mode) != 0) return PosixError(fmt::format("chmod {}", path), errno);
  if (owner && ::chown(path.c_str(), owner->uid, owner->gid) != 0) {
    return PosixError(fmt::format("chown {}", path), errno);
  }
  return Status::OK();
}

Status AddModeBits(const std::string& path, mode_t bits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return PosixError(fmt::format("stat {}", path), errno);
  mode_t mode = st.st_mode & 07777;
  if ((mode & bits) == bits) return Status::OK();
  if (::chmod(path.c_str(), mode | bits) != 0) {
    return PosixError(fmt::format("chmod {}", path), errno);
  }
  return Status::OK();
}

Status EnsureDir(const std::string& path, mode_t mode, std::optional<FileOwner> owner) {
  std::vector<std::string> missing;
  std::string cur = path;
  while (!cur.empty() && cur != "/" && cur != "." && !PathExists(cur)) {
    missing.push_back(cur);
    cur = Dirname(cur);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), mode) != 0 && errno != EEXIST) {
      return PosixError(fmt::format("create directory {}", *it), errno);
    }
  }
  if (!IsDirectory(path))
    return Status::FailedPrecondition(fmt::format("{} is not a directory", path));
  return SetMode(path, mode, owner);
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Status RemoveFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return PosixError(fmt::format("remove {}", path), errno);
  }
  return Status::OK();
}

Status RemoveEmptyDir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return PosixError(fmt::format("remove directory {}", path), errno);
  }
  return Status::OK();
}

}  // namespace pgb
