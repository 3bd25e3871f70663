// The DP's assignment poller (internal to the dp component): long-polls the site for
// the versions this DP must hold (so an idle DP costs nothing), hands each new
// assignment to the version book, marks dropped versions for collection and checks
// the chunks a new verify request names at once (a damaged one is removed, so it is
// never served again; the syncer re-checks the whole version next).
//
// Failures back off (core::Backoff, on the clock); a 304 is the long poll's normal
// end, not a failure.
//
// Thread safety: Run on one thread; Apply from that thread (or before it starts).
#pragma once

#include <map>
#include <string>

#include "dp/context.h"

namespace depot::dp {

class Poller {
 public:
  explicit Poller(DpContext* ctx) : ctx_(ctx) {}

  // Polls until the book stops.
  void Run();
  // Takes `next` as the assignment: the book, the versions table, verify requests.
  void Apply(std::map<std::string, Assigned> next);

 private:
  DpContext* ctx_;
};

}  // namespace depot::dp
