#include "site/clients.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "core/log.h"
#include "core/messages.h"
#include "core/net.h"
#include "core/random.h"
#include "core/sha256.h"
#include "site/api.h"
#include "site/auth.h"
#include "site/config.h"
#include "site/distribution.h"
#include "site/messages.h"
#include "site/rules.h"
#include "store/manifest.h"

namespace depot::site {

using core::Status;

namespace {

constexpr std::size_t kMaxAttributes = 64;
constexpr std::size_t kMaxAttributeValues = 64;
constexpr std::size_t kMaxValueLength = 256;

bool ValidAttributeName(std::string_view k) {
  if (k.empty() || k.size() > 64 || !std::isalpha(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

// {"os":"linux","ips":["10.0.0.5"],"tags":{"site":"berlin"}} -> attributes, with
// tags flattened to "tag.site".
core::Result<Attributes> ParseAttributes(const Json& j) {
  if (!j.is_object()) return Status::InvalidArgument("attributes must be a JSON object");
  Attributes out;
  auto add = [&](const std::string& key, const Json& v) -> Status {
    if (!ValidAttributeName(key)) {
      return Status::InvalidArgument("attribute name `" + key.substr(0, 80) +
                                     "` must be 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter");
    }
    std::vector<std::string> values;
    if (v.is_string()) {
      values.push_back(v.get<std::string>());
    } else if (v.is_array() && v.size() <= kMaxAttributeValues) {
      for (const Json& x : v) {
        if (!x.is_string()) return Status::InvalidArgument("attribute " + key + " must hold strings");
        values.push_back(x.get<std::string>());
      }
    } else {
      return Status::InvalidArgument("attribute " + key + " must be a string or a list of strings");
    }
    for (const auto& s : values) {
      if (s.size() > kMaxValueLength) {
        return Status::InvalidArgument("attribute " + key + " has a value longer than 256 bytes");
      }
    }
    out[key] = std::move(values);
    return Status::Ok();
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "tags") {
      if (!it->is_object()) return Status::InvalidArgument("attribute tags must be an object");
      for (auto t = it->begin(); t != it->end(); ++t) DEPOT_RETURN_IF_ERROR(add("tag." + t.key(), *t));
    } else {
      DEPOT_RETURN_IF_ERROR(add(it.key(), *it));
    }
    if (out.size() > kMaxAttributes) return Status::InvalidArgument("more than 64 attributes");
  }
  return out;
}

Json AttributesJson(const Attributes& a) {
  Json j = Json::object();
  for (const auto& [k, v] : a) {
    if (v.size() == 1 && k != "ips") {
      j[k] = v[0];
    } else {
      j[k] = v;
    }
  }
  return j;
}

Attributes LoadAttributes(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  auto a = j.is_discarded() ? core::Result<Attributes>(Status::InvalidArgument("")) : ParseAttributes(j);
  return a.ok() ? *a : Attributes{};
}

// Re-evaluates every rule collection for one client.
Status EvaluateClient(catalog::Tx& tx, std::int64_t client_id, const Attributes& attrs) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rules, tx.Query("SELECT id, rule FROM collections WHERE kind = 'rule'"));
  for (const auto& r : rules) {
    auto rule = Rule::Parse(r.Text(1));
    bool member = rule.ok() && rule->Matches(attrs);
    if (member) {
      DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?) "
                                    "ON CONFLICT (collection_id, client_id) DO NOTHING",
                                    {r.Int(0), client_id})
                                .status());
    } else {
      DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM collection_members WHERE collection_id = ? AND client_id = ?",
                                    {r.Int(0), client_id})
                                .status());
    }
  }
  return Status::Ok();
}

// Re-evaluates one rule against every client.
core::Result<std::int64_t> EvaluateRule(catalog::Tx& tx, std::int64_t collection_id, const Rule& rule) {
  DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM collection_members WHERE collection_id = ?", {collection_id}).status());
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows clients, tx.Query("SELECT id, attributes FROM clients"));
  std::int64_t members = 0;
  for (const auto& c : clients) {
    if (!rule.Matches(LoadAttributes(c.Text(1)))) continue;
    DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?)",
                                  {collection_id, c.Int(0)})
                              .status());
    ++members;
  }
  return members;
}

Status ValidateCollectionName(const std::string& name) {
  return store::ValidatePackageName(name).ok()
             ? Status::Ok()
             : Status::InvalidArgument("collection name `" + name.substr(0, 80) +
                                       "` must be 1-64 characters of A-Z a-z 0-9 . _ -");
}

// Resolves client uids or names to ids; a name shared by several clients is an error.
core::Result<std::vector<std::int64_t>> ResolveClients(catalog::Tx& tx, const std::vector<std::string>& refs) {
  std::vector<std::int64_t> ids;
  for (const auto& ref : refs) {
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows, tx.Query("SELECT id, uid FROM clients WHERE uid = ? OR name = ?", {ref, ref}));
    if (rows.empty()) return Status::NotFound("no client with id or name `" + ref.substr(0, 80) + "` (see `depot client list`)");
    if (rows.size() > 1) {
      std::string uids;
      for (const auto& r : rows) uids += (uids.empty() ? "" : ", ") + r.Text(1);
      return Status::InvalidArgument("several clients are named `" + ref + "`; use one of their ids: " + uids);
    }
    ids.push_back(rows[0].Int(0));
  }
  return ids;
}

