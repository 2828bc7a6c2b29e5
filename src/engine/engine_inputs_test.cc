// The engine's own checks of inputs, behind the CLI's: a caller other than the CLI (the coming
// daemon) gets the same refusals, and nothing is created. A real engine on a real catalog in a
// temporary home; no pool is needed, because every refusal comes before one is touched.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "common/time.h"
#include "engine/engine.h"
#include "engine/ports.h"
#include "storage/image.h"

namespace pgb {
namespace {

class EngineInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-engine-inputs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    EngineEnv env;
    env.home = dir_ + "/home";
    env.runner = runner_.get();
    env.clock = &SystemClock();
    env.ports = ports_.get();
    auto engine = Engine::Open(env);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
  }
  void TearDown() override {
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }
  // The pool is still unconfigured and no image file exists.
  void ExpectNoPool(const std::string& image) {
    EXPECT_FALSE(PathExists(image));
    Result<StatusInfo> status = engine_->GetStatus();
    ASSERT_TRUE(status.ok()) << status.status().ToString();
    EXPECT_FALSE(status->pool.configured);
  }

  std::string dir_;
  std::unique_ptr<ProcessRunner> runner_ = NewRealProcessRunner();
  std::unique_ptr<PortProbe> ports_ = NewBindPortProbe();
  std::unique_ptr<Engine> engine_;
};

// A label that is not UTF-8 (it made every later `--json` listing abort) or holds a control
// or bidi character is InvalidArgument, checked before the branch is even looked up.
TEST_F(EngineInputsTest, LabelMustBePrintableUtf8) {
  const BranchRef ref{"p", "main"};
  Status bad = engine_->CreateSnapshot(ref, "before \xff", false).status();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "the label \"before \\xff\" is not valid UTF-8");
  for (const char* label : {"a\x1b[2Jb", "c1 \xc2\x9b", "rtl \xe2\x80\xae", "two\nlines"}) {
    Status s = engine_->CreateSnapshot(ref, label, false).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << EscapeForTerminal(label);
    EXPECT_NE(s.message().find("control character"), std::string::npos) << s.message();
  }
  // A good label gets past the check, to the missing project.
  EXPECT_EQ(engine_->CreateSnapshot(ref, "caf\xc3\xa9", false).status().code(),
            StatusCode::kNotFound);
}

// Day counts outside 0..36500 are InvalidArgument in both cleanups, before anything is read
// (the branch does not even exist); in range, the snapshot cleanup of an empty home is OK.
TEST_F(EngineInputsTest, DayCountsAreBounded) {
  for (int days : {-1, kMaxDays + 1, 200000}) {
    Status snaps = engine_->CleanupSnapshots(std::nullopt, days, /*dry_run=*/true).status();
    EXPECT_EQ(snaps.code(), StatusCode::kInvalidArgument) << days;
    EXPECT_NE(snaps.message().find("from 0 to 36500"), std::string::npos) << snaps.message();
    Status wal = engine_->CleanupWal({"p", "main"}, days, /*dry_run=*/true).status();
    EXPECT_EQ(wal.code(), StatusCode::kInvalidArgument) << days;
  }
  EXPECT_TRUE(engine_->CleanupSnapshots(std::nullopt, kMaxDays, /*dry_run=*/true).ok());
  EXPECT_EQ(engine_->CleanupWal({"p", "main"}, kMaxDays, true).status().code(),
            StatusCode::kNotFound);
}

// An explicit image size below 1 GiB (0 used to mean "the default", 60 GiB) is InvalidArgument
// and one above the free space next to the image ResourceExhausted: either way no image file
// appears and no pool is configured.
TEST_F(EngineInputsTest, ImageSizeBetweenFloorAndFreeSpace) {
  InitOptions o;
  o.image = dir_ + "/home/pool.img";
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, kMinImagePoolSize - 1}) {
    o.size_bytes = size;
    Status s = engine_->Init(o).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << size;
    EXPECT_NE(s.message().find("at least 1.0 GiB"), std::string::npos) << s.message();
    ExpectNoPool(*o.image);
  }
  o.size_bytes = FreeSpaceFor(*o.image).value() + kGiB;
  Status s = engine_->Init(o).status();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  ExpectNoPool(*o.image);
}

}  // namespace
}  // namespace pgb
