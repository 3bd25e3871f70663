// The network seam. A RepoSource is a read-only view of a repository's public tree
// (metadata/, targets/, chunks/), wherever it lives: a local directory (DirSource),
// an HTTP server (http::CurlSource), or a test double that injects faults. Nothing
// a source returns is trusted: callers verify every byte (TUF for metadata, SHA-256
// for content).
//
// Thread safety: Fetch() may be called from several threads; FetchMany() from one
// at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace depot::core {

struct FetchRequest {
  std::string path;         // relative to the repository root, e.g. "chunks/ab/ab12..."
  std::uint64_t max_bytes;  // the object is refused (Corruption) if it is longer
};

class RepoSource {
 public:
  virtual ~RepoSource() = default;

  // Where the bytes come from, for messages: "http://dp1:8080/repo", "/srv/repo".
  virtual std::string Describe() const = 0;

  // Fetches one object. NotFound when the source does not have it, Corruption when
  // it is longer than max_bytes (the download stops there), Unavailable when the
  // source cannot be reached or fails, InvalidArgument for a bad path.
  virtual Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) = 0;

  // Fetches every request with at most `parallel` in flight. Calls
  // on_done(index, result) exactly once per request that was started, one call at a
  // time, from an unspecified thread; it should be quick (hand heavy work to a
  // pool). Returning false from on_done stops the batch: nothing new starts and
  // FetchMany returns once in-flight transfers are abandoned. Returns OK when every
  // request was delivered (each result may still be an error).
  virtual Status FetchMany(const std::vector<FetchRequest>& requests, unsigned parallel,
                           const std::function<bool(std::size_t, Result<std::string>)>& on_done);

  // Hands back a string a result was delivered in, once the caller is done with it,
  // so a source may receive later bodies into its memory instead of allocating
  // (tens of thousands of 16-256 KiB bodies per fetch). Optional; any thread.
  virtual void Recycle(std::string buffer) { (void)buffer; }

  // Bytes received from this source so far (bodies, including rejected ones).
  std::uint64_t BytesFetched() const { return bytes_fetched_.load(); }

 protected:
  void CountBytes(std::uint64_t n) { bytes_fetched_ += n; }

 private:
  std::atomic<std::uint64_t> bytes_fetched_{0};
};

class Env;

// A repository directory on a local or mounted filesystem.
class DirSource final : public RepoSource {
 public:
  // `env` is not owned and must outlive the source.
  DirSource(Env* env, std::string root);
  std::string Describe() const override { return root_; }
  Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override;

 private:
  Env* env_;
  std::string root_;
};

}  // namespace depot::core
