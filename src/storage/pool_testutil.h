// Test helpers for the storage tests: a fixture with a real Btrfs image pool in a temporary
// directory, and file helpers. Header-only: only *_test.cc files are built into pgbranch_test.
//
// The tests need root, loop devices and mkfs.btrfs. Every pool a test makes through
// ImagePoolTest::NewImageConfig is unmounted in TearDown, also when the test failed, and the
// temporary directory is removed only when nothing is mounted below it any more.

#ifndef PGBRANCH_STORAGE_POOL_TESTUTIL_H_
#define PGBRANCH_STORAGE_POOL_TESTUTIL_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <libmount/libmount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/subprocess.h"
#include "storage/image.h"
#include "storage/pool.h"
#include "storage/volume_name.h"

namespace pgb {
namespace storage_test {

constexpr uint64_t kMiB = 1024 * 1024;

// Mount points at or below `dir`, deepest (most recently mounted) first.
inline std::vector<std::string> MountsBelow(const std::string& dir) {
  std::vector<std::string> targets;
  struct libmnt_table* table = mnt_new_table_from_file("/proc/self/mountinfo");
  if (table == nullptr) return targets;
  struct libmnt_iter* iter = mnt_new_iter(MNT_ITER_BACKWARD);
  struct libmnt_fs* fs = nullptr;
  while (mnt_table_next_fs(table, iter, &fs) == 0) {
    std::string target = mnt_fs_get_target(fs);
    if (target == dir || target.rfind(dir + "/", 0) == 0) targets.push_back(target);
  }
  mnt_free_iter(iter);
  mnt_unref_table(table);
  return targets;
}

// Writes `bytes` pseudo-random bytes (incompressible, never deduplicated) to `path` at
// `offset`, creating the file if needed, and fsyncs it so its extents are allocated.
inline void WriteRandom(const std::string& path, uint64_t offset, uint64_t bytes,
                        uint32_t seed = 1) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << "open " << path << ": " << std::strerror(errno);
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> buf(kMiB / sizeof(uint64_t));
  for (uint64_t done = 0; done < bytes;) {
    for (auto& word : buf) word = rng();
    size_t n = std::min<uint64_t>(kMiB, bytes - done);
    ASSERT_EQ(::pwrite(fd, buf.data(), n, static_cast<off_t>(offset + done)),
              static_cast<ssize_t>(n))
        << "write " << path << ": " << std::strerror(errno);
    done += n;
  }
  ASSERT_EQ(::fsync(fd), 0);
  ::close(fd);
}

// What WriteUntilError managed.
struct WriteOutcome {
  uint64_t written = 0;  // bytes write(2) accepted before the first error
  int error = 0;         // the errno of the first failed write or fsync; 0 if none failed
};

// Appends pseudo-random 1 MiB blocks to `path` (created if missing) until a write or the final
// fsync fails, or `max_bytes` are written: how far a volume lets one write (EDQUOT at a space
// limit, ENOSPC when the pool is full).
inline WriteOutcome WriteUntilError(const std::string& path, uint64_t max_bytes,
                                    uint32_t seed = 7) {
  WriteOutcome outcome;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    outcome.error = errno;
    return outcome;
  }
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> buf(kMiB / sizeof(uint64_t));
  while (outcome.written < max_bytes) {
    for (auto& word : buf) word = rng();
    ssize_t n = ::write(fd, buf.data(), kMiB);
    if (n < 0) {
      outcome.error = errno;
      break;
    }
    outcome.written += static_cast<uint64_t>(n);
    if (static_cast<uint64_t>(n) < kMiB) {
      outcome.error = ::write(fd, buf.data(), 4096) < 0 ? errno : 0;
      break;
    }
  }
  if (::fsync(fd) != 0 && outcome.error == 0) outcome.error = errno;
  ::close(fd);
  return outcome;
}

// Given a volume limited to `limit` bytes of new data that holds little of its own yet: writing
// into it fails with EDQUOT after more than half and at most all of `limit` (filesystems stop
// a little early, for metadata and reservations).
inline void ExpectWritesStopAtLimit(Pool& pool, const std::string& volume, uint64_t limit) {
  WriteOutcome stopped = WriteUntilError(pool.VolumePath(volume) + "/new", 4 * limit);
  EXPECT_EQ(stopped.error, EDQUOT) << std::strerror(stopped.error);
  EXPECT_GT(stopped.written, limit / 2);
  EXPECT_LE(stopped.written, limit);
}

