// CurlSource: a RepoSource over HTTP(S) with libcurl. Keeps connections alive across
// requests, runs FetchMany() as parallel transfers on one libcurl multi handle,
// enforces the caller's length cap while downloading (an endless response is cut
// off at max_bytes + 1), and maps HTTP answers to Status codes:
//   2xx -> OK; 404/410 -> NotFound; 401/403 -> PermissionDenied;
//   anything else, timeouts and connection failures -> Unavailable.
//
// With CurlOptions::chunk_batches, FetchMany fetches chunks many per request from
// servers that offer it (depot's sites and DPs).
//
// Thread safety: Fetch() may be called concurrently (each call uses its own pooled
// handle); FetchMany() from one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/source.h"

namespace depot::http {

struct CurlOptions {
  std::uint32_t connect_timeout_s = 10;
  // A transfer slower than low_speed_bytes per second for low_speed_time_s is
  // abandoned (Unavailable): a stalled server must not hang a fetch forever.
  std::uint32_t low_speed_bytes = 1024;
  std::uint32_t low_speed_time_s = 30;
  std::string ca_file;               // extra CA bundle for https (private CA)
  std::string bearer_token;          // sent as "Authorization: Bearer ..." when set
  std::uint64_t max_rate_bytes = 0;  // per-transfer receive rate limit; 0 = none
  // FetchMany asks for runs of consecutive chunks in chunk batches (static_files.h)
  // instead of one GET each. A server that does not offer them (nginx: 405) is asked
  // once; the source then uses GETs for the rest of its life. Chunks a batch answer
  // does not carry are fetched with a GET each.
  bool chunk_batches = false;
  // FetchMany over plain http:// pipelines its GETs (http/pipeline.h) instead of one
  // libcurl transfer each, unless a proxy is configured in the environment or a
  // receive rate limit is set. Off: libcurl for everything (tests compare the two).
  bool pipelining = true;
};

class CurlSource final : public core::RepoSource {
 public:
  // `base_url` is the repository root, e.g. "http://dp1:8080/repo" (a trailing '/'
  // is ignored). InvalidArgument unless it starts with http:// or https://.
  static core::Result<std::unique_ptr<CurlSource>> Create(std::string base_url,
                                                          CurlOptions options = {});
  ~CurlSource() override;

  std::string Describe() const override { return base_url_; }
  core::Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override;
  core::Status FetchMany(
      const std::vector<core::FetchRequest>& requests, unsigned parallel,
      const std::function<bool(std::size_t, core::Result<std::string>)>& on_done) override;
  void Recycle(std::string buffer) override;

 private:
  struct Handle;
  class MultiFetch;  // one CurlFetchMany call's transfers (curl_source.cc)
  CurlSource(std::string base_url, CurlOptions options);
  std::unique_ptr<Handle> TakeHandle();
  void ReturnHandle(std::unique_ptr<Handle> h);
  std::string TakeSpare();  // a recycled body buffer (empty when none is spare)

  std::string base_url_;
  CurlOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;
  std::vector<std::string> spare_;  // recycled body buffers
  core::Status CurlFetchMany(
      const std::vector<core::FetchRequest>& requests, unsigned parallel,
      const std::function<bool(std::size_t, core::Result<std::string>)>& on_done);

  std::atomic<bool> batches_refused_{false};   // the server does not offer chunk batches
  std::atomic<bool> pipeline_refused_{false};  // its answers cannot be pipelined (chunked...)
  std::atomic<bool> one_at_a_time_{false};     // it dropped pipelined requests: depth 1
  std::atomic<bool> batches_answered_{false};  // it answered one: it does
};

}  // namespace depot::http