core::Result<std::int64_t> ParseWhen(SiteContext& ctx, const std::string& s, const char* what) {
  if (s.empty() || s == "now") return ctx.NowMs();
  if (s[0] == '+') {
    auto d = core::ParseDuration(s.substr(1));
    if (d.ok()) return ctx.NowMs() + std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
  } else {
    auto t = core::ParseUtc(s);
    if (t.ok()) return std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
  }
  return Status::InvalidArgument(std::string(what) + " `" + s.substr(0, 40) +
                                 "` must be `now`, a UTC time like 2026-11-24T08:00:00Z, or +DURATION like +2h");
}

bool ValidTimeZone(const std::string& tz) {
  if (tz == "UTC") return true;
  if (tz.empty() || tz.size() > 64 || tz.find("..") != std::string::npos || tz[0] == '/') return false;
  for (char c : tz) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+')) return false;
  }
  struct stat st;
  return ::stat(("/usr/share/zoneinfo/" + tz).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

core::Result<Json> ParseWindows(const Json* raw) {
  Json out = Json::array();
  if (raw == nullptr) return out;
  if (!raw->is_array() || raw->size() > 16) {
    return Status::InvalidArgument("windows must be a list of at most 16 maintenance windows");
  }
  for (std::size_t i = 0; i < raw->size(); ++i) {
    ObjectReader r((*raw)[i], "window " + std::to_string(i));
    std::string start = r.String("start", true, 5);
    std::string duration = r.String("duration", true, 16);
    std::string tz = r.String("tz", false, 64, "UTC");
    DEPOT_RETURN_IF_ERROR(r.Finish());
    int hh = -1, mm = -1;
    if (start.size() == 5 && start[2] == ':' && std::isdigit(static_cast<unsigned char>(start[0])) &&
        std::isdigit(static_cast<unsigned char>(start[1])) && std::isdigit(static_cast<unsigned char>(start[3])) &&
        std::isdigit(static_cast<unsigned char>(start[4]))) {
      hh = (start[0] - '0') * 10 + (start[1] - '0');
      mm = (start[3] - '0') * 10 + (start[4] - '0');
    }
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59) {
      return Status::InvalidArgument("window " + std::to_string(i) + ": start must be HH:MM (24-hour)");
    }
    auto d = core::ParseDuration(duration);
    if (!d.ok() || *d <= core::Duration::zero() || *d > std::chrono::hours(24)) {
      return Status::InvalidArgument("window " + std::to_string(i) + ": duration must be like 2h or 90m, at most 24h");
    }
    if (!ValidTimeZone(tz)) {
      return Status::InvalidArgument("window " + std::to_string(i) + ": unknown time zone `" + tz.substr(0, 64) +
                                     "` (use an IANA name like Europe/Berlin, or UTC)");
    }
    out.push_back({{"start", start},
                   {"duration_s", std::chrono::duration_cast<std::chrono::seconds>(*d).count()},
                   {"tz", tz}});
  }
  return out;
}

void SeenClient(SiteContext& ctx, std::int64_t client_id) {
  std::lock_guard<std::mutex> lock(ctx.seen_mu);
  ctx.client_seen[client_id] = ctx.NowMs();
}

// Deployment state counts: clients targeted, and how many reported each state.
core::Result<Json> DeploymentCounts(SiteContext& ctx, std::int64_t deployment_id, std::int64_t collection_id) {
  DEPOT_ASSIGN_OR_RETURN(std::int64_t targeted,
                         ctx.db->QueryInt("SELECT COUNT(*) FROM collection_members WHERE collection_id = ?", {collection_id}));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT cd.state, COUNT(*) FROM client_deployments cd JOIN collection_members m "
                                       "ON m.client_id = cd.client_id AND m.collection_id = ? WHERE cd.deployment_id = ? "
                                       "GROUP BY cd.state",
                                       {collection_id, deployment_id}));
  Json counts = {{"targeted", targeted}, {"waiting", 0},    {"downloading", 0}, {"downloaded", 0},
                 {"installing", 0},      {"succeeded", 0},  {"failed", 0}};
  std::int64_t reported = 0;
  for (const auto& r : rows) {
    std::string state = r.Text(0);
    if (!counts.contains(state)) state = "failed";
    counts[state] = counts[state].get<std::int64_t>() + r.Int(1);
    if (state != "waiting") reported += r.Int(1);
  }
  counts["waiting"] = std::max<std::int64_t>(0, targeted - reported);
  return counts;
}

}  // namespace

