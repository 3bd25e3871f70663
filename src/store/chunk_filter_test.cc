#include "store/chunk_filter.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "core/sha256.h"

namespace depot::store {
namespace {

ChunkId Id(int i) { return core::Sha256::Hash("chunk " + std::to_string(i)); }

TEST(ChunkFilterTest, EveryAnswerIsMaybeUntilReady) {
  ChunkFilter f(1 << 12);
  EXPECT_TRUE(f.MayContain(Id(1)));
  f.MarkReady();
  EXPECT_FALSE(f.MayContain(Id(1)));
}

TEST(ChunkFilterTest, AddedIdsAreAlwaysMaybeAndMostOthersAreNo) {
  ChunkFilter f(1 << 16);  // 64 Ki bits for 2 000 ids: ~0.4 % false "maybe" expected
  f.MarkReady();
  for (int i = 0; i < 2000; ++i) f.Add(Id(i));
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(f.MayContain(Id(i))) << i;
  int maybe = 0;
  for (int i = 2000; i < 12000; ++i) maybe += f.MayContain(Id(i));
  EXPECT_LT(maybe, 200) << "of 10 000 ids never added";
}

TEST(ChunkFilterTest, ConcurrentAddsAreAllKept) {
  ChunkFilter f(1 << 14);
  f.MarkReady();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&f, t] {
      for (int i = t; i < 4000; i += 4) f.Add(Id(i));
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4000; ++i) ASSERT_TRUE(f.MayContain(Id(i))) << i;
}

TEST(ChunkFilterTest, SizeIsRoundedToAPowerOfTwo) {
  ChunkFilter small(3);  // raised to the minimum; still works
  small.MarkReady();
  small.Add(Id(7));
  EXPECT_TRUE(small.MayContain(Id(7)));
  ChunkFilter odd(100000);
  odd.MarkReady();
  odd.Add(Id(8));
  EXPECT_TRUE(odd.MayContain(Id(8)));
}

}  // namespace
}  // namespace depot::store
