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
// Manifests (immutable `targets/**.json`, 1 KiB or more) go out zstd-encoded
// (Content-Encoding: zstd) to clients that accept it and ask for the whole file: a
// manifest is mostly hex hashes and shrinks about 4x, and it is most of what an
// update moves. The encoded copy is made once per manifest and kept in memory
// (bounded); TUF still verifies the decoded bytes. Ranges and other clients get the
// file as stored, so nginx serving the same tree stays a drop-in.
//
// Thread safety: any thread; the encoded-copy cache has its own lock.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
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
  // Memory for zstd-encoded manifests; 0 turns encoding off.
  std::size_t encoded_cache_bytes = 64u << 20;
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
  // The zstd encoding of the immutable file `fd` (`size` bytes) named `key`, made
  // once; nullptr when it cannot be made.
  std::shared_ptr<const std::string> Encoded(const std::string& key, int fd, std::uint64_t size) const;

  std::string root_;
  int dirfd_;
  StaticFileOptions options_;
  mutable std::mutex cache_mu_;
  mutable std::map<std::string, std::shared_ptr<const std::string>> cache_;
  mutable std::deque<std::string> cache_order_;  // oldest first
  mutable std::size_t cache_bytes_ = 0;
};

// Parses a "Range: bytes=..." header against a body of `size` bytes. Returns false
// when the header is absent, malformed or asks for several ranges (serve the whole
// body); sets *unsatisfiable for a well-formed range that lies outside the body.
bool ParseByteRange(std::string_view header, std::uint64_t size, std::uint64_t* first,
                    std::uint64_t* last, bool* unsatisfiable);

}  // namespace depot::http