core::Result<Json> Enroll(SiteContext& ctx, const Principal& who, const http::Request& req, const Json& body) {
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
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id,
                           tx.QueryInt("INSERT INTO clients (uid, name, attributes, address, enrolled_at, last_seen_at, "
                                       "attributes_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                                       {uid, name, Dump(AttributesJson(attrs)), req.remote_address, now, now, now}));
    DEPOT_ASSIGN_OR_RETURN(token, CreateToken(ctx, tx, Role::kAgent, "client " + name, id, 0, std::nullopt));
    DEPOT_RETURN_IF_ERROR(EvaluateClient(tx, id, attrs));
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
              {"poll_interval_s", std::chrono::duration_cast<std::chrono::seconds>(ctx.config.poll_interval).count()}};
}

core::Result<Json> UpdateAttributes(SiteContext& ctx, std::int64_t client_id, const http::Request& req,
                                    const Json& body) {
  ObjectReader r(body, "attributes update");
  const Json* raw = r.Raw("attributes");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (raw == nullptr) return Status::InvalidArgument("attributes update: field `attributes` is required");
  DEPOT_ASSIGN_OR_RETURN(Attributes attrs, ParseAttributes(*raw));
  bool changed = false;
  std::string uid;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(auto row, tx.QueryRow("SELECT uid, name, attributes FROM clients WHERE id = ?", {client_id}));
    uid = row.Text(0);
    attrs["address"] = {req.remote_address};
    attrs["name"] = {row.Text(1)};
    std::string text = Dump(AttributesJson(attrs));
    changed = text != row.Text(2);
    if (!changed) return Status::Ok();
    DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE clients SET attributes = ?, address = ?, attributes_at = ? WHERE id = ?",
                                  {text, req.remote_address, ctx.NowMs(), client_id})
                              .status());
    DEPOT_RETURN_IF_ERROR(EvaluateClient(tx, client_id, attrs));
    return PostMessage(ctx, tx, core::msg::kClientAttributesChanged, {{}, {}, {}, uid, {}}, {{"client", uid}});
  });
  if (!s.ok()) return s;
  if (changed) ctx.Changed();
  return Json{{"client", uid}, {"changed", changed}};
}

core::Result<Json> BuildPolicy(SiteContext& ctx, std::int64_t client_id) {
  DEPOT_ASSIGN_OR_RETURN(auto client, ctx.db->QueryRow("SELECT uid, attributes FROM clients WHERE id = ?", {client_id}));
  Attributes attrs = LoadAttributes(client.Text(1));
  std::vector<core::IpAddress> addresses;
  for (const char* key : {"address", "ips"}) {
    auto it = attrs.find(key);
    if (it == attrs.end()) continue;
    for (const auto& v : it->second) {
      auto ip = core::ParseIp(v);
      if (ip.ok()) addresses.push_back(*ip);
    }
  }
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows deps,
      ctx.db->Query("SELECT d.id, p.name, p.uid, d.program, d.kind, d.start_at, d.deadline_at, d.windows, "
                    "COALESCE(d.pinned_version, (SELECT MAX(v.version) FROM versions v WHERE v.package_id = p.id "
                    "AND v.state = 'active')), p.id FROM deployments d JOIN packages p ON p.id = d.package_id "
                    "JOIN collection_members m ON m.collection_id = d.collection_id AND m.client_id = ? WHERE "
                    "d.cancelled_at IS NULL AND p.deleted_at IS NULL ORDER BY d.id",
                    {client_id}));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows bounds, ctx.db->Query("SELECT dp_id, cidr FROM dp_boundaries"));
  Json deployments = Json::array();
  for (const auto& d : deps) {
    if (d.IsNull(8)) continue;  // no active version (yet)
    std::int64_t version = d.Int(8);
    auto v = ctx.db->QueryRow("SELECT id, manifest_id, manifest_bytes, bytes FROM versions WHERE package_id = ? AND "
                              "version = ? AND state = 'active'",
                              {d.Int(9), version});
    if (!v.ok()) continue;  // a pinned version that was retired
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows dps,
                           ctx.db->Query("SELECT dp.id, dp.name, dp.url, dp.probe_attempts FROM dp_records r JOIN dps dp "
                                         "ON dp.id = r.dp_id WHERE r.version_id = ? AND r.state = 'ready' ORDER BY dp.name",
                                         {v->Int(0)}));
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
    std::stable_sort(sources.begin(), sources.end(), [](const Source& a, const Source& b) { return a.rank < b.rank; });
    Json src = Json::array();
    for (const auto& s : sources) {
      src.push_back({{"kind", "dp"}, {"name", s.name}, {"url", s.url}, {"in_boundary", s.boundary}});
    }
    src.push_back({{"kind", "site"}, {"name", ctx.config.code}, {"url", ctx.public_url + "/repo"}, {"in_boundary", false}});
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
              {"poll_interval_s", std::chrono::duration_cast<std::chrono::seconds>(ctx.config.poll_interval).count()},
              {"deployments", deployments}};
}

