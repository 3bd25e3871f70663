#include "store/compress.h"

#include <gtest/gtest.h>

#include "core/testing.h"

namespace depot::store {
namespace {

TEST(CompressTest, RoundTrip) {
  std::string text(100000, 'a');
  auto frame = CompressFrame(text);
  ASSERT_TRUE(frame.ok());
  EXPECT_LT(frame->size(), 1000u);
  EXPECT_EQ(*DecompressFrame(*frame, text.size()), text);
  std::string random = testing::RandomData(70000, 9);
  auto rframe = CompressFrame(random);
  ASSERT_TRUE(rframe.ok());
  EXPECT_LE(rframe->size(), MaxFrameSize(random.size()));
  EXPECT_EQ(*DecompressFrame(*rframe, random.size()), random);
  EXPECT_EQ(*DecompressFrame(*CompressFrame(""), 0), "");
}

TEST(CompressTest, DetectsDamage) {
  std::string data = testing::RandomData(50000, 10) + std::string(50000, 'z');
  std::string frame = *CompressFrame(data);
  // Wrong declared size.
  EXPECT_TRUE(DecompressFrame(frame, data.size() + 1).status().IsCorruption());
  // Truncated.
  EXPECT_TRUE(
      DecompressFrame(frame.substr(0, frame.size() - 10), data.size()).status().IsCorruption());
  // Trailing garbage.
  EXPECT_TRUE(DecompressFrame(frame + "xx", data.size()).status().IsCorruption());
  // Not zstd at all.
  EXPECT_TRUE(DecompressFrame("hello world", 11).status().IsCorruption());
  // Oversized for the bound.
  EXPECT_TRUE(DecompressFrameBounded(frame, data.size() - 1).status().IsCorruption());
  EXPECT_TRUE(DecompressFrameBounded(frame, data.size()).ok());
}

TEST(CompressTest, IntoReusedBufferMatchesCompressFrame) {
  std::string buffer;
  std::string big = testing::RandomData(200000, 11);
  std::string text(5000, 'q');
  for (const std::string* data : {&big, &text, &big}) {
    auto view = CompressFrameInto(*data, 1, &buffer);
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(std::string(*view), *CompressFrame(*data, 1));
    EXPECT_EQ(*DecompressFrame(*view, data->size()), *data);
  }
  // The buffer kept its size from the largest input (no reallocation later).
  EXPECT_GE(buffer.size(), big.size());
}

TEST(CompressTest, DecompressIntoReusedBufferChecksLikeDecompressFrame) {
  std::string buffer;
  std::string big = testing::RandomData(200000, 12);
  std::string text(3000, 't');
  std::string big_frame = *CompressFrame(big), text_frame = *CompressFrame(text);
  EXPECT_EQ(*DecompressFrameInto(big_frame, big.size(), &buffer), big);
  EXPECT_EQ(*DecompressFrameInto(text_frame, text.size(), &buffer), text);
  EXPECT_TRUE(DecompressFrameInto(text_frame, text.size() + 1, &buffer).status().IsCorruption());
  EXPECT_TRUE(DecompressFrameInto(text_frame + "x", text.size(), &buffer).status().IsCorruption());
  EXPECT_TRUE(DecompressFrameInto("not zstd", 8, &buffer).status().IsCorruption());
}

}  // namespace
}  // namespace depot::store
