// Packages and their versions on the site (internal to the site component): the
// upload protocol, listing, deletion, retention and content collection.
//
// Upload protocol (docs/api.md): the CLI snapshots locally, asks which chunks the
// site lacks (ChunksMissing), uploads those in batches (ReceiveChunks: each frame is
// decompressed and hashed against its id before it is stored), then submits the
// manifest (CreateVersion). The site re-checks every referenced chunk and file hash,
// reserves the next version number in the catalog, signs the manifest into the TUF
// targets, and activates the version -- all or nothing: a crash in between leaves a
// reservation that RecoverVersions resolves at the next start.
#pragma once

#include <string>
#include <string_view>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

core::Result<Json> ChunksMissing(SiteContext& ctx, const Json& body);
// Stores a chunk batch (store/chunk_batch.h), each frame verified against its id.
core::Result<Json> ReceiveChunks(SiteContext& ctx, std::string_view body);
// `manifest_body` is a manifest (docs/formats.md) whose package id, version and
// creation time the site replaces. `create`: the package must not exist yet (else it
// must). InvalidArgument, naming the deployments, when the version lacks a program
// that a live deployment following the newest version runs, unless `force`.
core::Result<Json> CreateVersion(SiteContext& ctx, const std::string& name, bool create,
                                 std::string_view manifest_body, bool force = false);
// Records message 1005 (upload_rejected) for a refused chunk batch or version of
// `package` ("" when the uploader did not say), with the reason. Best effort: a
// failure to record it is logged, never returned.
void PostUploadRejected(SiteContext& ctx, const std::string& package, const core::Status& why);
core::Result<Json> ListPackages(SiteContext& ctx);
core::Result<Json> ShowPackage(SiteContext& ctx, const std::string& name);
core::Result<Json> DeletePackage(SiteContext& ctx, const std::string& name);

// Makes the catalog and the signed targets agree after a crash: a reserved version
// that was signed becomes active, one that was not is dropped; versions retired or
// deleted in the catalog are removed from the targets; an active version missing
// from the targets is retired.
core::Status RecoverVersions(SiteContext& ctx);

// Timer work: retire versions beyond the retention limit; collect content of
// versions retired longer than the grace period.
void ApplyRetention(SiteContext& ctx);
void CollectContent(SiteContext& ctx);

}  // namespace depot::site