void HandlePolicy(SiteContext& ctx, std::int64_t client_id, const http::Request& req, http::Response* resp) {
  if (ctx.policy_polls) ctx.policy_polls->Inc();
  SeenClient(ctx, client_id);
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
    if (ctx.policy_not_modified) ctx.policy_not_modified->Inc();
    resp->status = 304;
    resp->SetHeader("ETag", cached.etag);
    return;
  }
  *resp = http::Response::Json(200, std::move(cached.body));
  resp->SetHeader("ETag", cached.etag);
  resp->SetHeader("Cache-Control", "no-cache");
}

core::Result<Json> AgentStatus(SiteContext& ctx, std::int64_t client_id, const Json& body) {
  ObjectReader r(body, "agent status");
  const Json* messages = r.Raw("messages");
  const Json* deployments = r.Raw("deployments");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  DEPOT_ASSIGN_OR_RETURN(auto client, ctx.db->QueryRow("SELECT uid FROM clients WHERE id = ?", {client_id}));
  std::string uid = client.Text(0);
  Json out = Json::object();
  std::int64_t applied = 0, stale = 0;
  // Every part is validated before anything is stored: a refused request changes nothing.
  struct Item {
    std::int64_t deployment, seq;
    std::string state, detail;
    std::optional<std::int64_t> version, exit_code;
  };
  std::vector<Item> items;
  if (deployments != nullptr) {
    if (!deployments->is_array() || deployments->size() > 1000) {
      return Status::InvalidArgument("agent status: deployments must be a list of at most 1000 items");
    }
    static const std::set<std::string> kStates = {"waiting", "downloading", "downloaded", "installing",
                                                   "succeeded", "failed"};
    for (std::size_t i = 0; i < deployments->size(); ++i) {
      ObjectReader ir((*deployments)[i], "deployment report " + std::to_string(i));
      Item it;
      it.deployment = ir.Int("deployment", true, 1, INT64_MAX);
      it.seq = ir.Int("seq", true, 1, INT64_MAX);
      it.state = ir.String("state", true, 16);
      it.version = ir.OptInt("version", 1, INT64_MAX);
      it.exit_code = ir.OptInt("exit_code", INT32_MIN, INT32_MAX);
      it.detail = ir.String("detail", false, 4096);
      DEPOT_RETURN_IF_ERROR(ir.Finish());
      if (!kStates.count(it.state)) {
        return Status::InvalidArgument("deployment report " + std::to_string(i) +
                                       ": state must be waiting, downloading, downloaded, installing, succeeded or failed");
      }
      items.push_back(std::move(it));
    }
  }
  if (messages != nullptr) {
    DEPOT_ASSIGN_OR_RETURN(Json m, IngestMessages(ctx, "client:" + uid, "agent", "", uid, Json{{"messages", *messages}}));
    out["messages"] = m;
  }
  if (deployments != nullptr) {
    Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
      applied = stale = 0;
      for (const Item& it : items) {
        DEPOT_ASSIGN_OR_RETURN(std::int64_t known, tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE id = ?", {it.deployment}));
        if (known == 0) {
          ++stale;
          continue;
        }
        // At least once, in any order: only a newer report replaces an older one.
        DEPOT_ASSIGN_OR_RETURN(
            std::int64_t n,
            tx.Exec("INSERT INTO client_deployments (client_id, deployment_id, state, version, exit_code, detail, "
                    "report_seq, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (client_id, deployment_id) "
                    "DO UPDATE SET state = excluded.state, version = excluded.version, exit_code = excluded.exit_code, "
                    "detail = excluded.detail, report_seq = excluded.report_seq, updated_at = excluded.updated_at "
                    "WHERE client_deployments.report_seq < excluded.report_seq",
                    {client_id, it.deployment, it.state, it.version, it.exit_code, it.detail, it.seq, ctx.NowMs()}));
        if (n > 0) {
          ++applied;
        } else {
          ++stale;
        }
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
  }
  out["deployments"] = {{"applied", applied}, {"stale", stale}};
  SeenClient(ctx, client_id);
  return out;
}

core::Result<Json> ListClients(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT uid, name, address, enrolled_at, last_seen_at, attributes FROM clients ORDER BY name, uid"));
  std::int64_t offline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.client_offline_after).count();
  std::int64_t now = ctx.NowMs();
  Json out = Json::array();
  for (const auto& r : rows) {
    Json attrs = Json::parse(r.Text(5), nullptr, false);
    out.push_back({{"id", r.Text(0)},
                   {"name", r.Text(1)},
                   {"address", r.Text(2)},
                   {"enrolled", FormatMs(r.Int(3))},
                   {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
                   {"online", !r.IsNull(4) && now - r.Int(4) < offline_ms},
                   {"attributes", attrs.is_discarded() ? Json::object() : attrs}});
  }
  return Json{{"clients", out}};
}

core::Result<Json> ShowClient(SiteContext& ctx, const std::string& ref) {
  std::int64_t id = 0;
  Status s = ctx.db->Transaction(
      [&](catalog::Tx& tx) -> Status {
        DEPOT_ASSIGN_OR_RETURN(auto ids, ResolveClients(tx, {ref}));
        id = ids[0];
        return Status::Ok();
      },
      catalog::Db::Mode::kRead);
  if (!s.ok()) return s;
  DEPOT_ASSIGN_OR_RETURN(auto r, ctx.db->QueryRow("SELECT uid, name, address, enrolled_at, last_seen_at, attributes "
                                                  "FROM clients WHERE id = ?",
                                                  {id}));
  Json attrs = Json::parse(r.Text(5), nullptr, false);
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows cols, ctx.db->Query("SELECT c.name FROM collections c JOIN collection_members m ON "
                                                           "m.collection_id = c.id WHERE m.client_id = ? ORDER BY c.name",
                                                           {id}));
  Json collections = Json::array();
  for (const auto& c : cols) collections.push_back(c.Text(0));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows reps, ctx.db->Query("SELECT deployment_id, state, version, exit_code, detail, updated_at "
                                                           "FROM client_deployments WHERE client_id = ? ORDER BY deployment_id",
                                                           {id}));
  Json reports = Json::array();
  for (const auto& x : reps) {
    Json j = {{"deployment", x.Int(0)}, {"state", x.Text(1)}, {"detail", x.Text(4)}, {"updated", FormatMs(x.Int(5))}};
    if (!x.IsNull(2)) j["version"] = x.Int(2);
    if (!x.IsNull(3)) j["exit_code"] = x.Int(3);
    reports.push_back(std::move(j));
  }
  DEPOT_ASSIGN_OR_RETURN(Json policy, BuildPolicy(ctx, id));
  return Json{{"id", r.Text(0)},
              {"name", r.Text(1)},
              {"address", r.Text(2)},
              {"enrolled", FormatMs(r.Int(3))},
              {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
              {"attributes", attrs.is_discarded() ? Json::object() : attrs},
              {"collections", collections},
              {"deployments", reports},
              {"policy", policy}};
}

core::Result<Json> CreateCollection(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "new collection");
  std::string name = r.String("name", true, 64);
  auto rule_text = r.OptString("rule", 4096);
  std::vector<std::string> members = r.Strings("members", false, 100'000, 255);
  std::string description = r.String("description", false, 1024);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  DEPOT_RETURN_IF_ERROR(ValidateCollectionName(name));
  std::optional<Rule> rule;
  if (rule_text) {
    if (!members.empty()) return Status::InvalidArgument("a collection has either a rule or static members, not both");
    DEPOT_ASSIGN_OR_RETURN(rule, Rule::Parse(*rule_text));
  }
  std::int64_t count = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t exists, tx.QueryInt("SELECT COUNT(*) FROM collections WHERE name = ?", {name}));
    if (exists > 0) return Status::InvalidArgument("a collection named " + name + " already exists");
    DEPOT_ASSIGN_OR_RETURN(std::int64_t id,
                           tx.QueryInt("INSERT INTO collections (name, kind, rule, description, created_at) VALUES "
                                       "(?, ?, ?, ?, ?) RETURNING id",
                                       {name, rule ? "rule" : "static", rule ? rule->text() : "", description, ctx.NowMs()}));
    if (rule) {
      DEPOT_ASSIGN_OR_RETURN(count, EvaluateRule(tx, id, *rule));
    } else {
      DEPOT_ASSIGN_OR_RETURN(auto ids, ResolveClients(tx, members));
      for (auto cid : std::set<std::int64_t>(ids.begin(), ids.end())) {
        DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?)", {id, cid}).status());
        ++count;
      }
    }
    return PostMessage(ctx, tx, core::msg::kCollectionChanged, {},
                       {{"collection", name}, {"change", "created"}, {"members", std::to_string(count)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"name", name}, {"kind", rule ? "rule" : "static"}, {"members", count}};
}

