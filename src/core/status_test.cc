#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/errors.h"
#include "core/hex.h"

namespace depot::core {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  DEPOT_ASSIGN_OR_RETURN(int h, Half(x));
  DEPOT_ASSIGN_OR_RETURN(int q, Half(h).WithContext("second half"));
  return q;
}

Status CheckEven(int x) {
  DEPOT_RETURN_IF_ERROR(Half(x).status());
  return Status::Ok();
}

TEST(StatusTest, OkAndCodes) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().ToString(), "OK");
  Status s = Status::NotFound("chunk ab12");
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_EQ(s.ToString(), "NotFound: chunk ab12");
  EXPECT_EQ(CodeName(Code::kPermissionDenied), "PermissionDenied");
}

TEST(StatusTest, ContextIsPrepended) {
  Status s = Status::IOError("disk full").WithContext("write chunk").WithContext("repo add");
  EXPECT_EQ(s.message(), "repo add: write chunk: disk full");
  EXPECT_TRUE(s.IsIOError());
  EXPECT_TRUE(Status::Ok().WithContext("anything").ok());
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "second half: 3 is odd");
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_TRUE(CheckEven(5).IsInvalidArgument());
}

TEST(StatusTest, ResultHoldsMoveOnlyTypes) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  ASSERT_TRUE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(ErrorsTest, ErrnoMapping) {
  EXPECT_TRUE(ErrnoStatus(ENOENT, "open x").IsNotFound());
  EXPECT_TRUE(ErrnoStatus(EACCES, "open x").IsPermissionDenied());
  EXPECT_TRUE(ErrnoStatus(ENOSPC, "write x").IsIOError());
  EXPECT_NE(ErrnoStatus(ENOSPC, "write x").message().find("write x: No space left"),
            std::string::npos);
}

TEST(HexTest, RoundTripAndErrors) {
  EXPECT_EQ(ToHex(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*FromHex("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_TRUE(FromHex("abc").status().IsInvalidArgument());
  EXPECT_TRUE(FromHex("zz").status().IsInvalidArgument());
  EXPECT_TRUE(IsLowerHex("00ff", 4));
  EXPECT_FALSE(IsLowerHex("00FF", 4));
  EXPECT_FALSE(IsLowerHex("00f", 4));
  EXPECT_FALSE(IsLowerHex(""));
}

}  // namespace
}  // namespace depot::core
