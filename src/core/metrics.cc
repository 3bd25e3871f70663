#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace depot::core {

namespace {

enum Type { kCounter = 0, kGauge = 1, kHistogram = 2, kCollector = 3 };

std::string EscapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string LabelText(const Labels& labels, const char* extra_key = nullptr,
                      const std::string& extra_value = {}) {
  if (labels.empty() && extra_key == nullptr) return {};
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + EscapeLabel(v) + "\"";
  }
  if (extra_key != nullptr) {
    if (!first) out += ',';
    out += std::string(extra_key) + "=\"" + extra_value + "\"";
  }
  out += '}';
  return out;
}

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

void AtomicAdd(std::atomic<double>* a, double d) {
  double cur = a->load(std::memory_order_relaxed);
  while (!a->compare_exchange_weak(cur, cur + d, std::memory_order_relaxed)) {
  }
}

}  // namespace

void Gauge::Add(double d) { AtomicAdd(&v_, d); }

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double v) {
  std::size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Read(std::vector<std::uint64_t>* buckets, double* sum, std::uint64_t* count) const {
  buckets->resize(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) (*buckets)[i] = buckets_[i].load();
  *sum = sum_.load();
  *count = count_.load();
}

struct Registry::Family {
  std::string name, help;
  int type;
  std::vector<std::pair<Labels, std::unique_ptr<Counter>>> counters;
  std::vector<std::pair<Labels, std::unique_ptr<Gauge>>> gauges;
  std::vector<std::pair<Labels, std::unique_ptr<Histogram>>> histograms;
  std::function<void(const Emit&)> collect;
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family* Registry::FindOrAdd(const std::string& name, const std::string& help, int type) {
  for (auto& f : families_) {
    if (f->name == name) return f->type == type ? f.get() : nullptr;
  }
  families_.push_back(std::make_unique<Family>());
  Family* f = families_.back().get();
  f->name = name;
  f->help = help;
  f->type = type;
  return f;
}

template <typename T, typename Make>
static T* FindSeries(std::vector<std::pair<Labels, std::unique_ptr<T>>>* series,
                     const Labels& labels, Make make) {
  for (auto& [l, s] : *series) {
    if (l == labels) return s.get();
  }
  series->emplace_back(labels, make());
  return series->back().second.get();
}

Counter* Registry::GetCounter(const std::string& name, const std::string& help,
                              const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = FindOrAdd(name, help, kCounter);
  if (f == nullptr) f = FindOrAdd(name + "_type_conflict", help, kCounter);
  return FindSeries(&f->counters, labels, [] { return std::make_unique<Counter>(); });
}

Gauge* Registry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = FindOrAdd(name, help, kGauge);
  if (f == nullptr) f = FindOrAdd(name + "_type_conflict", help, kGauge);
  return FindSeries(&f->gauges, labels, [] { return std::make_unique<Gauge>(); });
}

Histogram* Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = FindOrAdd(name, help, kHistogram);
  if (f == nullptr) f = FindOrAdd(name + "_type_conflict", help, kHistogram);
  return FindSeries(&f->histograms, labels, [&] { return std::make_unique<Histogram>(bounds); });
}

void Registry::AddCollector(const std::string& name, const std::string& help,
                            std::function<void(const Emit&)> collect) {
  std::lock_guard<std::mutex> lock(mu_);
  Family* f = FindOrAdd(name, help, kCollector);
  if (f != nullptr) f->collect = std::move(collect);
}

std::string Registry::Render() const {
  // Collectors may take time (a catalog query); copy what is needed under the lock
  // and run them outside it.
  std::vector<const Family*> fams;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& f : families_) fams.push_back(f.get());
  }
  std::string out;
  for (const Family* f : fams) {
    static const char* kTypeNames[] = {"counter", "gauge", "histogram", "gauge"};
    out += "# HELP " + f->name + " " + f->help + "\n";
    out += "# TYPE " + f->name + " " + kTypeNames[f->type] + "\n";
    if (f->type == kCollector) {
      std::function<void(const Emit&)> collect;
      {
        std::lock_guard<std::mutex> lock(mu_);
        collect = f->collect;
      }
      if (collect) {
        collect([&](const Labels& l, double v) {
          out += f->name + LabelText(l) + " " + Num(v) + "\n";
        });
      }
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    switch (f->type) {
      case kCounter:
        for (const auto& [l, c] : f->counters) {
          out += f->name + LabelText(l) + " " + std::to_string(c->value()) + "\n";
        }
        break;
      case kGauge:
        for (const auto& [l, g] : f->gauges) {
          out += f->name + LabelText(l) + " " + Num(g->value()) + "\n";
        }
        break;
      case kHistogram:
        for (const auto& [l, h] : f->histograms) {
          std::vector<std::uint64_t> b;
          double sum;
          std::uint64_t count;
          h->Read(&b, &sum, &count);
          std::uint64_t cum = 0;
          for (std::size_t i = 0; i < b.size(); ++i) {
            cum += b[i];
            std::string le = i < h->bounds().size() ? Num(h->bounds()[i]) : "+Inf";
            out += f->name + "_bucket" + LabelText(l, "le", le) + " " + std::to_string(cum) + "\n";
          }
          out += f->name + "_sum" + LabelText(l) + " " + Num(sum) + "\n";
          out += f->name + "_count" + LabelText(l) + " " + std::to_string(count) + "\n";
        }
        break;
    }
  }
  return out;
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                               0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return kBuckets;
}

}  // namespace depot::core
