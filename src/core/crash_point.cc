#include "core/crash_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/log.h"

namespace depot::core {
namespace {

struct Armed {
  std::string name;  // "" = disarmed
  long hit_at = 1;
  std::atomic<long> hits{0};
};

Armed& Config() {
  static Armed* armed = [] {
    auto* a = new Armed;
    const char* v = std::getenv("DEPOT_CRASH_AT");
    if (v == nullptr) return a;
    std::string s(v);
    auto colon = s.rfind(':');
    if (colon != std::string::npos) {
      char* end = nullptr;
      long n = std::strtol(s.c_str() + colon + 1, &end, 10);
      if (end != nullptr && *end == '\0' && n > 0) {
        a->hit_at = n;
        s.resize(colon);
      }
    }
    a->name = s;
    return a;
  }();
  return *armed;
}

}  // namespace

void CrashPoint(std::string_view name) {
  Armed& a = Config();
  if (a.name.empty() || a.name != name) return;
  if (a.hits.fetch_add(1) + 1 != a.hit_at) return;
  Log(LogLevel::kWarn, "crash_point.kill", {{"point", std::string(name)}});
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

}  // namespace depot::core
