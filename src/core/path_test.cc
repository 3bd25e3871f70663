#include "core/path.h"

#include <gtest/gtest.h>

namespace depot::core {
namespace {

TEST(PathTest, AcceptsNormalRelativePaths) {
  for (const char* p : {"a", "a/b/c.txt", "dir with space/x", "..hidden", "a/...", "ünïcode/ok"}) {
    EXPECT_TRUE(ValidateRelativePath(p).ok()) << p;
  }
}

TEST(PathTest, RejectsEscapesAndOddities) {
  std::string nul("a\0b", 3);
  for (std::string p : {std::string(""), std::string("/etc/passwd"), std::string("../x"),
                        std::string("a/../../x"), std::string("a/.."), std::string("./a"),
                        std::string("a//b"), std::string("a/"), nul, std::string("a\nb"),
                        std::string("a\\..\\b"), std::string(256, 'x'), std::string(4097, 'a')}) {
    Status s = ValidateRelativePath(p);
    EXPECT_TRUE(s.IsInvalidArgument()) << "accepted: " << p;
  }
  EXPECT_NE(ValidateRelativePath("../x").message().find("'..'"), std::string::npos);
}

}  // namespace
}  // namespace depot::core
