// The programs of a package's versions, as `package update` needs them (internal to
// the site component): the newest version's programs, which a new version carries
// over unless the operator changes them, and the check that a new version does not
// take away a program a running deployment still runs.
#pragma once

#include <string>
#include <vector>

#include "site/context.h"
#include "site/json.h"
#include "store/manifest.h"

namespace depot::site {

// GET /api/v1/packages/{name}/programs: {"package", "version", "programs": [...]}
// with the newest active version's programs in the manifest's form (read from its
// signed manifest). NotFound for an unknown package or one without versions.
core::Result<Json> LatestPrograms(SiteContext& ctx, const std::string& name);

// The signed manifest of version `version` of `name`, read from the library and
// checked against `manifest_id` (Corruption when it differs: run `depot repo verify`).
core::Result<store::Manifest> LoadStoredManifest(SiteContext& ctx, const std::string& name,
                                                 std::int64_t version,
                                                 const std::string& manifest_id,
                                                 std::int64_t manifest_bytes);

// The deployments of package `name` that follow its newest version (not pinned, not
// cancelled) and run a program `programs` lacks:
// [{"deployment", "program", "collection"}]. Empty for a new package.
core::Result<Json> OrphanedDeployments(SiteContext& ctx, const std::string& name,
                                       const std::vector<store::Program>& programs);

}  // namespace depot::site
