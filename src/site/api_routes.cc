#include "site/api_routes.h"

#include "core/messages.h"
#include "site/agent_api.h"
#include "site/auth.h"
#include "site/children.h"
#include "site/client_admin.h"
#include "site/collections.h"
#include "site/deployments.h"
#include "site/distribution.h"
#include "site/dp_reports.h"
#include "site/link_schedule.h"
#include "site/messages.h"
#include "site/overview.h"
#include "site/package_programs.h"
#include "site/packages.h"
#include "site/upward.h"

namespace depot::site {

using core::Status;

core::Result<Json> ApiCall::Body() { return ParseJsonBody(req.body); }

Status ApiCall::NoFields(const std::string& what) {
  if (req.body.empty()) return Status::Ok();
  DEPOT_ASSIGN_OR_RETURN(Json body, Body());
  ObjectReader r(body, what);
  return r.Finish();
}

namespace {

core::Result<std::int64_t> IdParam(const std::string& s) {
  if (s.empty()) return Status::InvalidArgument("empty id");
  std::optional<std::int64_t> v = ParseDecimal(s, 0, INT64_MAX);
  if (!v) return Status::InvalidArgument("`" + s.substr(0, 40) + "` is not an id");
  return *v;
}

// POST /api/v1/tokens: a new admin, operator, read-only or enroll token.
core::Result<Json> CreateTokenRoute(ApiCall& c) {
  DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
  ObjectReader r(body, "new token");
  std::string role_name = r.String("role", true, 16);
  std::string name = r.String("name", false, 128, "");
  auto uses = r.OptInt("uses", 1, 1'000'000'000);
  std::string expires = r.String("expires", false, 40);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  Role role;
  if (!ParseRole(role_name, &role) || role == Role::kDp || role == Role::kAgent ||
      role == Role::kChild) {
    return Status::InvalidArgument(
        "role must be admin, operator, read-only or enroll (DP, child-site and agent credentials "
        "are issued by `depot dp add`, `depot child add` and at enrollment)");
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
    if (expires_ms <= c.ctx.NowMs()) {
      return Status::InvalidArgument("expires `" + expires +
                                     "` is not in the future: a token made already expired "
                                     "would grant nothing; give a later time or a duration");
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
}

}  // namespace

void AddTokenRoutes(const AddRouteFn& add) {
  add("POST", "/api/v1/tokens", Role::kAdmin, kSmallBody, CreateTokenRoute);
  add("GET", "/api/v1/tokens", Role::kAdmin, 0, [](ApiCall& c) -> core::Result<Json> {
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
  add("DELETE", "/api/v1/tokens/{}", Role::kAdmin, 0, [](ApiCall& c) -> core::Result<Json> {
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
}

void AddPackageRoutes(const AddRouteFn& add, std::uint64_t upload) {
  add("POST", "/api/v1/chunks/missing", Role::kOperator, 32 << 20,
      [](ApiCall& c) -> core::Result<Json> {
        c.quiet = true;
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return ChunksMissing(c.ctx, body);
      });
  add("POST", "/api/v1/chunks", Role::kOperator, upload, [](ApiCall& c) -> core::Result<Json> {
    c.quiet = true;
    auto r = ReceiveChunks(c.ctx, c.req.body);
    // The CLI names the package it uploads for (?package=): the message names it too.
    if (!r.ok()) PostUploadRejected(c.ctx, c.req.QueryParam("package").value_or(""), r.status());
    return r;
  });
  add("POST", "/api/v1/chunks/commit", Role::kOperator, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        // The client has sent its last chunks: commit them while it sends the manifest.
        c.quiet = true;
        DEPOT_RETURN_IF_ERROR(c.NoFields("chunk commit"));
        c.ctx.intake->CommitSoon();
        c.status = 202;
        return Json{{"committing", true}};
      });
  add("POST", "/api/v1/packages/{}/versions", Role::kOperator, 256ull << 20,
      [](ApiCall& c) -> core::Result<Json> {
        bool create = c.req.QueryParam("create").value_or("0") == "1";
        bool force = c.req.QueryParam("force").value_or("0") == "1";
        auto r = CreateVersion(c.ctx, c.params[0], create, c.req.body, force);
        if (r.ok()) c.status = 201;
        if (!r.ok()) PostUploadRejected(c.ctx, c.params[0], r.status());
        return r;
      });
  add("GET", "/api/v1/packages", Role::kReadOnly, 0,
      [](ApiCall& c) { return ListPackages(c.ctx); });
  add("GET", "/api/v1/packages/{}", Role::kReadOnly, 0,
      [](ApiCall& c) { return ShowPackage(c.ctx, c.params[0]); });
  add("GET", "/api/v1/packages/{}/programs", Role::kReadOnly, 0,
      [](ApiCall& c) { return LatestPrograms(c.ctx, c.params[0]); });
  add("DELETE", "/api/v1/packages/{}", Role::kOperator, 0,
      [](ApiCall& c) { return DeletePackage(c.ctx, c.params[0]); });
  add("GET", "/api/v1/settings", Role::kReadOnly, 0, [](ApiCall& c) -> core::Result<Json> {
    const auto& ch = c.ctx.repo->settings().chunker;
    return Json{{"site", c.ctx.config.code},
                {"chunker", {{"min", ch.min_size}, {"avg", ch.avg_size}, {"max", ch.max_size}}},
                {"compression_level", c.ctx.repo->settings().compression_level},
                {"max_upload_body", c.ctx.config.max_upload_body}};
  });
}

void AddDpAdminRoutes(const AddRouteFn& add) {
  add("POST", "/api/v1/dps", Role::kAdmin, kSmallBody, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    auto r = AddDp(c.ctx, body);
    if (r.ok()) c.status = 201;
    return r;
  });
  add("GET", "/api/v1/dps", Role::kReadOnly, 0, [](ApiCall& c) { return ListDps(c.ctx); });
  add("GET", "/api/v1/dps/{}", Role::kReadOnly, 0,
      [](ApiCall& c) { return ShowDp(c.ctx, c.params[0]); });
  add("DELETE", "/api/v1/dps/{}", Role::kAdmin, 0,
      [](ApiCall& c) { return RemoveDp(c.ctx, c.params[0]); });
  add("PATCH", "/api/v1/dps/{}", Role::kAdmin, kSmallBody, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    return ChangeDp(c.ctx, c.params[0], body);
  });
  add("POST", "/api/v1/distributions", Role::kOperator, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return Distribute(c.ctx, body);
      });
}

void AddClientRoutes(const AddRouteFn& add) {
  add("GET", "/api/v1/clients", Role::kReadOnly, 0, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(auto limit, IntQueryParam(c.req, "limit", 1, 1'000'000));
    const std::string q = c.req.QueryParam("q").value_or("");
    if (q.size() > 256)
      return Status::InvalidArgument("q (the client search) is longer than 256 characters");
    return ListClients(c.ctx, q, limit.value_or(0));
  });
  add("GET", "/api/v1/clients/{}", Role::kReadOnly, 0,
      [](ApiCall& c) { return ShowClient(c.ctx, c.params[0]); });
  add("POST", "/api/v1/collections", Role::kOperator, 16 << 20,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        auto r = CreateCollection(c.ctx, body);
        if (r.ok()) c.status = 201;
        return r;
      });
  add("GET", "/api/v1/collections", Role::kReadOnly, 0,
      [](ApiCall& c) { return ListCollections(c.ctx); });
  add("GET", "/api/v1/collections/{}", Role::kReadOnly, 0,
      [](ApiCall& c) { return ShowCollection(c.ctx, c.params[0]); });
  add("DELETE", "/api/v1/collections/{}", Role::kOperator, 0,
      [](ApiCall& c) { return DeleteCollection(c.ctx, c.params[0]); });
  add("PATCH", "/api/v1/collections/{}", Role::kOperator, 16 << 20,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return ChangeCollection(c.ctx, c.params[0], body);
      });
  add("POST", "/api/v1/deployments", Role::kOperator, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        auto r = CreateDeployment(c.ctx, body);
        if (r.ok()) c.status = 201;
        return r;
      });
  add("GET", "/api/v1/deployments", Role::kReadOnly, 0,
      [](ApiCall& c) { return ListDeployments(c.ctx); });
  add("GET", "/api/v1/deployments/{}", Role::kReadOnly, 0, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id, IdParam(c.params[0]));
    return ShowDeployment(c.ctx, id, c.req.QueryParam("attributes").value_or("") == "1");
  });
  add("POST", "/api/v1/deployments/{}/cancel", Role::kOperator, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(std::int64_t id, IdParam(c.params[0]));
        DEPOT_RETURN_IF_ERROR(c.NoFields("cancel"));
        return CancelDeployment(c.ctx, id);
      });
}

