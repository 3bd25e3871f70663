// The DP's collector (internal to the dp component): content of versions unassigned
// longer than gc_grace is deleted -- the published manifest first, so no client is
// offered a version whose chunks are going, then every chunk no assigned version
// uses. Runs on the syncer's thread between versions, so nothing it deletes is being
// published at the same time.
#pragma once

#include "dp/context.h"

namespace depot::dp {

// One collection pass. Collects nothing while the manifest of an assigned version is
// unknown here (it cannot tell which chunks that version needs).
void CollectGarbage(DpContext* ctx);

}  // namespace depot::dp