core::Result<Json> ListCollections(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT c.name, c.kind, c.rule, c.description, (SELECT COUNT(*) FROM "
                                       "collection_members m WHERE m.collection_id = c.id), (SELECT COUNT(*) FROM deployments d "
                                       "WHERE d.collection_id = c.id AND d.cancelled_at IS NULL) FROM collections c ORDER BY c.name"));
  Json out = Json::array();
  for (const auto& r : rows) {
    out.push_back({{"name", r.Text(0)}, {"kind", r.Text(1)}, {"rule", r.Text(2)}, {"description", r.Text(3)},
                   {"members", r.Int(4)}, {"deployments", r.Int(5)}});
  }
  return Json{{"collections", out}};
}

core::Result<Json> ShowCollection(SiteContext& ctx, const std::string& name) {
  auto c = ctx.db->QueryRow("SELECT id, kind, rule, description FROM collections WHERE name = ?", {name});
  if (!c.ok()) {
    if (c.status().IsNotFound()) return Status::NotFound("no collection named " + name + " (see `depot collection list`)");
    return c.status();
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows, ctx.db->Query("SELECT cl.uid, cl.name FROM clients cl JOIN collection_members m ON "
                                                           "m.client_id = cl.id WHERE m.collection_id = ? ORDER BY cl.name",
                                                           {c->Int(0)}));
  Json members = Json::array();
  for (const auto& r : rows) members.push_back({{"id", r.Text(0)}, {"name", r.Text(1)}});
  return Json{{"name", name}, {"kind", c->Text(1)}, {"rule", c->Text(2)}, {"description", c->Text(3)}, {"members", members}};
}

