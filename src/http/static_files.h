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
// Immutable files are kept open between requests (StaticFileOptions::open_files).
//
// Thread safety: any thread; the encoded-copy cache and the kept-open files have
// their own locks.
#pragma once

#include <sys/stat.h>

#include <array>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "http/address_budget.h"
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
  // Immutable files (see IsImmutableName) kept open between requests, 0 for none: a
  // hot chunk then costs no open(2), path walk or close(2), only an fstat(2) that
  // notices when it was deleted since (a scrub repair, garbage collection, an
  // operator) and opens it again by name. At most a fifth of RLIMIT_NOFILE.
  std::size_t open_files = 8192;
  // Memory for chunk-batch answers held at once (built, not yet sent: a client that
  // does not read holds its answer until the write timeout), in all; one peer
  // address gets a quarter. Past it a batch answers "-" for every id, and the
  // client GETs them one by one (by sendfile, from no memory).
  std::uint64_t batch_memory = 32u << 20;
  // A kept file unused for this long is closed at the next look into its part of
  // the cache, so a deleted file does not hold its disk space for long.
  std::chrono::seconds open_file_idle{60};
};

// Chunk batches, an extension of the plain /repo/ layout that depot's servers offer
// (nginx serving the same tree answers 405, and clients fall back to one GET per
// chunk). Request: POST <repo>/chunks/batch, body = chunk ids (64 lowercase hex),
// one per line, each once, at most kMaxBatchIds. Response 200, Content-Type
// kChunkBatchContentType: for every id in the request, in order, the line
// "<id> <n>\n" followed by the n bytes of its stored frame, or the line "<id> -\n"
// when this answer does not carry it (absent here, past kMaxBatchBytes, or the
// server's memory for batch answers spent -- StaticFileOptions::batch_memory): the
// client asks for that one alone, which is also how a DP's pull-through is reached.
// Nothing in it is trusted more than a GET: the client verifies every frame.
inline constexpr std::string_view kChunkBatchPath = "chunks/batch";
inline constexpr std::string_view kChunkBatchContentType = "application/x-depot-chunk-batch";
inline constexpr std::size_t kMaxBatchIds = 256;
inline constexpr std::size_t kMaxBatchBytes = 4u << 20;
// The request body a batch of kMaxBatchIds needs ("<id>\n" each), and some room.
inline constexpr std::size_t kMaxBatchBody = kMaxBatchIds * 65 + 1024;

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

  // Answers a chunk batch (kChunkBatchPath; POST, others get 405): many chunk files in
  // one response, so a client fetching tens of thousands of small chunks does not
  // pay a request for each (docs/api.md, "Chunk batches"). 400 for a malformed list.
  void ServeChunkBatch(const Request& req, Response* resp) const;

  // Closes every kept-open file (responses in flight keep theirs until they end).
  // Whoever deletes files beneath the root calls it, so no deleted file stays open
  // holding its disk space until it would be asked for again.
  void CloseKeptFiles() const;
  // How many files are kept open right now.
  std::size_t kept_files() const;

 private:
  StaticTree(std::string root, int dirfd, StaticFileOptions options);
  // The zstd encoding of the immutable file `fd` (`size` bytes) named `key`, made
  // once; nullptr when it cannot be made.
  std::shared_ptr<const std::string> Encoded(const std::string& key, int fd,
                                             std::uint64_t size) const;
  // Opens root/rel for reading without leaving the tree or following any symlink;
  // -1 (errno set) when that is not possible.
  int OpenBeneath(const std::string& rel) const;
  // The regular file root/rel with its fstat in *st, from the kept-open files when
  // `keep` and it is there and not deleted, else opened (and kept when `keep`);
  // nullptr when there is no such regular file.
  std::shared_ptr<const OpenFile> OpenRegular(std::string_view rel, bool keep,
                                              struct stat* st) const;

  struct KeptFile {
    std::string rel;
    std::shared_ptr<const OpenFile> file;
    std::chrono::steady_clock::time_point used;
  };
  // One part of the kept-open files, by hash of the path, so the server's threads
  // rarely wait for each other.
  struct KeptShard {
    std::mutex mu;
    std::list<KeptFile> lru;  // most recently used first
    std::unordered_map<std::string_view, std::list<KeptFile>::iterator>
        index;  // keys view lru's strings
  };
  static constexpr std::size_t kKeptShards = 8;
  KeptShard& ShardOf(std::string_view rel) const;
  // Closes the shard's least recently used file. Caller holds its lock.
  static void DropOldest(KeptShard& shard);

  std::string root_;
  int dirfd_;
  StaticFileOptions options_;
  mutable AddressBudget batch_budget_;
  std::size_t kept_per_shard_ = 0;
  mutable std::array<KeptShard, kKeptShards> kept_;
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
