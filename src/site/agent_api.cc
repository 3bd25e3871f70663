#include "site/agent_api.h"

#include <algorithm>
#include <set>

#include "core/log.h"
#include "core/messages.h"
#include "core/net.h"
#include "core/random.h"
#include "core/sha256.h"
#include "site/api.h"
#include "site/auth.h"
#include "site/distribution.h"
#include "site/membership.h"
#include "site/messages.h"
#include "site/upward.h"
#include "store/manifest.h"

namespace depot::site {

using core::Status;

namespace {

void SeenClient(SiteContext& ctx, std::int64_t client_id) {
  std::lock_guard<std::mutex> lock(ctx.seen_mu);
  ctx.client_seen[client_id] = ctx.NowMs();
}

}  // namespace

core::Result<Json> Enroll(SiteContext& ctx, const Principal& who, const http::Request& req,
                          const Json& body) {
  ObjectReader r(body, "enrollment");
  std::string name = r.String("name", true, 255);
  const Json* raw_attrs = r.Raw("attributes");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (name.empty()) return Status::InvalidArgument("enrollment: name must not be empty");
  Attributes attrs;
  if (raw_attrs != nullptr) {
    DEPOT_ASSIGN_OR_RETURN(attrs, ParseAttributes(*raw_attrs));
  }
  attrs["address"] = {req.remote_address};
  attrs["name"] = {name};
  std::string uid = core::RandomHex(16);
  NewToken token;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_RETURN_IF_ERROR(ConsumeEnrollToken(ctx, tx, who.token_id));
    std::int64_t now = ctx.NowMs();
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t id,
        tx.QueryInt(
            "INSERT INTO clients (uid, name, attributes, address, enrolled_at, last_seen_at, "
            "attributes_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            {uid, name, Dump(AttributesJson(attrs)), req.remote_address, now, now, now}));
    DEPOT_ASSIGN_OR_RETURN(
        token, CreateToken(ctx, tx, Role::kAgent, "client " + name, id, 0, std::nullopt));
    DEPOT_RETURN_IF_ERROR(EvaluateClient(tx, id, attrs));
    DEPOT_RETURN_IF_ERROR(MarkUp(ctx, tx, "client", uid));
    return PostMessage(ctx, tx, core::msg::kClientEnrolled, {{}, {}, {}, uid, {}},
                       {{"client", uid}, {"name", name}, {"address", req.remote_address}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  std::string root;
  {
    std::lock_guard<std::mutex> lock(ctx.root_mu);
    root = ctx.trusted_root;
  }
  return Json{{"client", uid},
              {"token", token.secret},
              {"trusted_root", root},
              {"site", {{"code", ctx.config.code}, {"url", ctx.public_url}}},
              {"poll_interval_s",
               std::chrono::duration_cast<std::chrono::seconds>(ctx.config.poll_interval).count()}};
}

core::Result<Json> UpdateAttributes(SiteContext& ctx, std::int64_t client_id,
                                    const http::Request& req, const Json& body) {
  ObjectReader r(body, "attributes update");
  const Json* raw = r.Raw("attributes");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (raw == nullptr)
    return Status::InvalidArgument("attributes update: field `attributes` is required");
  DEPOT_ASSIGN_OR_RETURN(Attributes attrs, ParseAttributes(*raw));
  bool changed = false;
  std::string uid;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(
        auto row,
        tx.QueryRow("SELECT uid, name, attributes FROM clients WHERE id = ?", {client_id}));
    uid = row.Text(0);
    attrs["address"] = {req.remote_address};
    attrs["name"] = {row.Text(1)};
    std::string text = Dump(AttributesJson(attrs));
    changed = text != row.Text(2);
    if (!changed) return Status::Ok();
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE clients SET attributes = ?, address = ?, attributes_at = ? WHERE id = ?",
                {text, req.remote_address, ctx.NowMs(), client_id})
            .status());
    DEPOT_RETURN_IF_ERROR(EvaluateClient(tx, client_id, attrs));
    DEPOT_RETURN_IF_ERROR(MarkUp(ctx, tx, "client", uid));
    return PostMessage(ctx, tx, core::msg::kClientAttributesChanged, {{}, {}, {}, uid, {}},
                       {{"client", uid}});
  });
  if (!s.ok()) return s;
  if (changed) ctx.Changed();
  return Json{{"client", uid}, {"changed", changed}};
}

