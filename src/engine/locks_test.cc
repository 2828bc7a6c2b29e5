// The lock hierarchy of engine/locks.h on real lock files in a temporary directory: the order
// rules are checked on the calling thread (a violation is Internal, a bug), two threads
// contending for one branch see who holds it, and a cancelled token ends a wait.

#include "engine/locks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/cancel.h"
#include "common/mutex.h"

namespace pgb {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class LocksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgb-locks-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    locks_ = std::make_unique<Locks>(dir_, [this](const std::string& note) {
      MutexLock lock(mu_);
      notes_.push_back(note);
    });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The notes waiters hear, from any thread.
  std::vector<std::string> Notes() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return notes_;
  }

  std::string dir_;
  Mutex mu_;
  std::vector<std::string> notes_ GUARDED_BY(mu_);
  std::unique_ptr<Locks> locks_;
};

// Given a thread holding the home lock and branch 7, asking for project 1 is Internal (a branch
// holder never waits for a project lock), and so is branch 3 (branch locks go in ascending id
// order) or branch 7 again; branch 8 is fine. Released, project 1 is fine again.
TEST_F(LocksTest, OrderViolationsAreInternalErrors) {
  Result<LockHandle> home = locks_->Home(LockMode::kShared, "test");
  ASSERT_TRUE(home.ok()) << home.status().ToString();
  Result<LockHandle> seven = locks_->Branch(7, "p/seven", "test");
  ASSERT_TRUE(seven.ok()) << seven.status().ToString();

  Status project = locks_->Project(1, "p", "test").status();
  EXPECT_EQ(project.code(), StatusCode::kInternal);
  EXPECT_EQ(project.message(), "lock order: project 1 taken while holding branch 7");
  Status lower = locks_->Branch(3, "p/three", "test").status();
  EXPECT_EQ(lower.code(), StatusCode::kInternal);
  EXPECT_EQ(lower.message(), "lock order: branch 3 taken while holding branch 7");
  Status again = locks_->Branch(7, "p/seven", "test").status();
  EXPECT_EQ(again.code(), StatusCode::kInternal);
  EXPECT_EQ(again.message(), "lock order: branch 7 is already held by this thread");
  Result<LockHandle> eight = locks_->Branch(8, "p/eight", "test");
  ASSERT_TRUE(eight.ok()) << eight.status().ToString();
  EXPECT_EQ(Locks::HeldByThisThread(), "home,branch:7,branch:8");

  seven->reset();
  eight->reset();
  EXPECT_TRUE(locks_->Project(1, "p", "test").ok());
  EXPECT_EQ(Locks::HeldByThisThread(), "home");
}

// Given another thread holding branch 5 as "reset of p/x by pid 4242 (operation 17)", a wait of
// 1.2 s hears after a second what it waits for, then ends Unavailable naming the holder; once
// the holder lets go, the same call gets the lock at once. The order check is per thread: the
// holder's locks do not count against the waiter.
TEST_F(LocksTest, AWaiterSeesTheHolder) {
  std::promise<void> held, release;
  std::thread holder([&] {
    Result<LockHandle> lock = locks_->Branch(5, "p/x", "reset of p/x by pid 4242 (operation 17)");
    EXPECT_TRUE(lock.ok()) << lock.status().ToString();
    held.set_value();
    release.get_future().wait();
  });
  held.get_future().wait();

  auto start = std::chrono::steady_clock::now();
  Status busy = locks_->Branch(5, "p/x", "test", std::chrono::milliseconds(1200)).status();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200));
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable);
  EXPECT_THAT(busy.message(),
              StartsWith("p/x is busy: reset of p/x by pid 4242 (operation 17) since "));
  EXPECT_THAT(busy.message(), HasSubstr("try again when it finishes"));
  std::vector<std::string> notes = Notes();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_THAT(notes[0],
              StartsWith("waiting for p/x: reset of p/x by pid 4242 (operation 17) since "));

  release.set_value();
  holder.join();
  EXPECT_TRUE(locks_->Branch(5, "p/x", "test", std::chrono::milliseconds(0)).ok());
}

// Given a branch lock held by another thread and a waiter whose cancel token is set while it
// waits (a SIGINT, a cancelled request), the wait ends Cancelled with the token's reason and
// what it waited for, long before its 60 s deadline.
TEST_F(LocksTest, ACancelledTokenEndsTheWait) {
  Result<LockHandle> held = locks_->Branch(9, "p/y", "delete of p/y by pid 1 (operation 2)");
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  CancelToken token;
  Status waited;
  std::chrono::steady_clock::duration took{};
  std::thread waiter([&] {
    CancelScope scope(&token);
    auto start = std::chrono::steady_clock::now();
    waited = locks_->Branch(9, "p/y", "test", std::chrono::seconds(60)).status();
    took = std::chrono::steady_clock::now() - start;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  token.Cancel("interrupted by SIGINT");
  waiter.join();
  EXPECT_EQ(waited.code(), StatusCode::kCancelled);
  EXPECT_EQ(waited.message(), "interrupted by SIGINT while waiting for p/y");
  EXPECT_LT(took, std::chrono::seconds(10));
}

}  // namespace
}  // namespace pgb
