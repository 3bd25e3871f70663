// Serving a directory tree over HTTP the way a CDN would: GET and HEAD, one byte
// range (206; 416 when unsatisfiable), ETag and If-None-Match (304), Cache-Control,
// bodies by sendfile. Used for the /repo/ tree of sites and DPs.
//
// Safety: the path must be a valid relative path (no "..", no NUL, no empty or "."
// components), symlinks are never followed, only regular files are served, names
// starting with '.' (temp files being written) are invisible, and there is no
// directory listing. A file is opened before its size is taken, so the bytes sent
// are those of one immutable file even if it is replaced meanwhile.
//
// Thread safety: stateless; call from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "http/server.h"

namespace depot::http {

struct StaticFileOptions {
  // Cache-Control for files whose name says they never change (content-addressed
  // chunks and targets, versioned N.role.json metadata).
  std::string immutable_cache = "public, max-age=31536000, immutable";
  // Cache-Control for everything else (timestamp.json, root.json).
  std::string mutable_cache = "no-cache";
};

// True for names depot never rewrites: "<64 hex>", "<64 hex>.<anything>",
// "<digits>.<anything>.json".
bool IsImmutableName(std::string_view file_name);

// A directory tree to serve. Holds the root open, and resolves every request beneath
// it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so no path and no symlink
// (at any level) can lead outside or anywhere unexpected.
class StaticTree {
 public:
  // NotFound/PermissionDenied when `root` cannot be opened as a directory.
  static core::Result<std::unique_ptr<StaticTree>> Open(const std::string& root,
                                                        StaticFileOptions options = {});
  ~StaticTree();
  StaticTree(const StaticTree&) = delete;
  StaticTree& operator=(const StaticTree&) = delete;

  const std::string& root() const { return root_; }

  // Answers `req` (GET or HEAD; others get 405) with the file at root/rel_path. 404
  // for anything absent or not servable.
  void Serve(const Request& req, std::string_view rel_path, Response* resp) const;

 private:
  StaticTree(std::string root, int dirfd, StaticFileOptions options);
  std::string root_;
  int dirfd_;
  StaticFileOptions options_;
};

// Parses a "Range: bytes=..." header against a body of `size` bytes. Returns false
// when the header is absent, malformed or asks for several ranges (serve the whole
// body); sets *unsatisfiable for a well-formed range that lies outside the body.
bool ParseByteRange(std::string_view header, std::uint64_t size, std::uint64_t* first,
                    std::uint64_t* last, bool* unsatisfiable);

}  // namespace depot::http
