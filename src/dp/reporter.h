// The DP's reporter (internal to the dp component): every second, the states and
// progress of versions whose report is due (and of the one syncing) go to the site,
// then the outbox's status messages, oldest first, each batch removed only once the
// site acknowledged it (at least once; the site drops duplicates). Failures back off
// (core::Backoff on the clock); the first and every 30th are logged.
//
// Thread safety: Run on one thread; SendMessages from any one thread at a time.
#pragma once

#include "dp/context.h"

namespace depot::dp {

class Reporter {
 public:
  explicit Reporter(DpContext* ctx) : ctx_(ctx) {}

  // Reports until the book stops.
  void Run();
  core::Status SendReports(http::Client* client);
  core::Status SendMessages(http::Client* client);

 private:
  DpContext* ctx_;
};

}  // namespace depot::dp
