// A child site's catalog as a replica of its parent's (internal to the site
// component, docs/hierarchy.md). Packages, versions, collections and deployments keep
// the ids the top site gave them at every tier, so a report about deployment 7 means
// the same deployment everywhere and flows up unchanged. Clients, DPs, tokens,
// records and messages are the child's own.
//
// Thread safety: any thread; the catalog serialises writers. The child's link worker
// is the only caller.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

// A version the feed names that this site does not hold yet.
struct MissingVersion {
  std::int64_t id = 0;
  std::int64_t package_id = 0;
  std::string package;
  std::int64_t version = 0;
  std::string manifest_id;
  std::int64_t manifest_bytes = 0;
  std::int64_t files = 0;
  std::int64_t bytes = 0;
  std::int64_t chunks = 0;
  std::string programs = "[]";  // JSON text, as the versions table keeps it
  std::int64_t created_at = 0;
};

// Brings packages, collections and deployments in line with `feed` (a parent's
// ChildFeed), retires versions and deletes packages the feed no longer names, and
// returns the versions whose content must be copied before they can be activated,
// oldest first. InvalidArgument naming the field at fault for a malformed feed
// (nothing is changed then); fields this site does not know are ignored (a parent
// is upgraded before its children).
core::Result<std::vector<MissingVersion>> ApplyFeed(SiteContext& ctx, const Json& feed);

// Records a copied version as active (the content is durable and its manifest
// published): its DP records are created and policies see it.
core::Status ActivateVersion(SiteContext& ctx, const MissingVersion& v);

}  // namespace depot::site
