// The site's HTTP surface (internal to the site component): routes requests to the
// modules, enforces credentials and roles, and maps errors to JSON responses
// (docs/api.md). Also serves /repo/ (the content library), /healthz and /metrics.
#pragma once

#include "http/server.h"
#include "site/context.h"
#include "site/json.h"

namespace depot::site {

class SiteApi final : public http::Handler {
 public:
  explicit SiteApi(SiteContext* ctx);
  ~SiteApi() override;
  // Refuses, from the headers alone, a body for a route that does not exist or that
  // the caller's credential may not use (404/405, 401, 403); else its route's limit.
  http::Admission Admit(const http::Request& head) override;
  void Handle(http::Request& req, http::Response* resp) override;

  struct Route;

 private:
  const Route* Match(const http::Request& req, std::vector<std::string>* params) const;
  // The route of `req` and its caller, or the response refusing it (no such route or
  // method, no valid credential, a role that may not).
  struct Gate;
  Gate Pass(const http::Request& req);
  SiteContext* ctx_;
  std::vector<Route> routes_;
};

// The HTTP status for an error code: NotFound 404, InvalidArgument 400,
// PermissionDenied 403, Corruption 422, Unavailable 503, IOError 500.
int HttpStatusFor(const core::Status& s);
// {"error":{"code":"NotFound","message":"..."}} with the status above.
http::Response ErrorResponse(const core::Status& s, int status = 0);

// A strong ETag naming `body`'s content (the first 128 bits of the SHA-256 of its
// serialisation): any change in it, and only a change, gives another.
std::string ContentEtag(const Json& body);

// The server topic the console's change stream parks on (Activity wakes it).
inline constexpr const char* kConsoleTopic = "console";

// For a long poll whose answer has not changed: parks the request on `topic`
// past `seq` for what is left of its `wait` seconds (query
// parameter; `default_wait_s` without one; at most 120) and returns true; false when
// the wait is over (answer 304 then).
bool ParkUntilChange(SiteContext& ctx, const http::Request& req, std::uint64_t seq,
                     std::int64_t default_wait_s, http::Response* resp,
                     const char* topic = "assignments");

// Answers a long poll on the "assignments" topic (a DP's assignment, a child's feed)
// whose current state is `body` (with "etag"): 200 with it when the caller's
// If-None-Match differs; else parks the request until the topic moves past `seq`
// (read before the state, so no change slips in between) or its `wait` seconds
// (default 30, at most 120) pass, then 304.
void AnswerLongPoll(SiteContext& ctx, const http::Request& req, std::uint64_t seq, const Json& body,
                    http::Response* resp);

}  // namespace depot::site
