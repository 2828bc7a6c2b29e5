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
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/subprocess.h"
#include "common/time.h"
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

// ---- Quarantine: what every backend does alike -------------------------------------------

// A time as pools keep it (to the millisecond).
inline TimePoint At(const std::string& text) { return ParseTimestamp(text).value(); }

// Sorted copy of `names`.
inline std::vector<std::string> Sorted(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  return names;
}

// Given a volume V holding PG_VERSION "17 later" and its snapshot S taken at "17", and a volume
// W: quarantining S (t1) and V (t2) takes them out of ListVolumes/ListSnapshots and lists them,
// oldest first, with their times and their files intact at their paths; quarantining again keeps
// the first time; Destroy* leave them alone; Release brings them back under their names with
// their content; Purge removes them for good. Missing names are NotFound, malformed ones
// InvalidArgument, everywhere.
inline void ExpectQuarantineLifecycle(Pool& pool) {
  const std::string v = NewVolumeName(), s = NewSnapshotName(), w = NewVolumeName();
  const std::string c = NewVolumeName();
  ASSERT_TRUE(pool.CreateVolume(v, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool.VolumePath(v) + "/PG_VERSION", "17\n", 0600).ok());
  ASSERT_TRUE(pool.CreateSnapshot(v, s).ok());
  ASSERT_TRUE(WriteFileAtomic(pool.VolumePath(v) + "/PG_VERSION", "17 later\n", 0600).ok());
  ASSERT_TRUE(pool.CreateVolume(w, std::nullopt).ok());
  const TimePoint t1 = At("2026-03-01T10:00:00.250Z"), t2 = At("2026-03-02T11:30:00.500Z");

  Status quarantined = pool.Quarantine(v, t2);
  ASSERT_TRUE(quarantined.ok()) << quarantined.ToString();
  quarantined = pool.Quarantine(s, t1);
  ASSERT_TRUE(quarantined.ok()) << quarantined.ToString();
  EXPECT_EQ(*pool.ListVolumes(), std::vector<std::string>{w});
  EXPECT_TRUE(pool.ListSnapshots()->empty());
  EXPECT_FALSE(PathExists(pool.VolumePath(v)));
  Result<std::vector<QuarantinedObject>> held = pool.ListQuarantined();
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  ASSERT_EQ(held->size(), 2u);
  EXPECT_EQ((*held)[0].name, s);
  EXPECT_TRUE((*held)[0].is_snapshot);
  EXPECT_EQ((*held)[0].since, t1);
  EXPECT_EQ((*held)[1].name, v);
  EXPECT_FALSE((*held)[1].is_snapshot);
  EXPECT_EQ((*held)[1].since, t2);
  for (const QuarantinedObject& object : *held) {
    EXPECT_TRUE(
        object.path.ends_with("/quarantine/" + QuarantineEntryName(object.name, object.since)))
        << object.path;
  }
  const std::string s_path = (*held)[0].path, v_path = (*held)[1].path;
  EXPECT_EQ(Slurp(s_path + "/PG_VERSION"), "17\n");
  EXPECT_EQ(Slurp(v_path + "/PG_VERSION"), "17 later\n");

  // Again: OK, the first time stays.
  EXPECT_TRUE(pool.Quarantine(v, At("2026-04-01T00:00:00Z")).ok());
  EXPECT_EQ(pool.ListQuarantined()->at(1).since, t2);

  // Missing and malformed names.
  EXPECT_EQ(pool.Quarantine(NewVolumeName(), t1).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.Quarantine(NewSnapshotName(), t1).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.Release(w).code(), StatusCode::kNotFound) << "live, not quarantined";
  EXPECT_EQ(pool.Purge(w).code(), StatusCode::kNotFound) << "live, not quarantined";
  EXPECT_EQ(pool.Release(NewSnapshotName()).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.Purge(NewVolumeName()).code(), StatusCode::kNotFound);
  for (const std::string& bad :
       std::vector<std::string>{"", "..", "../volumes/" + w, "v123", "x0123456789abcdef",
                                "V0123456789ABCDEF", v + "/..", v + "@" + s, "-r"}) {
    SCOPED_TRACE("name \"" + bad + "\"");
    EXPECT_EQ(pool.Quarantine(bad, t1).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.Release(bad).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(pool.Purge(bad).code(), StatusCode::kInvalidArgument);
  }

  // To the destroys a quarantined object is missing: OK, and nothing is touched.
  EXPECT_TRUE(pool.DestroyVolume(v).ok());
  EXPECT_TRUE(pool.DestroySnapshot(v, s).ok());
  EXPECT_TRUE(pool.DestroySnapshot("", s).ok());
  EXPECT_EQ(pool.ListQuarantined()->size(), 2u);
  EXPECT_EQ(Slurp(s_path + "/PG_VERSION"), "17\n");
  EXPECT_EQ(Slurp(v_path + "/PG_VERSION"), "17 later\n");

  // Release: back under their names, with their content.
  Status released = pool.Release(v);
  ASSERT_TRUE(released.ok()) << released.ToString();
  released = pool.Release(s);
  ASSERT_TRUE(released.ok()) << released.ToString();
  EXPECT_TRUE(pool.ListQuarantined()->empty());
  EXPECT_EQ(*pool.ListVolumes(), Sorted({v, w}));
  EXPECT_EQ(*pool.ListSnapshots(), std::vector<std::string>{s});
  EXPECT_EQ(Slurp(pool.VolumePath(v) + "/PG_VERSION"), "17 later\n");
  Status cloned = pool.CloneSnapshot(v, s, c);
  ASSERT_TRUE(cloned.ok()) << cloned.ToString();
  EXPECT_EQ(Slurp(pool.VolumePath(c) + "/PG_VERSION"), "17\n");
  EXPECT_FALSE(PathExists(v_path));
  EXPECT_FALSE(PathExists(s_path));
  EXPECT_EQ(pool.Release(v).code(), StatusCode::kNotFound);
  ASSERT_TRUE(pool.DestroyVolume(c).ok());

  // Purge: gone for good.
  ASSERT_TRUE(pool.Quarantine(s, t1).ok());
  ASSERT_TRUE(pool.Quarantine(v, t2).ok());
  held = pool.ListQuarantined();
  ASSERT_TRUE(held.ok() && held->size() == 2u);
  Status purged = pool.Purge(s);
  ASSERT_TRUE(purged.ok()) << purged.ToString();
  purged = pool.Purge(v);
  ASSERT_TRUE(purged.ok()) << purged.ToString();
  EXPECT_TRUE(pool.ListQuarantined()->empty());
  EXPECT_EQ(*pool.ListVolumes(), std::vector<std::string>{w});
  EXPECT_TRUE(pool.ListSnapshots()->empty());
  for (const QuarantinedObject& object : *held)
    EXPECT_FALSE(PathExists(object.path)) << object.path;
  EXPECT_EQ(pool.Purge(v).code(), StatusCode::kNotFound);
  EXPECT_EQ(pool.Release(s).code(), StatusCode::kNotFound);
}

// Directory pools (Btrfs, reflink, copy), where a quarantined object and a live one could share a
// name (only by hand: names are random): given volume V quarantined and a new live V, Release and
// Quarantine of V are AlreadyExists and change nothing; once the live V is gone, Release works.
inline void ExpectLiveNamesakeRefused(Pool& pool) {
  const std::string v = NewVolumeName();
  ASSERT_TRUE(pool.CreateVolume(v, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool.VolumePath(v) + "/f", "old", 0600).ok());
  ASSERT_TRUE(pool.Quarantine(v, At("2026-03-01T00:00:00Z")).ok());
  ASSERT_TRUE(pool.CreateVolume(v, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool.VolumePath(v) + "/f", "new", 0600).ok());

  EXPECT_EQ(pool.Release(v).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(pool.Quarantine(v, At("2026-03-02T00:00:00Z")).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(Slurp(pool.VolumePath(v) + "/f"), "new");
  ASSERT_EQ(pool.ListQuarantined()->size(), 1u);
  EXPECT_EQ(Slurp(pool.ListQuarantined()->at(0).path + "/f"), "old");

  ASSERT_TRUE(pool.DestroyVolume(v).ok());
  ASSERT_TRUE(pool.Release(v).ok());
  EXPECT_EQ(Slurp(pool.VolumePath(v) + "/f"), "old");
  EXPECT_TRUE(pool.ListQuarantined()->empty());
}

// Directory pools: what a crash in the middle of quarantining snapshot S leaves, played by hand
// with `set_sealed` (the backend's seal: Btrfs read-only flag, tree immutable flag), and how
// Quarantine finishes it. Unsealed in snapshots/ (crash before the rename): still live and
// listed; Quarantine moves and seals it. Moved but unsealed (crash before sealing again): listed
// as quarantined, not live; Quarantine again seals it and keeps its time.
inline void ExpectInterruptedSnapshotQuarantineFinished(
    Pool& pool, const std::string& root,
    const std::function<void(const std::string&, bool)>& set_sealed,
    const std::function<bool(const std::string&)>& is_sealed) {
  const std::string v = NewVolumeName(), s1 = NewSnapshotName(), s2 = NewSnapshotName();
  ASSERT_TRUE(pool.CreateVolume(v, std::nullopt).ok());
  ASSERT_TRUE(WriteFileAtomic(pool.VolumePath(v) + "/f", "x", 0600).ok());
  ASSERT_TRUE(pool.CreateSnapshot(v, s1).ok());
  ASSERT_TRUE(pool.CreateSnapshot(v, s2).ok());
  ASSERT_TRUE(is_sealed(pool.SnapshotPath(v, s1)));

  // Crash after unsealing, before the rename.
  set_sealed(pool.SnapshotPath(v, s1), false);
  EXPECT_EQ(*pool.ListSnapshots(), Sorted({s1, s2}));
  ASSERT_TRUE(pool.Quarantine(s1, At("2026-03-01T00:00:00Z")).ok());
  ASSERT_EQ(pool.ListQuarantined()->size(), 1u);
  EXPECT_TRUE(is_sealed(pool.ListQuarantined()->at(0).path));

  // Crash after the rename, before sealing again.
  const TimePoint since = At("2026-03-02T00:00:00.001Z");
  const std::string moved = root + "/quarantine/" + QuarantineEntryName(s2, since);
  set_sealed(pool.SnapshotPath(v, s2), false);
  ASSERT_EQ(::rename(pool.SnapshotPath(v, s2).c_str(), moved.c_str()), 0) << std::strerror(errno);
  EXPECT_TRUE(pool.ListSnapshots()->empty());
  ASSERT_EQ(pool.ListQuarantined()->size(), 2u);
  EXPECT_FALSE(is_sealed(moved));
  ASSERT_TRUE(pool.Quarantine(s2, At("2026-03-03T00:00:00Z")).ok());
  EXPECT_TRUE(is_sealed(moved));
  EXPECT_EQ(pool.ListQuarantined()->at(1).since, since);
  EXPECT_EQ(Slurp(moved + "/f"), "x");

  ASSERT_TRUE(pool.Release(s2).ok());
  EXPECT_TRUE(is_sealed(pool.SnapshotPath(v, s2)));
  ASSERT_TRUE(pool.Purge(s1).ok());
  EXPECT_EQ(*pool.ListSnapshots(), std::vector<std::string>{s2});
}

}  // namespace storage_test
}  // namespace pgb

#endif  // PGBRANCH_STORAGE_POOL_TESTUTIL_H_