namespace {

// The client's addresses for choosing boundary DPs: the one the site saw it connect
// from, and (with `trust_reported`) the ones it reported about itself.
std::vector<core::IpAddress> ClientAddresses(const Attributes& attrs, bool trust_reported) {
  std::vector<core::IpAddress> addresses;
  for (const char* key : {"address", "ips"}) {
    if (std::string_view(key) == "ips" && !trust_reported) continue;
    auto it = attrs.find(key);
    if (it == attrs.end()) continue;
    for (const auto& v : it->second) {
      auto ip = core::ParseIp(v);
      if (ip.ok()) addresses.push_back(*ip);
    }
  }
  return addresses;
}

// Where a client fetches a version from: ready DPs, those whose boundary holds one of
// the client's addresses first and unreachable ones last, then the site itself.
core::Result<Json> PolicySources(SiteContext& ctx, std::int64_t version_id,
                                 const catalog::Rows& bounds,
                                 const std::vector<core::IpAddress>& addresses) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows dps,
      ctx.db->Query(
          "SELECT dp.id, dp.name, dp.url, dp.probe_attempts FROM dp_records r JOIN dps dp "
          "ON dp.id = r.dp_id WHERE r.version_id = ? AND r.state = 'ready' ORDER BY dp.name",
          {version_id}));
  struct Source {
    int rank;
    std::string name, url;
    bool boundary;
  };
  std::vector<Source> sources;
  for (const auto& dp : dps) {
    bool in_boundary = false;
    for (const auto& b : bounds) {
      if (b.Int(0) != dp.Int(0)) continue;
      auto cidr = core::ParseCidr(b.Text(1));
      if (!cidr.ok()) continue;
      for (const auto& ip : addresses) in_boundary = in_boundary || core::CidrContains(*cidr, ip);
    }
    // Boundary DPs first, then the others; a DP the site cannot reach goes last.
    int rank = (in_boundary ? 0 : 1) + (dp.Int(3) > 0 ? 2 : 0);
    sources.push_back({rank, dp.Text(1), dp.Text(2) + "/repo", in_boundary});
  }
  std::stable_sort(sources.begin(), sources.end(),
                   [](const Source& a, const Source& b) { return a.rank < b.rank; });
  Json src = Json::array();
  for (const auto& s : sources) {
    src.push_back({{"kind", "dp"}, {"name", s.name}, {"url", s.url}, {"in_boundary", s.boundary}});
  }
  src.push_back({{"kind", "site"},
                 {"name", ctx.config.code},
                 {"url", ctx.public_url + "/repo"},
                 {"in_boundary", false}});
  return src;
}

}  // namespace

core::Result<Json> BuildPolicy(SiteContext& ctx, std::int64_t client_id) {
  DEPOT_ASSIGN_OR_RETURN(
      auto client,
      ctx.db->QueryRow("SELECT uid, attributes FROM clients WHERE id = ?", {client_id}));
  Attributes attrs = LoadAttributes(client.Text(1));
  std::vector<core::IpAddress> addresses = ClientAddresses(attrs, ctx.config.trust_client_ips);
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows deps,
      ctx.db->Query(
          "SELECT d.id, p.name, p.uid, d.program, d.kind, d.start_at, d.deadline_at, d.windows, "
          "COALESCE(d.pinned_version, (SELECT MAX(v.version) FROM versions v WHERE v.package_id = "
          "p.id "
          "AND v.state = 'active')), p.id FROM deployments d JOIN packages p ON p.id = "
          "d.package_id "
          "JOIN collection_members m ON m.collection_id = d.collection_id AND m.client_id = ? "
          "WHERE "
          "d.cancelled_at IS NULL AND p.deleted_at IS NULL ORDER BY d.id",
          {client_id}));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows bounds,
                         ctx.db->Query("SELECT dp_id, cidr FROM dp_boundaries"));
  Json deployments = Json::array();
  for (const auto& d : deps) {
    if (d.IsNull(8)) continue;  // no active version (yet)
    std::int64_t version = d.Int(8);
    auto v = ctx.db->QueryRow(
        "SELECT id, manifest_id, manifest_bytes, bytes FROM versions WHERE package_id = ? AND "
        "version = ? AND state = 'active'",
        {d.Int(9), version});
    if (!v.ok()) continue;  // a pinned version that was retired
    DEPOT_ASSIGN_OR_RETURN(Json src, PolicySources(ctx, v->Int(0), bounds, addresses));
    Json windows = Json::parse(d.Text(7), nullptr, false);
    Json item = {{"id", d.Int(0)},
                 {"package", d.Text(1)},
                 {"package_id", d.Text(2)},
                 {"version", version},
                 {"target", repo::ManifestTargetPath(d.Text(1), version)},
                 {"manifest_id", v->Text(1)},
                 {"manifest_bytes", v->Int(2)},
                 {"bytes", v->Int(3)},
                 {"program", d.Text(3)},
                 {"kind", d.Text(4)},
                 {"start_ms", d.Int(5)},
                 {"start", FormatMs(d.Int(5))},
                 {"windows", windows.is_discarded() ? Json::array() : windows},
                 {"sources", src}};
    if (!d.IsNull(6)) {
      item["deadline_ms"] = d.Int(6);
      item["deadline"] = FormatMs(d.Int(6));
    }
    deployments.push_back(std::move(item));
  }
  return Json{{"client", client.Text(0)},
              {"site", ctx.config.code},
              {"poll_interval_s",
               std::chrono::duration_cast<std::chrono::seconds>(ctx.config.poll_interval).count()},
              {"deployments", deployments}};
}

