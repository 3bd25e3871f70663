#include "store/chunker.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/testing.h"

namespace depot::store {
namespace {

std::vector<std::size_t> Cuts(const Chunker& c, const std::string& data) {
  std::vector<std::size_t> out;
  std::size_t off = 0;
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  while (off < data.size()) {
    std::size_t cut = c.NextCut(p + off, data.size() - off, true);
    EXPECT_GT(cut, 0u);
    off += cut;
    out.push_back(off);
  }
  return out;
}

// Boundaries as absolute offsets, shifted by `delta` after `at`.
std::set<std::size_t> Shift(const std::vector<std::size_t>& cuts, std::size_t at, long delta) {
  std::set<std::size_t> out;
  for (auto c : cuts)
    out.insert(c >= at ? static_cast<std::size_t>(static_cast<long>(c) + delta) : c);
  return out;
}

TEST(ChunkerTest, RejectsBadParams) {
  EXPECT_TRUE(Chunker::Create({16384, 60000, 262144}).status().IsInvalidArgument());
  EXPECT_TRUE(Chunker::Create({65536, 65536, 262144}).status().IsInvalidArgument());
  EXPECT_TRUE(Chunker::Create({16, 64, 128}).status().IsInvalidArgument());
  EXPECT_TRUE(Chunker::Create({16384, 65536, 8u << 20}).status().IsInvalidArgument());
  EXPECT_TRUE(Chunker::Create({}).ok());
}

TEST(ChunkerTest, SizesStayInBoundsAndAverageNearTarget) {
  auto c = *Chunker::Create({});
  std::string data = testing::RandomData(32 << 20, 1);
  auto cuts = Cuts(c, data);
  std::size_t prev = 0;
  for (std::size_t i = 0; i < cuts.size(); ++i) {
    std::size_t len = cuts[i] - prev;
    EXPECT_LE(len, 262144u);
    if (i + 1 < cuts.size()) {
      EXPECT_GE(len, 16384u);
    }
    prev = cuts[i];
  }
  double avg = static_cast<double>(data.size()) / cuts.size();
  EXPECT_GT(avg, 40000);
  EXPECT_LT(avg, 100000);
}

TEST(ChunkerTest, SmallInputIsOneChunk) {
  auto c = *Chunker::Create({});
  std::string data = testing::RandomData(1000, 2);
  EXPECT_EQ(Cuts(c, data), std::vector<std::size_t>{1000});
  EXPECT_EQ(c.NextCut(nullptr, 0, true), 0u);
}

TEST(ChunkerTest, DeterministicAndIncrementalCallsAgree) {
  auto c = *Chunker::Create({});
  std::string data = testing::RandomData(4 << 20, 3);
  EXPECT_EQ(Cuts(c, data), Cuts(c, data));
  // Feeding less than max_size without eof must say "not final" unless a cut was found.
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  std::size_t full = c.NextCut(p, data.size(), true);
  std::size_t partial = c.NextCut(p, full, false);
  EXPECT_EQ(partial, full);
  EXPECT_TRUE(c.CutIsFinal(partial, full + 1, false));
}

TEST(ChunkerTest, BoundariesSurviveInsertionElsewhere) {
  auto c = *Chunker::Create({});
  std::string data = testing::RandomData(8 << 20, 4);
  auto before = Cuts(c, data);
  const std::size_t at = 3 << 20;
  std::string inserted = data.substr(0, at) + testing::RandomData(5000, 5) + data.substr(at);
  auto after = Cuts(c, inserted);
  auto expected = Shift(before, at, 5000);
  std::set<std::size_t> got(after.begin(), after.end());
  // Every boundary except those within one max-chunk of the edit must survive.
  std::size_t kept = 0, total = 0;
  for (auto b : expected) {
    if (b > at - 262144 && b < at + 5000 + 262144 * 2) continue;
    ++total;
    kept += got.count(b);
  }
  EXPECT_EQ(kept, total);
  EXPECT_GT(total, 80u);
}

TEST(ChunkerTest, BoundariesSurviveDeletionElsewhere) {
  auto c = *Chunker::Create({});
  std::string data = testing::RandomData(8 << 20, 6);
  auto before = Cuts(c, data);
  const std::size_t at = 5 << 20;
  std::string deleted = data.substr(0, at) + data.substr(at + 777);
  auto after = Cuts(c, deleted);
  std::set<std::size_t> got(after.begin(), after.end());
  std::size_t kept = 0, total = 0;
  for (auto b : before) {
    if (b > at - 262144 && b < at + 777 + 262144 * 2) continue;
    ++total;
    std::size_t moved = b >= at + 777 ? b - 777 : b;
    kept += got.count(moved);
  }
  EXPECT_EQ(kept, total);
  EXPECT_GT(total, 80u);
}

TEST(ChunkerTest, GearTableIsPinned) {
  // The gear table is part of the content format: changing it changes every
  // boundary and breaks dedup with existing repositories.
  // Values computed independently (SplitMix64 from the documented seed).
  const std::uint64_t* g = GearTable();
  EXPECT_EQ(g[0], 0x3f6daaff81619a93ULL) << std::hex << g[0];
  EXPECT_EQ(g[255], 0x6482ac647898a441ULL) << std::hex << g[255];
}

}  // namespace
}  // namespace depot::store
