#include "site/api.h"

#include "console/assets.h"
#include "core/log.h"
#include "core/sha256.h"
#include "site/api_routes.h"
#include "site/auth.h"
#include "site/json.h"

namespace depot::site {

using core::Status;

int HttpStatusFor(const Status& s) {
  switch (s.code()) {
    case core::Code::kOk:
      return 200;
    case core::Code::kNotFound:
      return 404;
    case core::Code::kInvalidArgument:
      return 400;
    case core::Code::kPermissionDenied:
      return 403;
    case core::Code::kCorruption:
      return 422;
    case core::Code::kUnavailable:
      return 503;
    case core::Code::kIOError:
      return 500;
  }
  return 500;
}

http::Response ErrorResponse(const Status& s, int status) {
  return http::Response::Json(
      status != 0 ? status : HttpStatusFor(s),
      Dump({{"error",
             {{"code", std::string(core::CodeName(s.code()))}, {"message", s.message()}}}}));
}

std::string ContentEtag(const Json& body) {
  return "\"" + core::Sha256::HashHex(Dump(body)).substr(0, 32) + "\"";
}

bool ParkUntilChange(SiteContext& ctx, const http::Request& req, std::uint64_t seq,
                     std::int64_t default_wait_s, http::Response* resp, const char* topic) {
  std::int64_t wait_s = default_wait_s;
  if (auto w = req.QueryParam("wait"))
    wait_s = std::clamp<std::int64_t>(catalog::Value(*w).AsInt(), 0, 120);
  auto left = std::chrono::seconds(wait_s) - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - req.received);
  if (left <= std::chrono::milliseconds(0) || req.poll_timed_out || ctx.server == nullptr) {
    return false;
  }
  // First look, or woken by a change that did not change this answer: park (again).
  resp->wait =
      http::Response::Wait{topic, seq, std::chrono::duration_cast<std::chrono::milliseconds>(left)};
  return true;
}

void AnswerLongPoll(SiteContext& ctx, const http::Request& req, std::uint64_t seq, const Json& body,
                    http::Response* resp) {
  const std::string etag = body.value("etag", "");
  const std::string* inm = req.GetHeader("if-none-match");
  if (inm != nullptr && *inm == etag) {
    if (ParkUntilChange(ctx, req, seq, 30, resp)) return;
    resp->status = 304;
    resp->SetHeader("ETag", etag);
    return;
  }
  *resp = http::Response::Json(200, Dump(body));
  resp->SetHeader("ETag", etag);
}

struct SiteApi::Route {
  std::string method;
  std::vector<std::string> segments;  // "{}" matches one segment
  Role need;
  std::uint64_t body_limit;
  RouteFn fn;
};

SiteApi::~SiteApi() = default;

SiteApi::SiteApi(SiteContext* ctx) : ctx_(ctx) {
  AddRouteFn add = [&](std::string method, std::string pattern, Role need, std::uint64_t limit,
                       RouteFn fn) {
    Route r;
    r.method = std::move(method);
    std::string_view p = pattern;
    while (!p.empty()) {
      p.remove_prefix(1);
      auto slash = p.find('/');
      r.segments.emplace_back(p.substr(0, slash));
      p = slash == std::string_view::npos ? std::string_view() : p.substr(slash);
    }
    r.need = need;
    r.body_limit = limit;
    r.fn = std::move(fn);
    routes_.push_back(std::move(r));
  };
  const std::uint64_t upload = ctx->config.max_upload_body;
  AddTokenRoutes(add);
  AddPackageRoutes(add, upload);
  AddDpAdminRoutes(add);
  AddClientRoutes(add);
  AddStatusRoutes(add);
  AddDpRoutes(add);
  AddAgentRoutes(add);
  AddHierarchyRoutes(add);
  AddConsoleRoutes(add);
}

const SiteApi::Route* SiteApi::Match(const http::Request& req,
                                     std::vector<std::string>* params) const {
  std::vector<std::string_view> segs;
  std::string_view p = req.path;
  while (!p.empty()) {
    p.remove_prefix(1);
    auto slash = p.find('/');
    segs.push_back(p.substr(0, slash));
    p = slash == std::string_view::npos ? std::string_view() : p.substr(slash);
  }
  bool path_matched = false;
  for (const Route& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    bool ok = true;
    params->clear();
    for (std::size_t i = 0; i < segs.size() && ok; ++i) {
      if (r.segments[i] == "{}") {
        if (segs[i].empty()) ok = false;
        params->emplace_back(segs[i]);
      } else if (r.segments[i] != segs[i]) {
        ok = false;
      }
    }
    if (!ok) continue;
    path_matched = true;
    if (r.method == req.method || (r.method == "GET" && req.method == "HEAD")) return &r;
  }
  if (path_matched) params->assign(1, "\x01method");  // the path exists with another method
  return nullptr;
}

struct SiteApi::Gate {
  const Route* route = nullptr;
  std::vector<std::string> params;
  std::optional<Principal> who;
  std::optional<http::Response> refusal;
};

namespace {

// What only the top of a tree creates: the catalog a child replicates.
bool MadeAtTheTop(const SiteApi::Route& r) {
  if (r.method == "GET" || r.segments.size() < 3 || r.segments[0] != "api") return false;
  const std::string& area = r.segments[2];
  return area == "chunks" || area == "packages" || area == "collections" || area == "deployments";
}

}  // namespace