void HandlePolicy(SiteContext& ctx, std::int64_t client_id, const http::Request& req,
                  http::Response* resp) {
  // Read the topic sequence before the state, so no change can slip in between.
  const std::uint64_t seq = ctx.server != nullptr ? ctx.server->Sequence("assignments") : 0;
  if (req.poll_round == 0) {
    // The agent's request, not a wake-up of it parked here.
    if (ctx.policy_polls) ctx.policy_polls->Inc();
    SeenClient(ctx, client_id);
  }
  std::uint64_t revision = ctx.revision.load();
  CachedPolicy cached;
  bool hit = false;
  {
    std::lock_guard<std::mutex> lock(ctx.policy_mu);
    auto it = ctx.policy_cache.find(client_id);
    if (it != ctx.policy_cache.end() && it->second.revision == revision) {
      cached = it->second;
      hit = true;
    }
  }
  if (!hit) {
    auto policy = BuildPolicy(ctx, client_id);
    if (!policy.ok()) {
      *resp = ErrorResponse(policy.status());
      return;
    }
    cached.revision = revision;
    cached.body = Dump(*policy);
    cached.etag = "\"" + core::Sha256::HashHex(cached.body).substr(0, 32) + "\"";
    std::lock_guard<std::mutex> lock(ctx.policy_mu);
    if (ctx.policy_cache.size() > 1'000'000) ctx.policy_cache.clear();
    ctx.policy_cache[client_id] = cached;
  }
  const std::string* inm = req.GetHeader("if-none-match");
  if (inm != nullptr && *inm == cached.etag) {
    // With ?wait=S (an agent's --long-poll), held until the policy may have changed.
    if (ParkUntilChange(ctx, req, seq, 0, resp)) return;
    if (ctx.policy_not_modified) ctx.policy_not_modified->Inc();
    resp->status = 304;
    resp->SetHeader("ETag", cached.etag);
    return;
  }
  *resp = http::Response::Json(200, std::move(cached.body));
  resp->SetHeader("ETag", cached.etag);
  resp->SetHeader("Cache-Control", "no-cache");
}

