#include "http/server_metrics.h"

namespace depot::http {

void ServerMetrics::SetUp(core::Registry* r, const std::string& prefix,
                          const std::atomic<std::size_t>* connections,
                          const std::atomic<std::size_t>* parked) {
  if (r == nullptr) return;
  const std::string& p = prefix;
  for (int c = 1; c <= 5; ++c) {
    requests_by_class[c] = r->GetCounter(p + "_requests_total", "HTTP requests answered",
                                         {{"code", std::to_string(c) + "xx"}});
  }
  latency = r->GetHistogram(p + "_request_duration_seconds",
                            "Time from a complete request to its response written",
                            core::LatencyBuckets());
  bytes_sent = r->GetCounter(p + "_response_bytes_total", "Response bytes written");
  rejected_connections = r->GetCounter(p + "_rejected_connections_total",
                                       "Connections refused by the connection limits (in all, "
                                       "per address)");
  rejected_bodies = r->GetCounter(p + "_rejected_bodies_total",
                                  "Request bodies refused by the body memory budget (in all, "
                                  "per address)");
  r->AddCollector(p + "_connections", "Open connections",
                  [connections](const core::Registry::Emit& emit) {
                    emit({}, static_cast<double>(connections->load()));
                  });
  r->AddCollector(p + "_long_polls", "Requests parked in a long poll",
                  [parked](const core::Registry::Emit& emit) {
                    emit({}, static_cast<double>(parked->load()));
                  });
}

void ServerMetrics::Count(int status) {
  int c = status / 100;
  if (c >= 1 && c <= 5 && requests_by_class[c] != nullptr) requests_by_class[c]->Inc();
}

}  // namespace depot::http
