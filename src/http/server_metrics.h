// The HTTP server's metrics: requests by status class, latency, bytes written,
// connections refused and open. Internal to the http component (server.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <string>

#include "core/metrics.h"

namespace depot::http {

// Every pointer is null until SetUp, and stays null without a registry.
struct ServerMetrics {
  core::Counter* requests_by_class[6] = {};
  core::Histogram* latency = nullptr;
  core::Counter* bytes_sent = nullptr;
  core::Counter* rejected_connections = nullptr;  // over max_connections or per address
  core::Counter* rejected_bodies = nullptr;       // over the body memory budget

  // Registers the metrics as `prefix`_... in `r` (nothing when null); the open
  // connections gauge reads `connections`, the long polls gauge `parked`.
  void SetUp(core::Registry* r, const std::string& prefix,
             const std::atomic<std::size_t>* connections, const std::atomic<std::size_t>* parked);
  // Counts a request answered with `status`.
  void Count(int status);
};

}  // namespace depot::http
