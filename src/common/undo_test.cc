#include "common/undo.h"

#include <gtest/gtest.h>

namespace pgb {
namespace {

// Given three done steps, a rollback undoes them newest first and keeps the original cause.
TEST(UndoTest, RollbackRunsNewestFirst) {
  std::vector<int> order;
  UndoStack undo;
  for (int i = 1; i <= 3; ++i) {
    undo.Push("step", [&order, i] {
      order.push_back(i);
      return Status::OK();
    });
  }
  Status s = undo.Rollback(Status::IOError("clone failed"));
  EXPECT_EQ(order, (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(s.code(), StatusCode::kIOError);
  EXPECT_EQ(s.message(), "clone failed");
}

// A failing undo does not stop the others, and the message says what may be left behind.
TEST(UndoTest, FailedUndoIsReported) {
  int ran = 0;
  UndoStack undo;
  undo.Push("remove row", [&] { return ++ran, Status::OK(); });
  undo.Push("destroy volume", [&] { return ++ran, Status::IOError("busy"); });
  Status s = undo.Rollback(Status::Internal("start failed"));
  EXPECT_EQ(ran, 2);
  EXPECT_EQ(s.message(), "start failed; cleanup failed: destroy volume: busy");
}

TEST(UndoTest, CommitForgetsAndDestructorRollsBack) {
  int ran = 0;
  {
    UndoStack undo;
    undo.Push("x", [&] { return ++ran, Status::OK(); });
    undo.Commit();
  }
  EXPECT_EQ(ran, 0);
  {
    UndoStack undo;
    undo.Push("x", [&] { return ++ran, Status::OK(); });
  }
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace pgb
