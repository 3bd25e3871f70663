#include "site/api.h"

#include <functional>

#include "core/log.h"
#include "core/messages.h"
#include "site/agent_api.h"
#include "site/auth.h"
#include "site/client_admin.h"
#include "site/collections.h"
#include "site/deployments.h"
#include "site/distribution.h"
#include "site/dp_reports.h"
#include "site/json.h"
#include "site/messages.h"
#include "site/overview.h"
#include "site/package_programs.h"
#include "site/packages.h"

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

struct Call {
  SiteContext& ctx;
  http::Request& req;
  Principal who;
  std::vector<std::string> params;
  http::Response* resp;
  bool handled = false;  // the handler wrote *resp itself
  int status = 200;

  core::Result<Json> Body() { return ParseJsonBody(req.body); }
  // For requests that take no fields: an empty body or `{}`; anything else is a clear
  // error naming the request (`what`), not silently ignored.
  Status NoFields(const std::string& what) {
    if (req.body.empty()) return Status::Ok();
    DEPOT_ASSIGN_OR_RETURN(Json body, Body());
    ObjectReader r(body, what);
    return r.Finish();
  }
};

using Fn = std::function<core::Result<Json>(Call&)>;

constexpr std::uint64_t kSmallBody = 1 << 20;
constexpr std::uint64_t kUnknownRouteBody = 64 << 10;

core::Result<std::int64_t> IdParam(const std::string& s) {
  std::int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9' || v > INT64_MAX / 10)
      return Status::InvalidArgument("`" + s.substr(0, 40) + "` is not an id");
    v = v * 10 + (c - '0');
  }
  if (s.empty()) return Status::InvalidArgument("empty id");
  return v;
}

}  // namespace

struct SiteApi::Route {
  std::string method;
  std::vector<std::string> segments;  // "{}" matches one segment
  Role need;
  std::uint64_t body_limit;
  Fn fn;
};

SiteApi::~SiteApi() = default;