// The whole content of `path` ("" if it cannot be read).
inline std::string Slurp(const std::string& path) {
  Result<std::string> text = ReadFile(path);
  return text.ok() ? *text : "";
}

// Given root, loop devices and mkfs.btrfs: SetUp creates a 300 MiB image pool in a fresh
// temporary directory and opens it as pool_; TearDown closes every pool the test made and
// removes the directory.
class ImagePoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-storage-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    runner_ = NewRealProcessRunner();
    config_ = NewImageConfig("pool", 300 * kMiB);
    Status created = CreatePool(config_, *runner_).status();
    ASSERT_TRUE(created.ok()) << created.ToString();
    Result<std::unique_ptr<Pool>> pool = OpenPool(config_, *runner_);
    ASSERT_TRUE(pool.ok()) << pool.status().ToString();
    pool_ = std::move(pool).value();
  }

  void TearDown() override {
    pool_.reset();
    if (dir_.empty()) return;
    for (const PoolConfig& config : configs_) {
      Status closed = ClosePool(config);
      EXPECT_TRUE(closed.ok()) << closed.ToString();
    }
    // Whatever a failed test left mounted below dir_: detach it, so nothing leaks.
    for (const std::string& target : MountsBelow(dir_)) ::umount2(target.c_str(), MNT_DETACH);
    if (!MountsBelow(dir_).empty()) {
      ADD_FAILURE() << "still mounted below " << dir_ << "; not removing it";
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    EXPECT_FALSE(ec) << "remove " << dir_ << ": " << ec.message();
  }

  // An image pool config for <dir_>/<name>.img mounted at <dir_>/<name>, closed in TearDown.
  PoolConfig NewImageConfig(const std::string& name, uint64_t size) {
    PoolConfig config;
    config.kind = "image";
    config.image = dir_ + "/" + name + ".img";
    config.root = dir_ + "/" + name;
    config.image_size = size;
    configs_.push_back(config);
    return config;
  }

  // Creates a volume holding `bytes` of random data in the file "data".
  std::string NewVolumeWithData(uint64_t bytes) {
    std::string volume = NewVolumeName();
    Status s = pool_->CreateVolume(volume, std::nullopt);
    EXPECT_TRUE(s.ok()) << s.ToString();
    WriteRandom(pool_->VolumePath(volume) + "/data", 0, bytes);
    return volume;
  }

  std::string dir_;
  std::unique_ptr<ProcessRunner> runner_;
  PoolConfig config_;
  std::unique_ptr<Pool> pool_;

 private:
  std::vector<PoolConfig> configs_;
};

// lstat(2) of `path`; the test fails if it cannot.
inline struct stat LstatOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path << ": " << std::strerror(errno);
  return st;
}

// Writes `text` to `path` (created or truncated) and gives it exactly `mode`.
inline void WriteText(const std::string& path, const std::string& text, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  ::close(fd);
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

// The names in `dir`, sorted.
inline std::vector<std::string> DirEntries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Every Pool call refuses each of `bad_volumes` as a volume name and each of `bad_snapshots` as
// a snapshot name with InvalidArgument. `volume` and `snapshot` are a valid pair the pool holds
// (in snapshot calls the volume is only a hint: snapshots are found by name).
inline void ExpectBadNamesRefused(Pool& pool, const std::string& volume,
                                  const std::string& snapshot,
                                  const std::vector<std::string>& bad_volumes,
                                  const std::vector<std::string>& bad_snapshots) {
  for (const std::string& bad : bad_volumes) {
    SCOPED_TRACE("volume \"" + bad + "\"");
    EXPECT_EQ(pool.CreateVolume(bad, std::nullopt).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.CreateSnapshot(bad, NewSnapshotName()).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.CloneSnapshot(volume, snapshot, bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.DestroyVolume(bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.VolumeSpace(bad).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.SetSpaceLimit(bad, kMiB).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.GetSpaceLimit(bad).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.ReserveSpace(bad, kMiB).code(), StatusCode::kInvalidArgument);
  }
  for (const std::string& bad : bad_snapshots) {
    SCOPED_TRACE("snapshot \"" + bad + "\"");
    EXPECT_EQ(pool.CreateSnapshot(volume, bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.CloneSnapshot(volume, bad, NewVolumeName()).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.DestroySnapshot(volume, bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.SnapshotSpace(volume, bad).status().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace storage_test
}  // namespace pgb

#endif  // PGBRANCH_STORAGE_POOL_TESTUTIL_H_
