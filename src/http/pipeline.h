// Pipelined GETs over plain HTTP/1.1 (RFC 9112 §9.3.2): many static objects from
// any web server over a few connections, each carrying a window of requests sent
// back to back, their answers read in order. Internal to the http component;
// CurlSource::FetchMany uses it for runs of chunk GETs to http:// sources that do
// not offer chunk batches (nginx, a CDN, python's http.server).
//
// Why not libcurl: it dropped pipelining, and one transfer per chunk costs its
// download thread ~45 us (46.6 k chunks in the 1 GiB benchmark tree: ~2 s of a core
// that the client's hashing and writing need). Here a chunk costs one parse of a
// response head and one copy.
//
// Only what static serving needs: GET, Content-Length bodies, keep-alive. An answer
// this client cannot take in a pipeline (chunked or unbounded body, an encoding it
// did not ask for) ends the pipelined run; the requests not yet answered are handed
// back for the caller to fetch another way. A server that closes a connection with
// requests in flight had them requeued on a new connection; one that seems not to
// take pipelined requests at all gets one request at a time from then on.
//
// Thread safety: PipelinedGet is a plain function; one call per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/source.h"
#include "core/status.h"

namespace depot::http {

struct PipelineTarget {
  std::string host;  // as in the URL, without brackets: "127.0.0.1", "::1", "dp1"
  std::uint16_t port = 80;
  std::string host_header;  // "dp1:8080", "[::1]:8080"
  std::string path_prefix;  // "/repo" (no trailing '/'; may be empty)
  std::string url;          // "http://dp1:8080/repo", for messages
};

// Parses "http://HOST[:PORT][/PREFIX]". False for anything else (https, userinfo,
// a query or fragment): those go through libcurl.
bool ParsePlainHttpUrl(const std::string& url, PipelineTarget* out);

struct PipelineOptions {
  unsigned connections = 4;
  unsigned depth = 32;  // requests in flight per connection (1: keep-alive only)
  std::uint32_t connect_timeout_s = 10;
  std::uint32_t stall_timeout_s =
      30;                    // a connection with requests in flight and no byte for this long fails
  std::string bearer_token;  // sent as "Authorization: Bearer ..." when set
};

struct PipelineHooks {
  // Like RepoSource::FetchMany's on_done: one result per request index; false stops.
  std::function<bool(std::size_t, core::Result<std::string>)> on_done;
  // An empty string with capacity to receive a body into (may return {}).
  std::function<std::string()> take_buffer;
  // Body bytes received (for RepoSource::BytesFetched).
  std::function<void(std::uint64_t)> count_bytes;
};

struct PipelineOutcome {
  bool stopped = false;           // on_done returned false
  bool no_pipelining = false;     // the server dropped pipelined requests: use depth 1 next time
  std::vector<std::size_t> rest;  // not delivered: the server's answers cannot be taken this way
  std::string why_rest;           // what made the run end early, for logs
};

// GETs `target.path_prefix + "/" + requests[i].path` for every i in `indices`,
// delivering each result through hooks.on_done: the body for 2xx; NotFound for
// 404/410, PermissionDenied for 401/403, Unavailable for other codes, connection
// failures (after 3 tries on fresh connections) and stalls; Corruption for a body
// longer than the request's max_bytes; InvalidArgument for an unsafe path.
PipelineOutcome PipelinedGet(const PipelineTarget& target, const PipelineOptions& options,
                             const std::vector<core::FetchRequest>& requests,
                             const std::vector<std::size_t>& indices, const PipelineHooks& hooks);

}  // namespace depot::http
