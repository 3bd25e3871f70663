// Metrics in the Prometheus text exposition format (served at /metrics).
//
// A Registry owns metric families; each family has a name, a help text, a type, and
// one series per label set. Series are created on first use and live as long as the
// registry, so hot paths look a series up once and keep the pointer. Values are
// atomics: updating never takes a lock. Collectors (callbacks run at render time)
// expose values that live elsewhere, e.g. a queue depth read from the catalog.
//
// Thread safety: everything may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace depot::core {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(double v) { v_.store(v, std::memory_order_relaxed); }
  void Add(double d);
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Cumulative histogram with fixed upper bounds (seconds, bytes...).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Snapshot: per-bucket counts (non-cumulative, last = +Inf), sum, count.
  void Read(std::vector<std::uint64_t>* buckets, double* sum, std::uint64_t* count) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the series of family `name` with `labels`, creating both as needed. The
  // pointer stays valid for the registry's life. Asking for an existing name with a
  // different type returns a series of a private dummy family (never null) -- a
  // programming error that must not crash a server.
  Counter* GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge* GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds, const Labels& labels = {});

  // A callback run at every Render, emitting gauge samples of family `name`.
  using Emit = std::function<void(const Labels&, double)>;
  void AddCollector(const std::string& name, const std::string& help,
                    std::function<void(const Emit&)> collect);

  // The whole registry in the text format (version 0.0.4).
  std::string Render() const;

 private:
  struct Family;
  Family* FindOrAdd(const std::string& name, const std::string& help, int type);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
};

// Latency buckets in seconds, 0.5 ms .. 10 s.
const std::vector<double>& LatencyBuckets();

}  // namespace depot::core
