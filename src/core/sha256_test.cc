#include "core/sha256.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "core/testing.h"

namespace depot::core {
namespace {

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256::HashHex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::HashHex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256::HashHex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256Test, StreamingEqualsOneShotAndResets) {
  std::string data = testing::RandomData(1 << 20, 42);
  Sha256 h;
  for (std::size_t off = 0; off < data.size(); off += 7777) {
    h.Update(std::string_view(data).substr(off, 7777));
  }
  Digest streamed = h.Finish();
  EXPECT_EQ(streamed, Sha256::Hash(data));
  // Finish() resets: the next use starts from scratch.
  h.Update("abc");
  EXPECT_EQ(DigestHex(h.Finish()), Sha256::HashHex("abc"));
}

TEST(Sha256Test, MatchesOpensslCommandLine) {
  testing::TempDir dir;
  std::string data = testing::RandomData(3 << 20, 7);
  std::string path = dir.Sub("blob");
  testing::WriteFileOrDie(path, data);
  std::string cmd = "openssl dgst -sha256 -r '" + path + "'";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[128] = {};
  ASSERT_NE(fgets(buf, sizeof(buf), p), nullptr);
  pclose(p);
  EXPECT_EQ(std::string(buf, 64), Sha256::HashHex(data));
}

TEST(Sha256Test, ParseDigestHex) {
  auto d = ParseDigestHex(Sha256::HashHex("x"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Sha256::Hash("x"));
  EXPECT_TRUE(ParseDigestHex("abc").status().IsInvalidArgument());
  EXPECT_TRUE(ParseDigestHex(std::string(64, 'A')).status().IsInvalidArgument());
  std::string last_bad = Sha256::HashHex("y");
  last_bad.back() = 'g';
  EXPECT_TRUE(ParseDigestHex(last_bad).status().IsInvalidArgument());
  EXPECT_TRUE(ParseDigestHex(Sha256::HashHex("y") + "0").status().IsInvalidArgument());
  EXPECT_EQ(DigestHex(*ParseDigestHex(Sha256::HashHex("y"))), Sha256::HashHex("y"));
}

}  // namespace
}  // namespace depot::core
