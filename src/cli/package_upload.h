// The client side of the upload protocol (docs/api.md): snapshot a source directory
// locally, streaming its chunks as they are made to uploader threads that ask the
// site which ones it lacks and upload only those, then submit the manifest. Nothing
// is written to the local disk. Internal to the cli component.
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
  bool create = true;     // a new package (else a new version of an existing one)
  bool force = false;     // create it even if it takes a program from a live deployment
  unsigned parallel = 2;  // upload connections
};

struct UploadResult {
  Json version;  // the site's answer
  std::uint64_t files = 0, bytes = 0, chunks = 0;
  std::uint64_t missing_chunks = 0, uploaded_bytes = 0;
  double snapshot_s = 0;  // snapshot and upload, which overlap
  double upload_s = 0;    // the upload's tail after the snapshot finished
  double commit_s = 0;
};

// Runs the protocol. Errors name the phase: snapshot (the file at fault), upload,
// commit. Nothing becomes a version unless the last step succeeds.
core::Result<UploadResult> UploadPackage(ApiClient* api, const UploadRequest& req);

}  // namespace depot::cli