void AddStatusRoutes(const AddRouteFn& add) {
  add("GET", "/api/v1/messages", Role::kReadOnly, 0,
      [](ApiCall& c) { return QueryMessages(c.ctx, c.req); });
  add("GET", "/api/v1/status", Role::kReadOnly, 0,
      [](ApiCall& c) { return StatusOverview(c.ctx); });
}

void AddDpRoutes(const AddRouteFn& add) {
  add("GET", "/api/v1/dp/assignment", Role::kDp, 0, [](ApiCall& c) -> core::Result<Json> {
    HandleAssignment(c.ctx, c.who.subject_id, c.req, c.resp);
    c.handled = true;
    return Json();
  });
  add("GET", "/api/v1/dp/trust", Role::kDp, 0, [](ApiCall& c) -> core::Result<Json> {
    // The root a DP pins for verifying what it copies (the exact bytes, as a string).
    std::lock_guard<std::mutex> lock(c.ctx.root_mu);
    return Json{{"trusted_root", c.ctx.trusted_root}, {"site", c.ctx.config.code}};
  });
  add("POST", "/api/v1/dp/report", Role::kDp, 16 << 20, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    return DpReport(c.ctx, c.who.subject_id, body);
  });
  add("POST", "/api/v1/dp/messages", Role::kDp, 4 << 20, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    std::string name = DpName(c.ctx, c.who.subject_id);
    if (name.empty()) return Status::PermissionDenied("this DP was removed");
    return IngestMessages(c.ctx, "dp:" + name, "dp", name, "", body);
  });
}