SiteApi::SiteApi(SiteContext* ctx) : ctx_(ctx) {
  auto add = [&](std::string method, std::string pattern, Role need, std::uint64_t limit, Fn fn) {
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

  // Tokens (admin).
  add("POST", "/api/v1/tokens", Role::kAdmin, kSmallBody, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    ObjectReader r(body, "new token");
    std::string role_name = r.String("role", true, 16);
    std::string name = r.String("name", false, 128, "");
    auto uses = r.OptInt("uses", 1, 1'000'000'000);
    std::string expires = r.String("expires", false, 40);
    DEPOT_RETURN_IF_ERROR(r.Finish());
    Role role;
    if (!ParseRole(role_name, &role) || role == Role::kDp || role == Role::kAgent) {
      return Status::InvalidArgument(
          "role must be admin, operator, read-only or enroll (DP and agent credentials are issued "
          "by `depot dp add` and at enrollment)");
    }
    if (uses && role != Role::kEnroll)
      return Status::InvalidArgument("only enroll tokens have a use count");
    std::int64_t expires_ms = 0;
    if (!expires.empty()) {
      auto t = core::ParseUtc(expires);
      if (t.ok()) {
        expires_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
      } else {
        auto d = core::ParseDuration(expires);
        if (!d.ok())
          return Status::InvalidArgument(
              "expires must be a UTC time like 2026-12-01T00:00:00Z or a duration like 7d");
        expires_ms =
            c.ctx.NowMs() + std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
      }
    }
    if (name.empty()) name = std::string(RoleName(role)) + " token";
    NewToken t;
    Status s = c.ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
      DEPOT_ASSIGN_OR_RETURN(t, CreateToken(c.ctx, tx, role, name, 0, expires_ms, uses));
      return PostMessage(c.ctx, tx, core::msg::kTokenCreated, {},
                         {{"token", name}, {"kind", std::string(RoleName(role))}});
    });
    if (!s.ok()) return s;
    c.status = 201;
    Json out = {
        {"id", t.id}, {"token", t.secret}, {"role", std::string(RoleName(role))}, {"name", name}};
    if (expires_ms) out["expires"] = FormatMs(expires_ms);
    if (uses) out["uses"] = *uses;
    return out;
  });
  add("GET", "/api/v1/tokens", Role::kAdmin, 0, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows rows,
        c.ctx.db->Query(
            "SELECT id, kind, name, created_at, expires_at, uses_left, uses, last_used_at, "
            "revoked_at FROM tokens ORDER BY id"));
    Json out = Json::array();
    for (const auto& r : rows) {
      Json t = {{"id", r.Int(0)},    {"role", r.Text(1)},
                {"name", r.Text(2)}, {"created", FormatMs(r.Int(3))},
                {"uses", r.Int(6)},  {"state", r.IsNull(8) ? "active" : "revoked"}};
      if (!r.IsNull(4)) {
        t["expires"] = FormatMs(r.Int(4));
        if (r.IsNull(8) && c.ctx.NowMs() >= r.Int(4)) t["state"] = "expired";
      }
      if (!r.IsNull(5)) t["uses_left"] = r.Int(5);
      if (!r.IsNull(7)) t["last_used"] = FormatMs(r.Int(7));
      out.push_back(std::move(t));
    }
    return Json{{"tokens", out}};
  });
  add("DELETE", "/api/v1/tokens/{}", Role::kAdmin, 0, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id, IdParam(c.params[0]));
    if (id == c.who.token_id)
      return Status::InvalidArgument("refusing to revoke the token making this request");
    Status s = c.ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
      DEPOT_RETURN_IF_ERROR(RevokeToken(c.ctx, tx, id));
      DEPOT_ASSIGN_OR_RETURN(auto row, tx.QueryRow("SELECT name FROM tokens WHERE id = ?", {id}));
      return PostMessage(c.ctx, tx, core::msg::kTokenRevoked, {}, {{"token", row.Text(0)}});
    });
    if (!s.ok()) return s;
    ForgetCachedTokens(c.ctx);
    return Json{{"id", id}, {"revoked", true}};
  });

  // Packages (operator to change, read-only to look).
  add("POST", "/api/v1/chunks/missing", Role::kOperator, 32 << 20,
      [](Call& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return ChunksMissing(c.ctx, body);
      });
  add("POST", "/api/v1/chunks", Role::kOperator, upload, [](Call& c) -> core::Result<Json> {
    auto r = ReceiveChunks(c.ctx, c.req.body);
    // The CLI names the package it uploads for (?package=): the message names it too.
    if (!r.ok()) PostUploadRejected(c.ctx, c.req.QueryParam("package").value_or(""), r.status());
    return r;
  });
  add("POST", "/api/v1/chunks/commit", Role::kOperator, kSmallBody,
      [](Call& c) -> core::Result<Json> {
        // The client has sent its last chunks: commit them while it sends the manifest.
        DEPOT_RETURN_IF_ERROR(c.NoFields("chunk commit"));
        c.ctx.intake->CommitSoon();
        c.status = 202;
        return Json{{"committing", true}};
      });
  add("POST", "/api/v1/packages/{}/versions", Role::kOperator, 256ull << 20,
      [](Call& c) -> core::Result<Json> {
        bool create = c.req.QueryParam("create").value_or("0") == "1";
        bool force = c.req.QueryParam("force").value_or("0") == "1";
        auto r = CreateVersion(c.ctx, c.params[0], create, c.req.body, force);
        if (r.ok()) c.status = 201;
        if (!r.ok()) PostUploadRejected(c.ctx, c.params[0], r.status());
        return r;
      });
  add("GET", "/api/v1/packages", Role::kReadOnly, 0, [](Call& c) { return ListPackages(c.ctx); });
  add("GET", "/api/v1/packages/{}", Role::kReadOnly, 0,
      [](Call& c) { return ShowPackage(c.ctx, c.params[0]); });
  add("GET", "/api/v1/packages/{}/programs", Role::kReadOnly, 0,
      [](Call& c) { return LatestPrograms(c.ctx, c.params[0]); });
  add("DELETE", "/api/v1/packages/{}", Role::kOperator, 0,
      [](Call& c) { return DeletePackage(c.ctx, c.params[0]); });
  add("GET", "/api/v1/settings", Role::kReadOnly, 0, [](Call& c) -> core::Result<Json> {
    const auto& ch = c.ctx.repo->settings().chunker;
    return Json{{"site", c.ctx.config.code},
                {"chunker", {{"min", ch.min_size}, {"avg", ch.avg_size}, {"max", ch.max_size}}},
                {"compression_level", c.ctx.repo->settings().compression_level},
                {"max_upload_body", c.ctx.config.max_upload_body}};
  });

  // Distribution points (admin: they carry credentials) and distributions.
  add("POST", "/api/v1/dps", Role::kAdmin, kSmallBody, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    auto r = AddDp(c.ctx, body);
    if (r.ok()) c.status = 201;
    return r;
  });
  add("GET", "/api/v1/dps", Role::kReadOnly, 0, [](Call& c) { return ListDps(c.ctx); });
  add("GET", "/api/v1/dps/{}", Role::kReadOnly, 0,
      [](Call& c) { return ShowDp(c.ctx, c.params[0]); });
  add("DELETE", "/api/v1/dps/{}", Role::kAdmin, 0,
      [](Call& c) { return RemoveDp(c.ctx, c.params[0]); });
  add("POST", "/api/v1/distributions", Role::kOperator, kSmallBody,
      [](Call& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return Distribute(c.ctx, body);
      });

  // Clients, collections, deployments.
  add("GET", "/api/v1/clients", Role::kReadOnly, 0, [](Call& c) { return ListClients(c.ctx); });
  add("GET", "/api/v1/clients/{}", Role::kReadOnly, 0,
      [](Call& c) { return ShowClient(c.ctx, c.params[0]); });
  add("POST", "/api/v1/collections", Role::kOperator, 16 << 20, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    auto r = CreateCollection(c.ctx, body);
    if (r.ok()) c.status = 201;
    return r;
  });
  add("GET", "/api/v1/collections", Role::kReadOnly, 0,
      [](Call& c) { return ListCollections(c.ctx); });
  add("GET", "/api/v1/collections/{}", Role::kReadOnly, 0,
      [](Call& c) { return ShowCollection(c.ctx, c.params[0]); });
  add("DELETE", "/api/v1/collections/{}", Role::kOperator, 0,
      [](Call& c) { return DeleteCollection(c.ctx, c.params[0]); });
  add("PATCH", "/api/v1/collections/{}", Role::kOperator, 16 << 20,
      [](Call& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return ChangeCollection(c.ctx, c.params[0], body);
      });
  add("POST", "/api/v1/deployments", Role::kOperator, kSmallBody,
      [](Call& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        auto r = CreateDeployment(c.ctx, body);
        if (r.ok()) c.status = 201;
        return r;
      });
  add("GET", "/api/v1/deployments", Role::kReadOnly, 0,
      [](Call& c) { return ListDeployments(c.ctx); });
  add("GET", "/api/v1/deployments/{}", Role::kReadOnly, 0, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id, IdParam(c.params[0]));
    return ShowDeployment(c.ctx, id);
  });
  add("POST", "/api/v1/deployments/{}/cancel", Role::kOperator, kSmallBody,
      [](Call& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(std::int64_t id, IdParam(c.params[0]));
        DEPOT_RETURN_IF_ERROR(c.NoFields("cancel"));
        return CancelDeployment(c.ctx, id);
      });

  // Status.
  add("GET", "/api/v1/messages", Role::kReadOnly, 0,
      [](Call& c) { return QueryMessages(c.ctx, c.req); });
  add("GET", "/api/v1/status", Role::kReadOnly, 0, [](Call& c) { return StatusOverview(c.ctx); });

  // DP API: a DP sees only its own assignment.
  add("GET", "/api/v1/dp/assignment", Role::kDp, 0, [](Call& c) -> core::Result<Json> {
    HandleAssignment(c.ctx, c.who.subject_id, c.req, c.resp);
    c.handled = true;
    return Json();
  });
  add("GET", "/api/v1/dp/trust", Role::kDp, 0, [](Call& c) -> core::Result<Json> {
    // The root a DP pins for verifying what it copies (the exact bytes, as a string).
    std::lock_guard<std::mutex> lock(c.ctx.root_mu);
    return Json{{"trusted_root", c.ctx.trusted_root}, {"site", c.ctx.config.code}};
  });
  add("POST", "/api/v1/dp/report", Role::kDp, 16 << 20, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    return DpReport(c.ctx, c.who.subject_id, body);
  });
  add("POST", "/api/v1/dp/messages", Role::kDp, 4 << 20, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    std::string name = DpName(c.ctx, c.who.subject_id);
    if (name.empty()) return Status::PermissionDenied("this DP was removed");
    return IngestMessages(c.ctx, "dp:" + name, "dp", name, "", body);
  });

  // Agent API: an agent sees only its own policy and status.
  add("POST", "/api/v1/agent/enroll", Role::kEnroll, kSmallBody, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    auto r = Enroll(c.ctx, c.who, c.req, body);
    if (r.ok()) c.status = 201;
    return r;
  });
  add("GET", "/api/v1/agent/policy", Role::kAgent, 0, [](Call& c) -> core::Result<Json> {
    HandlePolicy(c.ctx, c.who.subject_id, c.req, c.resp);
    c.handled = true;
    return Json();
  });
  add("POST", "/api/v1/agent/attributes", Role::kAgent, kSmallBody,
      [](Call& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return UpdateAttributes(c.ctx, c.who.subject_id, c.req, body);
      });
  add("POST", "/api/v1/agent/status", Role::kAgent, 4 << 20, [](Call& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    return AgentStatus(c.ctx, c.who.subject_id, body);
  });
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
    Call call{*ctx_, req, *who, std::move(params), resp};
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
