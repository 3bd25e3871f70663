// A small HTTP client for depot's JSON APIs (the CLI, DPs and agents talking to a
// site), on libcurl with one kept-alive connection per Client.
//
// Transport failures are errors (Unavailable; PermissionDenied for an untrusted TLS
// certificate; InvalidArgument for a bad URL); any HTTP status is a response, for
// the caller to interpret (ApiError turns a depot JSON error into a Status).
//
// Thread safety: a Client is used by one thread at a time; make one per thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/status.h"
#include "http/server.h"

namespace depot::http {

struct ClientOptions {
  // Other base URLs of the same service (several site processes, docs/scale-out.md),
  // tried in turn when the current one fails (see Client::Do).
  std::vector<std::string> fallback_urls;
  // What a failed URL's backoff runs on (nullptr: the real clock).
  core::Clock* clock = nullptr;
  std::string bearer_token;  // sent as "Authorization: Bearer ..." when set
  std::string ca_file;       // PEM bundle to trust (a site's private CA)
  long connect_timeout_s = 10;
  long timeout_s = 600;  // whole request, 0: none
  std::uint64_t max_response_bytes = 256ull << 20;
};

// Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 §5.6.7), the form
// of every Date header depot's servers send; nullopt for anything else.
std::optional<core::TimePoint> ParseHttpDate(std::string_view s);

struct ClientResponse {
  long status = 0;
  std::string body;
  std::vector<Header> headers;  // lowercase names
  const std::string* GetHeader(std::string_view name) const;
};

class Client {
 public:
  // `base_url` like "https://site:8443" (no trailing path needed); with
  // options.fallback_urls, the first of several.
  static core::Result<std::unique_ptr<Client>> Create(std::string base_url,
                                                      ClientOptions options = {});
  ~Client();

  // The base URL requests go to now.
  const std::string& base_url() const { return bases_[current_]; }

  // While *flag is true, requests in flight are abandoned (Unavailable) within about
  // a second and new ones fail at once: lets a long poll end promptly at shutdown.
  // `flag` must outlive the client.
  void SetAbortFlag(const std::atomic<bool>* flag) { abort_ = flag; }

  // Sends `method` to base_url + `target` ("/api/v1/x?y=1"). `body` is sent with
  // `content_type` when non-empty (or for POST/PUT). `extra_headers` are "Name: value".
  // `timeout_s` overrides the default when non-negative.
  //
  // Failover (with fallback URLs): when the current URL cannot be reached or answers
  // 502/503/504, it backs off (core::Backoff, 1 s doubling to 1 min) and the next URL
  // not backing off becomes current -- it stays current while it works. The request
  // is sent there too when that cannot apply it twice: nothing was sent, the answer
  // was 502/503 (not processed), or the method is GET/HEAD. Otherwise the error is
  // returned and the caller's retry goes to the new URL. When every URL is backing
  // off, the error is returned.
  core::Result<ClientResponse> Do(std::string_view method, std::string_view target,
                                  std::string_view body = {},
                                  std::string_view content_type = "application/json",
                                  const std::vector<std::string>& extra_headers = {},
                                  long timeout_s = -1);

 private:
  struct Impl;
  Client(std::vector<std::string> bases, ClientOptions options);
  // One request to `base`; *sent: whether any of the request left this process.
  core::Result<ClientResponse> DoOnce(const std::string& base, std::string_view method,
                                      std::string_view target, std::string_view body,
                                      std::string_view content_type,
                                      const std::vector<std::string>& extra_headers, long timeout_s,
                                      bool* sent);
  // The next URL after the current one that is not backing off; npos when none.
  std::size_t NextDue() const;
  std::vector<std::string> bases_;
  std::vector<core::Backoff> backoffs_;  // one per base
  std::size_t current_ = 0;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
  const std::atomic<bool>* abort_ = nullptr;
};

// Turns a non-2xx response into a Status, using depot's JSON error body
// {"error":{"code":"NotFound","message":"..."}} when present, else the HTTP status
// (404 -> NotFound, 401/403 -> PermissionDenied, 400/409/413/422 -> InvalidArgument,
// others -> Unavailable). OK for 2xx.
core::Status ApiError(const ClientResponse& r, std::string_view what);

}  // namespace depot::http