core::Result<Json> DeleteCollection(SiteContext& ctx, const std::string& name) {
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto c = tx.QueryRow("SELECT id FROM collections WHERE name = ?", {name});
    if (!c.ok()) return c.status().IsNotFound() ? Status::NotFound("no collection named " + name) : c.status();
    DEPOT_ASSIGN_OR_RETURN(std::int64_t deps, tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE collection_id = ? AND "
                                                          "cancelled_at IS NULL",
                                                          {c->Int(0)}));
    if (deps > 0) {
      return Status::InvalidArgument("collection " + name + " has " + std::to_string(deps) +
                                     " active deployments; cancel them first (`depot deployment cancel`)");
    }
    DEPOT_ASSIGN_OR_RETURN(std::int64_t any, tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE collection_id = ?", {c->Int(0)}));
    if (any > 0) {
      return Status::InvalidArgument("collection " + name + " is referenced by " + std::to_string(any) +
                                     " cancelled deployments, kept for their history; it cannot be deleted");
    }
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM collections WHERE id = ?", {c->Int(0)}).status());
    return PostMessage(ctx, tx, core::msg::kCollectionChanged, {}, {{"collection", name}, {"change", "deleted"}, {"members", "0"}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"name", name}, {"deleted", true}};
}

core::Result<Json> ChangeCollection(SiteContext& ctx, const std::string& name, const Json& body) {
  ObjectReader r(body, "collection change");
  std::vector<std::string> add = r.Strings("add", false, 100'000, 255);
  std::vector<std::string> remove = r.Strings("remove", false, 100'000, 255);
  auto rule_text = r.OptString("rule", 4096);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  std::optional<Rule> rule;
  if (rule_text) {
    DEPOT_ASSIGN_OR_RETURN(rule, Rule::Parse(*rule_text));
  }
  std::int64_t count = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto c = tx.QueryRow("SELECT id, kind FROM collections WHERE name = ?", {name});
    if (!c.ok()) return c.status().IsNotFound() ? Status::NotFound("no collection named " + name) : c.status();
    std::int64_t id = c->Int(0);
    if (rule) {
      if (!add.empty() || !remove.empty()) return Status::InvalidArgument("change either the rule or the members, not both");
      DEPOT_RETURN_IF_ERROR(tx.Exec("UPDATE collections SET kind = 'rule', rule = ? WHERE id = ?", {rule->text(), id}).status());
      DEPOT_ASSIGN_OR_RETURN(count, EvaluateRule(tx, id, *rule));
    } else {
      if (c->Text(1) != "static") {
        return Status::InvalidArgument("collection " + name + " is computed from its rule; change the rule instead");
      }
      DEPOT_ASSIGN_OR_RETURN(auto add_ids, ResolveClients(tx, add));
      DEPOT_ASSIGN_OR_RETURN(auto remove_ids, ResolveClients(tx, remove));
      for (auto cid : add_ids) {
        DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?) ON CONFLICT "
                                      "(collection_id, client_id) DO NOTHING",
                                      {id, cid})
                                  .status());
      }
      for (auto cid : remove_ids) {
        DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM collection_members WHERE collection_id = ? AND client_id = ?", {id, cid}).status());
      }
      DEPOT_ASSIGN_OR_RETURN(count, tx.QueryInt("SELECT COUNT(*) FROM collection_members WHERE collection_id = ?", {id}));
    }
    return PostMessage(ctx, tx, core::msg::kCollectionChanged, {},
                       {{"collection", name}, {"change", rule ? "rule changed" : "members changed"},
                        {"members", std::to_string(count)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"name", name}, {"members", count}};
}

