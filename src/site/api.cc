#include "site/api.h"

#include "core/log.h"
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

namespace {

constexpr std::uint64_t kUnknownRouteBody = 64 << 10;

}  // namespace

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

std::uint64_t SiteApi::BodyLimit(const http::Request& head) {
  std::vector<std::string> params;
  const Route* r = Match(head, &params);
  // No such endpoint: a small body is read so the answer can be the 404 (or 405) that
  // names the path, rather than a 413 about a limit that does not exist.
  return r != nullptr ? r->body_limit : kUnknownRouteBody;
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
    std::vector<std::string> params;
    const Route* route = Match(req, &params);
    if (route == nullptr) {
      if (!params.empty() && params[0] == "\x01method") {
        *resp = ErrorResponse(
            Status::InvalidArgument(req.method + " is not allowed on " + req.path), 405);
      } else {
        *resp = ErrorResponse(Status::NotFound("no such endpoint: " + req.method + " " + req.path +
                                               " (see docs/api.md)"));
      }
      return;
    }
    auto who = Authenticate(*ctx_, req);
    if (!who.ok()) {
      *resp = ErrorResponse(who.status(), 401);
      resp->SetHeader("WWW-Authenticate", "Bearer realm=\"depot\"");
      return;
    }
    if (!RoleAllows(who->role, route->need)) {
      *resp = ErrorResponse(Status::PermissionDenied(
          "a " + std::string(RoleName(who->role)) + " credential may not " + req.method + " " +
          req.path + " (needs " + std::string(RoleName(route->need)) + ")"));
      return;
    }
    ApiCall call{*ctx_, req, *who, std::move(params), resp};
    auto result = route->fn(call);
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
  } catch (const std::exception& e) {
    // Nothing may escape into the server; an exception here is a bug, reported as one.
    core::Log(core::LogLevel::kError, "site.handler_exception",
              {{"path", req.path}, {"error", e.what()}});
    *resp = ErrorResponse(Status::IOError(std::string("internal error: ") + e.what()), 500);
  }
}

}  // namespace depot::site
