#include "common/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "common/random.h"
#include "common/time.h"

namespace pgb {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-fs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

// An atomic write replaces the content whole, with the requested mode, and leaves no
// temporary file behind.
TEST_F(FsTest, WriteFileAtomicReplaces) {
  std::string path = dir_ + "/f.conf";
  ASSERT_TRUE(WriteFileAtomic(path, "one\n", 0600).ok());
  ASSERT_TRUE(WriteFileAtomic(path, "two\n", 0640).ok());
  EXPECT_EQ(ReadFile(path).value(), "two\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir_)) (void)e, ++entries;
  EXPECT_EQ(entries, 1);
  EXPECT_EQ(ReadFileTail(path, 2).value(), "o\n");
  EXPECT_EQ(ReadFile(dir_ + "/missing").status().code(), StatusCode::kNotFound);
}

TEST_F(FsTest, EnsureDirCreatesParentsWithMode) {
  std::string deep = dir_ + "/a/b/c";
  ASSERT_TRUE(EnsureDir(deep, 0711).ok());
  struct stat st {};
  ASSERT_EQ(stat(deep.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0711u);
  ASSERT_TRUE(EnsureDir(deep, 0700).ok());  // exists: mode is corrected
  ASSERT_EQ(stat(deep.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/file", "x", 0600).ok());
  EXPECT_FALSE(EnsureDir(dir_ + "/file", 0700).ok());
}

TEST(PathTest, JoinAndDirname) {
  EXPECT_EQ(JoinPath("/a", "b"), "/a/b");
  EXPECT_EQ(JoinPath("/a/", "b"), "/a/b");
  EXPECT_EQ(Dirname("/a/b"), "/a");
  EXPECT_EQ(Dirname("/a"), "/");
  EXPECT_EQ(Dirname("a"), ".");
  EXPECT_EQ(AbsolutePath("/a/./b/../c/").value(), "/a/c");
}

TEST(RandomTest, PasswordAlphabetAndLength) {
  std::string p = RandomPassword(32);
  EXPECT_EQ(p.size(), 32u);
  for (char c : p) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << c;
  EXPECT_NE(RandomPassword(32), p);
  EXPECT_EQ(RandomHex(8).size(), 16u);
}

TEST(TimeTest, TimestampsRoundTrip) {
  auto t = ParseTimestamp("2026-11-21T14:30:00.250Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(FormatTimestamp(*t), "2026-11-21T14:30:00.250Z");
  auto offset = ParseTimestamp("2026-11-21T15:30:00+01:00");
  ASSERT_TRUE(offset.ok());
  EXPECT_EQ(FormatTimestamp(*offset), "2026-11-21T14:30:00.000Z");
  EXPECT_FALSE(ParseTimestamp("yesterday").ok());
  EXPECT_FALSE(ParseTimestamp("2026-11-21T14:30:00Zjunk").ok());
  EXPECT_EQ(FormatAge(std::chrono::seconds(42)), "42s");
  EXPECT_EQ(FormatAge(std::chrono::seconds(3 * 3600 + 5 * 60)), "3h05m");
  EXPECT_EQ(FormatSeconds(std::chrono::milliseconds(30)), "0.03s");
}

}  // namespace
}  // namespace pgb