core::Result<Json> CreateDeployment(SiteContext& ctx, const Json& body) {
  ObjectReader r(body, "new deployment");
  std::string package = r.String("package", true, 64);
  std::string program = r.String("program", true, 32);
  std::string collection = r.String("collection", true, 64);
  std::string kind = r.String("kind", false, 16, "available");
  std::string start = r.String("start", false, 40, "now");
  std::string deadline = r.String("deadline", false, 40);
  auto pinned = r.OptInt("version", 1, INT64_MAX);
  const Json* raw_windows = r.Raw("windows");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (kind != "required" && kind != "available") {
    return Status::InvalidArgument("deployment kind must be required or available");
  }
  DEPOT_ASSIGN_OR_RETURN(std::int64_t start_ms, ParseWhen(ctx, start, "start"));
  std::optional<std::int64_t> deadline_ms;
  if (!deadline.empty()) {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t d, ParseWhen(ctx, deadline, "deadline"));
    if (d < start_ms) return Status::InvalidArgument("deadline is before the start");
    deadline_ms = d;
  }
  DEPOT_ASSIGN_OR_RETURN(Json windows, ParseWindows(raw_windows));
  std::int64_t id = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto p = tx.QueryRow("SELECT id FROM packages WHERE name = ? AND deleted_at IS NULL", {package});
    if (!p.ok()) return p.status().IsNotFound() ? Status::NotFound("no package named " + package) : p.status();
    auto c = tx.QueryRow("SELECT id FROM collections WHERE name = ?", {collection});
    if (!c.ok()) {
      return c.status().IsNotFound()
                 ? Status::NotFound("no collection named " + collection + " (create it with `depot collection create`)")
                 : c.status();
    }
    auto v = pinned ? tx.QueryRow("SELECT version, programs FROM versions WHERE package_id = ? AND version = ? AND state = 'active'",
                                  {p->Int(0), *pinned})
                    : tx.QueryRow("SELECT version, programs FROM versions WHERE package_id = ? AND state = 'active' ORDER BY "
                                  "version DESC LIMIT 1",
                                  {p->Int(0)});
    if (!v.ok()) {
      if (!v.status().IsNotFound()) return v.status();
      return pinned ? Status::NotFound("package " + package + " has no active version " + std::to_string(*pinned))
                    : Status::NotFound("package " + package + " has no version yet");
    }
    Json programs = Json::parse(v->Text(1), nullptr, false);
    bool has_program = false;
    std::string names;
    if (programs.is_array()) {
      for (const auto& x : programs) {
        if (!x.is_string()) continue;
        has_program = has_program || x.get<std::string>() == program;
        names += (names.empty() ? "" : ", ") + x.get<std::string>();
      }
    }
    if (!has_program) {
      return Status::InvalidArgument("package " + package + " version " + std::to_string(v->Int(0)) + " has no program `" +
                                     program + "`" + (names.empty() ? " (it has no programs)" : " (it has: " + names + ")"));
    }
    DEPOT_ASSIGN_OR_RETURN(id, tx.QueryInt("INSERT INTO deployments (package_id, pinned_version, program, collection_id, kind, "
                                           "start_at, deadline_at, windows, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                                           "RETURNING id",
                                           {p->Int(0), pinned, program, c->Int(0), kind, start_ms, deadline_ms, Dump(windows),
                                            ctx.NowMs()}));
    return PostMessage(ctx, tx, core::msg::kDeploymentCreated, {package, {}, {}, {}, id},
                       {{"deployment", std::to_string(id)}, {"package", package}, {"kind", kind}, {"collection", collection}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return ShowDeployment(ctx, id);
}

core::Result<Json> ListDeployments(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT d.id, p.name, d.program, c.name, d.kind, d.start_at, d.deadline_at, "
                                       "d.cancelled_at, d.collection_id, d.pinned_version FROM deployments d JOIN packages p ON "
                                       "p.id = d.package_id JOIN collections c ON c.id = d.collection_id ORDER BY d.id"));
  Json out = Json::array();
  for (const auto& r : rows) {
    Json j = {{"id", r.Int(0)}, {"package", r.Text(1)}, {"program", r.Text(2)}, {"collection", r.Text(3)},
              {"kind", r.Text(4)}, {"start", FormatMs(r.Int(5))}, {"state", r.IsNull(7) ? "active" : "cancelled"}};
    if (!r.IsNull(6)) j["deadline"] = FormatMs(r.Int(6));
    if (!r.IsNull(9)) j["pinned_version"] = r.Int(9);
    DEPOT_ASSIGN_OR_RETURN(Json counts, DeploymentCounts(ctx, r.Int(0), r.Int(8)));
    j["clients"] = counts;
    out.push_back(std::move(j));
  }
  return Json{{"deployments", out}};
}

core::Result<Json> ShowDeployment(SiteContext& ctx, std::int64_t id) {
  auto r = ctx.db->QueryRow("SELECT d.id, p.name, d.program, c.name, d.kind, d.start_at, d.deadline_at, d.cancelled_at, "
                            "d.collection_id, d.pinned_version, d.windows, d.created_at FROM deployments d JOIN packages p ON "
                            "p.id = d.package_id JOIN collections c ON c.id = d.collection_id WHERE d.id = ?",
                            {id});
  if (!r.ok()) {
    return r.status().IsNotFound() ? Status::NotFound("no deployment " + std::to_string(id) + " (see `depot deployment list`)")
                                   : r.status();
  }
  Json j = {{"id", r->Int(0)}, {"package", r->Text(1)}, {"program", r->Text(2)}, {"collection", r->Text(3)},
            {"kind", r->Text(4)}, {"start", FormatMs(r->Int(5))}, {"created", FormatMs(r->Int(11))},
            {"state", r->IsNull(7) ? "active" : "cancelled"}};
  if (!r->IsNull(6)) j["deadline"] = FormatMs(r->Int(6));
  if (!r->IsNull(7)) j["cancelled"] = FormatMs(r->Int(7));
  if (!r->IsNull(9)) j["pinned_version"] = r->Int(9);
  Json windows = Json::parse(r->Text(10), nullptr, false);
  j["windows"] = windows.is_discarded() ? Json::array() : windows;
  DEPOT_ASSIGN_OR_RETURN(Json counts, DeploymentCounts(ctx, id, r->Int(8)));
  j["clients"] = counts;
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows reps, ctx.db->Query("SELECT cl.uid, cl.name, cd.state, cd.version, cd.exit_code, cd.detail, "
                                                           "cd.updated_at FROM client_deployments cd JOIN clients cl ON cl.id = "
                                                           "cd.client_id WHERE cd.deployment_id = ? ORDER BY cl.name LIMIT 1000",
                                                           {id}));
  Json reports = Json::array();
  for (const auto& x : reps) {
    Json rep = {{"client", x.Text(0)}, {"name", x.Text(1)}, {"state", x.Text(2)}, {"detail", x.Text(5)},
                {"updated", FormatMs(x.Int(6))}};
    if (!x.IsNull(3)) rep["version"] = x.Int(3);
    if (!x.IsNull(4)) rep["exit_code"] = x.Int(4);
    reports.push_back(std::move(rep));
  }
  j["reports"] = reports;
  return j;
}

