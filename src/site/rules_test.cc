#include "site/rules.h"

#include <gtest/gtest.h>

namespace depot::site {
namespace {

Attributes Linux() {
  return {{"os", {"linux"}},
          {"arch", {"x86_64"}},
          {"ips", {"10.20.1.5", "192.168.0.9"}},
          {"tag.site", {"berlin"}},
          {"hostname", {"web-1"}}};
}

bool M(std::string_view rule, const Attributes& a = Linux()) {
  auto r = Rule::Parse(rule);
  EXPECT_TRUE(r.ok()) << rule << ": " << r.status().ToString();
  return r.ok() && r->Matches(a);
}

TEST(RulesTest, EqualityMembershipCidrAndLogic) {
  EXPECT_TRUE(M(R"(os == "linux")"));
  EXPECT_FALSE(M(R"(os == "windows")"));
  EXPECT_TRUE(M(R"(os != "windows")"));
  EXPECT_TRUE(M(R"(arch in ["aarch64", "x86_64"])"));
  EXPECT_FALSE(M(R"(arch in [])"));
  EXPECT_TRUE(M("ips in 10.20.0.0/16"));
  EXPECT_TRUE(M("ips in 192.168.0.0/24"));
  EXPECT_FALSE(M("ips in 172.16.0.0/12"));
  EXPECT_TRUE(M(R"(os == "linux" and tag.site == "berlin")"));
  EXPECT_FALSE(M(R"(os == "linux" and tag.site == "paris")"));
  EXPECT_TRUE(M(R"(os == "windows" or tag.site == "berlin")"));
  EXPECT_TRUE(M(R"(not (hostname == "web-2"))"));
  EXPECT_FALSE(M(R"(not hostname == "web-1")"));
  // and binds tighter than or.
  EXPECT_TRUE(M(R"(os == "windows" and arch == "x86_64" or hostname == "web-1")"));
  // A missing attribute has no values.
  EXPECT_FALSE(M(R"(tag.rack == "3")"));
  EXPECT_TRUE(M(R"(tag.rack != "3")"));
  EXPECT_TRUE(M(R"(hostname == "we\"b" or true_attr != "x")"));
}

TEST(RulesTest, SyntaxErrorsSayWhereAndWhat) {
  for (const char* bad :
       {"os ==", "os = \"x\"", "(os == \"x\"", "os in 10.0.0.0/99", "os in [\"a\" \"b\"]",
        "== \"x\"", "os == \"x\" and", "os == \"unterminated"}) {
    auto r = Rule::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("at character"), std::string::npos)
        << r.status().ToString();
  }
  std::string deep(200, '(');
  EXPECT_FALSE(Rule::Parse(deep + "os == \"x\"" + std::string(200, ')')).ok());
}

}  // namespace
}  // namespace depot::site
