// The client side of the upload protocol (docs/api.md): snapshot a source directory
// locally, ask the site which chunks it lacks, upload only those, submit the
// manifest. Internal to the cli component.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "store/manifest.h"

namespace depot::cli {

struct UploadRequest {
  std::string package;
  std::string source_dir;
  std::vector<store::Program> programs;
  std::string description;
  bool create = true;        // a new package (else a new version of an existing one)
  std::string staging_dir;   // where the snapshot's chunks are kept; "" for a temp dir
  unsigned parallel = 2;     // upload connections
};

struct UploadResult {
  Json version;  // the site's answer
  std::uint64_t files = 0, bytes = 0, chunks = 0;
  std::uint64_t missing_chunks = 0, uploaded_bytes = 0;
  double snapshot_s = 0, upload_s = 0, commit_s = 0;
};

// Runs the protocol. Errors name the phase: snapshot (the file at fault), upload,
// commit. Nothing becomes a version unless the last step succeeds.
core::Result<UploadResult> UploadPackage(ApiClient* api, const UploadRequest& req);

}  // namespace depot::cli