core::Result<Json> CancelDeployment(SiteContext& ctx, std::int64_t id) {
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t n, tx.Exec("UPDATE deployments SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
                                                   {ctx.NowMs(), id}));
    if (n == 0) {
      DEPOT_ASSIGN_OR_RETURN(std::int64_t exists, tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE id = ?", {id}));
      return exists ? Status::InvalidArgument("deployment " + std::to_string(id) + " is already cancelled")
                    : Status::NotFound("no deployment " + std::to_string(id));
    }
    return PostMessage(ctx, tx, core::msg::kDeploymentCancelled, {{}, {}, {}, {}, id}, {{"deployment", std::to_string(id)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  // Versions it pinned may now fall to retention.
  return ShowDeployment(ctx, id);
}

core::Result<Json> StatusOverview(SiteContext& ctx) {
  // Sightings not yet written (they are flushed in batches): a client or DP that just
  // checked in must not be listed as silent.
  FlushSeen(ctx);
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows versions,
      ctx.db->Query("SELECT p.name, v.version, v.bytes, (SELECT COUNT(*) FROM dp_records r WHERE r.version_id = v.id), "
                    "(SELECT COUNT(*) FROM dp_records r WHERE r.version_id = v.id AND r.state = 'ready'), "
                    "(SELECT COUNT(*) FROM dp_records r WHERE r.version_id = v.id AND r.state = 'failed') FROM versions v "
                    "JOIN packages p ON p.id = v.package_id WHERE v.state = 'active' AND p.deleted_at IS NULL ORDER BY p.name, "
                    "v.version"));
  Json packages = Json::array();
  for (const auto& v : versions) {
    packages.push_back({{"package", v.Text(0)}, {"version", v.Int(1)}, {"bytes", v.Int(2)},
                        {"dps", {{"assigned", v.Int(3)}, {"ready", v.Int(4)}, {"failed", v.Int(5)}}}});
  }
  DEPOT_ASSIGN_OR_RETURN(Json dps, ListDps(ctx));
  DEPOT_ASSIGN_OR_RETURN(Json not_ready, DpsNotReady(ctx));
  DEPOT_ASSIGN_OR_RETURN(Json deployments, ListDeployments(ctx));
  Json active = Json::array();
  for (auto& d : deployments["deployments"]) {
    if (d["state"] == "active") active.push_back(d);
  }
  std::int64_t offline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.client_offline_after).count();
  DEPOT_ASSIGN_OR_RETURN(std::int64_t clients, ctx.db->QueryInt("SELECT COUNT(*) FROM clients"));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows offline,
                         ctx.db->Query("SELECT uid, name, last_seen_at FROM clients WHERE last_seen_at IS NULL OR last_seen_at < ? "
                                       "ORDER BY last_seen_at LIMIT 100",
                                       {ctx.NowMs() - offline_ms}));
  DEPOT_ASSIGN_OR_RETURN(std::int64_t offline_count,
                         ctx.db->QueryInt("SELECT COUNT(*) FROM clients WHERE last_seen_at IS NULL OR last_seen_at < ?",
                                          {ctx.NowMs() - offline_ms}));
  Json off = Json::array();
  for (const auto& c : offline) {
    off.push_back({{"id", c.Text(0)}, {"name", c.Text(1)}, {"last_seen", c.IsNull(2) ? "" : FormatMs(c.Int(2))}});
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows queue, ctx.db->Query("SELECT state, COUNT(*) FROM dp_records GROUP BY state"));
  Json q = {{"pending", 0}, {"syncing", 0}, {"ready", 0}, {"failed", 0}, {"verifying", 0}};
  for (const auto& x : queue) q[x.Text(0)] = x.Int(1);
  return Json{{"site", {{"code", ctx.config.code}, {"url", ctx.public_url}}},
              {"packages", packages},
              {"dps", dps["dps"]},
              {"dps_not_ready", not_ready},
              {"distribution_queue", q},
              {"deployments", active},
              {"clients", {{"total", clients}, {"offline", offline_count}, {"offline_list", off}}}};
}

}  // namespace depot::site
