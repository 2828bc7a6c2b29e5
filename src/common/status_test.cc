#include "common/status.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace pgb {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  PGB_ASSIGN_OR_RETURN(*out, Half(x));
  return Status::OK();
}

// Given an odd number, Half fails and the macro propagates the failure unchanged.
TEST(StatusTest, AssignOrReturnPropagates) {
  int out = 0;
  EXPECT_TRUE(UseHalf(8, &out).ok());
  EXPECT_EQ(out, 4);
  Status s = UseHalf(3, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd");
}

TEST(StatusTest, WithContextPrefixesMessage) {
  Status s = Status::NotFound("no such branch").WithContext("branch get demo/x");
  EXPECT_EQ(s.message(), "branch get demo/x: no such branch");
  EXPECT_TRUE(Status::OK().WithContext("x").ok());
}

TEST(StatusTest, PosixErrorMapsErrno) {
  EXPECT_EQ(PosixError("open f", ENOENT).code(), StatusCode::kNotFound);
  EXPECT_EQ(PosixError("mkdir d", EEXIST).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(PosixError("write f", ENOSPC).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(PosixError("read f", EIO).code(), StatusCode::kIOError);
  EXPECT_NE(PosixError("open f", ENOENT).message().find("open f: "), std::string::npos);
}

// A Result must never hold an OK status: that would be a value-less success.
TEST(StatusTest, ResultFromOkStatusIsInternalError) {
  Result<int> r(Status::OK());
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace pgb
