#include "core/parallel.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace depot::core {
namespace {

TEST(BatchPusherTest, HandsOverFullBatchesThenTheRestAtFlush) {
  BlockingQueue<std::vector<int>> queue(8);
  BatchPusher<int> pusher(&queue, 4);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pusher.Push(i));
  ASSERT_TRUE(pusher.Flush());
  ASSERT_TRUE(pusher.Flush());  // nothing pending: no empty batch
  queue.Close();
  std::vector<std::vector<int>> got;
  while (auto b = queue.Pop()) got.push_back(*b);
  EXPECT_EQ(got, (std::vector<std::vector<int>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
}

TEST(BatchPusherTest, AClosedQueueRefusesAndAConsumerThreadGetsEverything) {
  BlockingQueue<std::vector<int>> closed(1);
  closed.Close();
  BatchPusher<int> refused(&closed, 1);
  EXPECT_FALSE(refused.Push(1));

  BlockingQueue<std::vector<int>> queue(2);  // small: the producer waits for the consumer
  long sum = 0;
  std::thread consumer([&] {
    while (auto b = queue.Pop()) {
      for (int v : *b) sum += v;
    }
  });
  BatchPusher<int> pusher(&queue, 8);
  for (int i = 1; i <= 1000; ++i) ASSERT_TRUE(pusher.Push(i));
  ASSERT_TRUE(pusher.Flush());
  queue.Close();
  consumer.join();
  EXPECT_EQ(sum, 500500);
}

}  // namespace
}  // namespace depot::core