namespace {

// One deployment report of an agent status request.
struct Report {
  std::int64_t deployment, seq;
  std::string state, detail;
  std::optional<std::int64_t> version, exit_code;
};

// Reads and checks the deployment reports of an agent status request.
core::Result<std::vector<Report>> ParseReports(const Json& deployments) {
  std::vector<Report> items;
  if (!deployments.is_array() || deployments.size() > 1000) {
    return Status::InvalidArgument(
        "agent status: deployments must be a list of at most 1000 items");
  }
  static const std::set<std::string> kStates = {"waiting",    "downloading", "downloaded",
                                                "installing", "succeeded",   "failed"};
  for (std::size_t i = 0; i < deployments.size(); ++i) {
    ObjectReader ir(deployments[i], "deployment report " + std::to_string(i));
    Report it;
    it.deployment = ir.Int("deployment", true, 1, INT64_MAX);
    it.seq = ir.Int("seq", true, 1, INT64_MAX);
    it.state = ir.String("state", true, 16);
    it.version = ir.OptInt("version", 1, INT64_MAX);
    it.exit_code = ir.OptInt("exit_code", INT32_MIN, INT32_MAX);
    it.detail = ir.String("detail", false, 4096);
    DEPOT_RETURN_IF_ERROR(ir.Finish());
    if (!kStates.count(it.state)) {
      return Status::InvalidArgument(
          "deployment report " + std::to_string(i) +
          ": state must be waiting, downloading, downloaded, installing, succeeded or failed");
    }
    items.push_back(std::move(it));
  }
  return items;
}

struct ReportCounts {
  std::int64_t applied = 0;       // replaced an older report (or were the first)
  std::int64_t stale = 0;         // unknown deployments, or older than the stored report
  std::int64_t not_targeted = 0;  // deployments that never targeted this client
};

// Stores the reports in one transaction. A client reports only on deployments that
// target it (its collection's) or did when it last reported on them: another
// deployment's report is dropped (counted, and answered 200 so that an agent's
// outbox does not retry it forever).
Status StoreReports(SiteContext& ctx, std::int64_t client_id, const std::string& uid,
                    const std::vector<Report>& items, ReportCounts* counts) {
  return ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    *counts = ReportCounts();
    for (const Report& it : items) {
      DEPOT_ASSIGN_OR_RETURN(
          catalog::Rows known,
          tx.Query("SELECT CASE WHEN EXISTS (SELECT 1 FROM collection_members m WHERE "
                   "m.collection_id = d.collection_id AND m.client_id = ?) OR EXISTS (SELECT 1 "
                   "FROM client_deployments c WHERE c.deployment_id = d.id AND c.client_id = ?) "
                   "THEN 1 ELSE 0 END FROM deployments d WHERE d.id = ?",
                   {client_id, client_id, it.deployment}));
      if (known.empty()) {
        ++counts->stale;
        continue;
      }
      if (known[0].Int(0) == 0) {
        ++counts->not_targeted;
        continue;
      }
      // At least once, in any order: only a newer report replaces an older one.
      DEPOT_ASSIGN_OR_RETURN(std::int64_t n,
                             tx.Exec("INSERT INTO client_deployments (client_id, deployment_id, "
                                     "state, version, exit_code, detail, "
                                     "report_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON "
                                     "CONFLICT (client_id, deployment_id) "
                                     "DO UPDATE SET state = excluded.state, version = "
                                     "excluded.version, exit_code = excluded.exit_code, "
                                     "detail = excluded.detail, report_seq = excluded.report_seq, "
                                     "updated_at = excluded.updated_at "
                                     "WHERE client_deployments.report_seq < excluded.report_seq",
                                     {client_id, it.deployment, it.state, it.version, it.exit_code,
                                      it.detail, it.seq, ctx.NowMs()}));
      if (n > 0) {
        ++counts->applied;
        DEPOT_RETURN_IF_ERROR(MarkUp(ctx, tx, "cd", ClientDeploymentKey(uid, it.deployment)));
      } else {
        ++counts->stale;
      }
    }
    return Status::Ok();
  });
}

}  // namespace

core::Result<Json> AgentStatus(SiteContext& ctx, std::int64_t client_id, const Json& body) {
  ObjectReader r(body, "agent status");
  const Json* messages = r.Raw("messages");
  const Json* deployments = r.Raw("deployments");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  DEPOT_ASSIGN_OR_RETURN(auto client,
                         ctx.db->QueryRow("SELECT uid FROM clients WHERE id = ?", {client_id}));
  std::string uid = client.Text(0);
  Json out = Json::object();
  ReportCounts counts;
  // Every part is validated before anything is stored: a refused request changes nothing.
  std::vector<Report> items;
  if (deployments != nullptr) {
    DEPOT_ASSIGN_OR_RETURN(items, ParseReports(*deployments));
  }
  if (messages != nullptr) {
    DEPOT_ASSIGN_OR_RETURN(Json m, IngestMessages(ctx, "client:" + uid, "agent", "", uid,
                                                  Json{{"messages", *messages}}));
    out["messages"] = m;
  }
  if (deployments != nullptr) {
    Status s = StoreReports(ctx, client_id, uid, items, &counts);
    if (!s.ok()) return s;
    if (counts.not_targeted > 0) {
      core::Log(core::LogLevel::kWarn, "site.report_not_targeted",
                {{"client", uid}, {"reports", std::to_string(counts.not_targeted)}});
    }
  }
  out["deployments"] = {
      {"applied", counts.applied}, {"stale", counts.stale}, {"not_targeted", counts.not_targeted}};
  SeenClient(ctx, client_id);
  return out;
}

}  // namespace depot::site
