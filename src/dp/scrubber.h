// The DP's scrubber (internal to the dp component): re-hashes every stored chunk and
// published manifest at a bounded rate; a damaged object is removed at once (never
// served again) and, with repair, refetched from upstream and verified; versions
// that used it go back to pending so the syncer re-checks them. The first scheduled
// pass comes scrub_start after start (a DP that was down may have come back with a
// damaged disk), then one every scrub_every, each ending with a 3008 report.
//
// Thread safety: Run on one thread; Scrub may also run on another (depot dp verify
// runs it with the DP stopped).
#pragma once

#include "dp/context.h"

namespace depot::dp {

class Scrubber {
 public:
  explicit Scrubber(DpContext* ctx) : ctx_(ctx) {}

  // Scrubs on schedule until the book stops.
  void Run();
  // One pass; `rate` bytes/s (0: unlimited), paced on the clock.
  core::Result<VerifyReport> Scrub(bool repair, std::uint64_t rate);

 private:
  core::Status ScrubChunks(bool repair, std::uint64_t rate, VerifyReport* report);
  void ScrubManifests(bool repair, VerifyReport* report);

  DpContext* ctx_;
};

}  // namespace depot::dp
