#include "core/net.h"

#include <gtest/gtest.h>

namespace depot::core {
namespace {

bool In(std::string_view cidr, std::string_view ip) {
  auto c = ParseCidr(cidr);
  auto a = ParseIp(ip);
  EXPECT_TRUE(c.ok() && a.ok()) << cidr << " " << ip;
  return c.ok() && a.ok() && CidrContains(*c, *a);
}

TEST(NetTest, CidrMatchesV4AndV6) {
  EXPECT_TRUE(In("10.0.0.0/8", "10.200.3.4"));
  EXPECT_FALSE(In("10.0.0.0/8", "11.0.0.1"));
  EXPECT_TRUE(In("192.168.1.0/24", "192.168.1.255"));
  EXPECT_FALSE(In("192.168.1.0/24", "192.168.2.0"));
  EXPECT_TRUE(In("0.0.0.0/0", "8.8.8.8"));
  EXPECT_FALSE(In("0.0.0.0/0", "::1"));
  EXPECT_TRUE(In("127.0.0.1", "127.0.0.1"));
  EXPECT_FALSE(In("127.0.0.1", "127.0.0.2"));
  EXPECT_TRUE(In("2001:db8::/32", "2001:db8:1::5"));
  EXPECT_FALSE(In("2001:db8::/32", "2001:db9::5"));
  EXPECT_TRUE(In("::ffff:0:0/96", "1.2.3.4"));
}

TEST(NetTest, CanonicalTextAndErrors) {
  EXPECT_EQ(ParseCidr("10.1.2.3/8")->text, "10.0.0.0/8");
  EXPECT_EQ(ParseCidr("2001:db8::1/32")->text, "2001:db8::/32");
  EXPECT_FALSE(ParseCidr("10.0.0.0/33").ok());
  EXPECT_FALSE(ParseCidr("10.0.0/8").ok());
  EXPECT_FALSE(ParseCidr("host/8").ok());
  EXPECT_FALSE(ParseIp("1.2.3.4.5").ok());
  EXPECT_TRUE(ParseIp("::ffff:1.2.3.4")->v4);
}

}  // namespace
}  // namespace depot::core