void AddAgentRoutes(const AddRouteFn& add) {
  add("POST", "/api/v1/agent/enroll", Role::kEnroll, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        auto r = Enroll(c.ctx, c.who, c.req, body);
        if (r.ok()) c.status = 201;
        return r;
      });
  add("GET", "/api/v1/agent/policy", Role::kAgent, 0, [](ApiCall& c) -> core::Result<Json> {
    HandlePolicy(c.ctx, c.who.subject_id, c.req, c.resp);
    c.handled = true;
    return Json();
  });
  add("POST", "/api/v1/agent/attributes", Role::kAgent, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return UpdateAttributes(c.ctx, c.who.subject_id, c.req, body);
      });
  add("POST", "/api/v1/agent/status", Role::kAgent, 4 << 20, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    return AgentStatus(c.ctx, c.who.subject_id, body);
  });
}

}  // namespace depot::site

namespace depot::site {

void AddHierarchyRoutes(const AddRouteFn& add) {
  add("POST", "/api/v1/children", Role::kAdmin, kSmallBody, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    auto r = AddChild(c.ctx, body);
    if (r.ok()) c.status = 201;
    return r;
  });
  add("GET", "/api/v1/children", Role::kReadOnly, 0,
      [](ApiCall& c) { return ListChildren(c.ctx); });
  add("GET", "/api/v1/children/{}", Role::kReadOnly, 0,
      [](ApiCall& c) { return ShowChild(c.ctx, c.params[0]); });
  add("PATCH", "/api/v1/children/{}", Role::kAdmin, kSmallBody,
      [](ApiCall& c) -> core::Result<Json> {
        DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
        return ChangeChild(c.ctx, c.params[0], body);
      });
  add("DELETE", "/api/v1/children/{}", Role::kAdmin, 0,
      [](ApiCall& c) { return RemoveChild(c.ctx, c.params[0]); });
  // The child API: a child sees only its own feed.
  add("GET", "/api/v1/child/trust", Role::kChild, 0, [](ApiCall& c) { return ChildTrust(c.ctx); });
  add("GET", "/api/v1/child/feed", Role::kChild, 0, [](ApiCall& c) -> core::Result<Json> {
    HandleChildFeed(c.ctx, c.who.subject_id, c.req, c.resp);
    c.handled = true;
    return Json();
  });
  add("POST", "/api/v1/child/report", Role::kChild, 16 << 20, [](ApiCall& c) -> core::Result<Json> {
    DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
    return ApplyChildReport(c.ctx, c.who.subject_id, body);
  });
}

}  // namespace depot::site