SiteApi::Gate SiteApi::Pass(const http::Request& req) {
  Gate g;
  g.route = Match(req, &g.params);
  if (g.route == nullptr) {
    if (!g.params.empty() && g.params[0] == "\x01method") {
      g.refusal = ErrorResponse(
          Status::InvalidArgument(req.method + " is not allowed on " + req.path), 405);
    } else {
      g.refusal = ErrorResponse(Status::NotFound("no such endpoint: " + req.method + " " +
                                                 req.path + " (see docs/api.md)"));
    }
    return g;
  }
  auto who = Authenticate(*ctx_, req);
  if (!who.ok()) {
    g.refusal = ErrorResponse(who.status(), 401);
    g.refusal->SetHeader("WWW-Authenticate", "Bearer realm=\"depot\"");
    return g;
  }
  if (!RoleAllows(who->role, g.route->need)) {
    g.refusal = ErrorResponse(Status::PermissionDenied(
        "a " + std::string(RoleName(who->role)) + " credential may not " + req.method + " " +
        req.path + " (needs " + std::string(RoleName(g.route->need)) + ")"));
    return g;
  }
  if (ctx_->config.is_child() && MadeAtTheTop(*g.route)) {
    g.refusal = ErrorResponse(
        Status::InvalidArgument(
            "this is a child site: packages, collections and deployments are made at the top "
            "site and flow down to here (this site's parent is " +
            ctx_->config.parent_url + "); run the command there"),
        409);
    return g;
  }
  g.who = std::move(*who);
  return g;
}

http::Admission SiteApi::Admit(const http::Request& head) {
  if (console::IsConsolePath(head.path)) {
    // The console's files are static: nothing there takes a body.
    http::Response r = ErrorResponse(
        Status::InvalidArgument(head.method + " with a body is not allowed on " + head.path), 405);
    r.SetHeader("Allow", "GET, HEAD");
    return {0, std::move(r)};
  }
  if (head.path.rfind("/repo/", 0) == 0) {
    // The content library is public; of it only a chunk batch takes a body.
    if (head.method == "POST" && std::string_view(head.path).substr(6) == http::kChunkBatchPath) {
      return {http::kMaxBatchBody, std::nullopt};
    }
    http::Response r = ErrorResponse(
        Status::InvalidArgument(head.method + " with a body is not allowed on " + head.path), 405);
    r.SetHeader("Allow", "GET, HEAD");
    return {0, std::move(r)};
  }
  Gate g = Pass(head);
  if (g.refusal) return {0, std::move(g.refusal)};
  return {g.route->body_limit, std::nullopt};
}

void SiteApi::Handle(http::Request& req, http::Response* resp) {
  try {
    if (req.path == "/healthz") {
      auto ok = ctx_->db->QueryInt("SELECT 1");
      *resp = ok.ok() ? http::Response::Text(200, "ok\n") : ErrorResponse(ok.status(), 503);
      resp->SetHeader("Cache-Control", "no-cache");
      return;
    }
    if (req.path == "/metrics") {
      *resp = http::Response::Text(200, ctx_->metrics.Render());
      resp->SetHeader("Content-Type", "text/plain; version=0.0.4");
      return;
    }
    if (req.path.rfind("/repo/", 0) == 0) {
      // Public like any mirror: every byte is verified by TUF on the client.
      std::string_view rel = std::string_view(req.path).substr(6);
      if (rel == http::kChunkBatchPath) {
        ctx_->repo_tree->ServeChunkBatch(req, resp);
      } else {
        ctx_->repo_tree->Serve(req, rel, resp);
      }
      return;
    }
    if (console::IsConsolePath(req.path)) {
      // Public like the library: the files hold no data; the API they call checks roles.
      console::Serve(req, resp);
      return;
    }
    Gate g = Pass(req);
    if (g.refusal) {
      *resp = std::move(*g.refusal);
      return;
    }
    ApiCall call{*ctx_, req, *g.who, std::move(g.params), resp};
    auto result = g.route->fn(call);
    if (call.handled && result.ok()) return;
    if (!result.ok()) {
      *resp = ErrorResponse(result.status());
      if (result.status().IsIOError() || result.status().IsCorruption()) {
        core::Log(
            core::LogLevel::kWarn, "site.request_failed",
            {{"method", req.method}, {"path", req.path}, {"error", result.status().ToString()}});
      }
      return;
    }
    *resp = http::Response::Json(call.status, Dump(*result) + "\n");
    resp->SetHeader("Cache-Control", "no-store");
    // A change made through the API (a report, a message, a token): open consoles
    // look again.
    if (req.method != "GET" && req.method != "HEAD" && !call.quiet) ctx_->Activity();
  } catch (const std::exception& e) {
    // Nothing may escape into the server; an exception here is a bug, reported as one.
    core::Log(core::LogLevel::kError, "site.handler_exception",
              {{"path", req.path}, {"error", e.what()}});
    *resp = ErrorResponse(Status::IOError(std::string("internal error: ") + e.what()), 500);
  }
}

}  // namespace depot::site
