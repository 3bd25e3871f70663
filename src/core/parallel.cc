#include "core/parallel.h"

#include <sched.h>

namespace depot::core {

unsigned DefaultConcurrency() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

void RunParallel(unsigned workers, const std::function<void(unsigned)>& fn) {
  if (workers <= 1) {
    fn(0);
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(workers - 1);
  for (unsigned i = 1; i < workers; ++i) threads.emplace_back(fn, i);
  fn(0);
  for (auto& t : threads) t.join();
}

}  // namespace depot::core
