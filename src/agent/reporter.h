// Telling the site what happened (internal to the agent component): the outbox's
// status messages and the deployments whose state changed since the last report, in
// one request per batch. At least once: nothing is forgotten until the site has
// answered, and the site drops what it has seen (messages by sequence number,
// deployment reports unless newer).
#pragma once

#include <string>

#include "agent/state_store.h"
#include "core/status.h"
#include "http/client.h"

namespace depot::agent {

// Sends everything pending to `site`. Unavailable (or the site's error) when it could
// not be delivered: it stays pending.
core::Status SendReports(StateStore* state, http::Client* site);

}  // namespace depot::agent
