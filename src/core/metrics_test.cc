#include "core/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace depot::core {
namespace {

TEST(MetricsTest, RendersCountersGaugesHistogramsAndCollectors) {
  Registry r;
  r.GetCounter("depot_x_total", "Xs seen", {{"kind", "a\"b"}})->Inc(3);
  r.GetGauge("depot_depth", "Queue depth")->Set(7);
  Histogram* h = r.GetHistogram("depot_latency_seconds", "Latency", {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(5);
  r.AddCollector("depot_collected", "From elsewhere", [](const Registry::Emit& emit) {
    emit({{"dp", "dp1"}}, 2);
  });
  std::string text = r.Render();
  EXPECT_NE(text.find("# TYPE depot_x_total counter\ndepot_x_total{kind=\"a\\\"b\"} 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("depot_depth 7\n"), std::string::npos);
  EXPECT_NE(text.find("depot_latency_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("depot_latency_seconds_bucket{le=\"1\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("depot_latency_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("depot_latency_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("depot_collected{dp=\"dp1\"} 2\n"), std::string::npos);
}

TEST(MetricsTest, SameSeriesIsReturnedAndConcurrentIncrementsAddUp) {
  Registry r;
  Counter* a = r.GetCounter("c_total", "c", {{"k", "v"}});
  EXPECT_EQ(a, r.GetCounter("c_total", "c", {{"k", "v"}}));
  EXPECT_NE(a, r.GetCounter("c_total", "c", {{"k", "w"}}));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) r.GetCounter("c_total", "c", {{"k", "v"}})->Inc();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(a->value(), 40000u);
  // A type clash does not crash and does not corrupt the original family.
  EXPECT_NE(r.GetGauge("c_total", "c"), nullptr);
  EXPECT_EQ(a->value(), 40000u);
}

}  // namespace
}  // namespace depot::core
