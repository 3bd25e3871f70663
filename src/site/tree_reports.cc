// The parent's side of upward reports: ApplyChildReport (declared in upward.h).
#include <algorithm>

#include "core/messages.h"
#include "site/upward.h"

namespace depot::site {

using core::Status;

namespace {

constexpr std::size_t kMaxItems = 1000;

// One checked item of a report.
struct Item {
  std::int64_t seq = 0;
  std::string kind;
  std::string site;  // path below the reporting child ("" the child itself)
  Json body;
};

Status CheckPath(const std::string& site, std::size_t i) {
  if (site.size() > 255)
    return Status::InvalidArgument("item " + std::to_string(i) + ": site too long");
  for (char c : site) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/')) {
      return Status::InvalidArgument("item " + std::to_string(i) +
                                     ": site must be a path of site codes like B/D");
    }
  }
  return Status::Ok();
}

core::Result<std::vector<Item>> ParseItems(const Json& body, std::int64_t* through) {
  ObjectReader r(body, "child report");
  const Json* list = r.Raw("items");
  *through = r.OptInt("through", 0, INT64_MAX).value_or(0);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (list == nullptr || !list->is_array())
    return Status::InvalidArgument("child report: field `items` must be a list");
  if (list->size() > kMaxItems)
    return Status::InvalidArgument("child report: at most 1000 items per request");
  std::vector<Item> items;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const Json& j = (*list)[i];
    if (!j.is_object())
      return Status::InvalidArgument("item " + std::to_string(i) + ": not an object");
    Item it;
    auto seq = j.find("seq");
    auto kind = j.find("kind");
    auto site = j.find("site");
    if (seq == j.end() || !seq->is_number_integer() || seq->get<std::int64_t>() < 1 ||
        kind == j.end() || !kind->is_string() || (site != j.end() && !site->is_string())) {
      return Status::InvalidArgument("item " + std::to_string(i) +
                                     ": needs seq (a positive integer), kind and site");
    }
    it.seq = seq->get<std::int64_t>();
    it.kind = kind->get<std::string>();
    it.site = site == j.end() ? "" : site->get<std::string>();
    DEPOT_RETURN_IF_ERROR(CheckPath(it.site, i));
    static const char* kKinds[] = {"client", "cd", "dp", "msg", "link"};
    if (std::find_if(std::begin(kKinds), std::end(kKinds),
                     [&](const char* k) { return it.kind == k; }) == std::end(kKinds)) {
      return Status::InvalidArgument("item " + std::to_string(i) + ": unknown kind `" +
                                     it.kind.substr(0, 20) + "`");
    }
    it.body = j;
    items.push_back(std::move(it));
  }
  return items;
}

std::string Str(const Json& j, const char* key, std::size_t max = 4096) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  std::string s = it->get<std::string>();
  if (s.size() > max) s.resize(max);
  return s;
}

catalog::Value OptInt(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return catalog::Value();
  return catalog::Value(it->get<std::int64_t>());
}

catalog::Value OptStr(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return catalog::Value();
  return catalog::Value(Str(j, key));
}

bool Gone(const Json& j) { return j.contains("gone") && j["gone"] == true; }

std::string ObjectText(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_object()) return "{}";
  std::string s = Dump(*it);
  return s.size() > 65536 ? "{}" : s;
}

Status ApplyClient(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  std::string uid = Str(j, "uid", 128);
  if (uid.empty()) return Status::InvalidArgument("client item without uid");
  if (Gone(j)) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM tree_clients WHERE site = ? AND uid = ?", {path, uid}).status());
  } else {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO tree_clients (site, uid, name, attributes, enrolled_at, "
                "last_seen_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, uid) DO UPDATE SET "
                "name = excluded.name, attributes = excluded.attributes, enrolled_at = "
                "excluded.enrolled_at, last_seen_at = excluded.last_seen_at",
                {path, uid, Str(j, "name", 256), ObjectText(j, "attributes"),
                 OptInt(j, "enrolled_at"), OptInt(j, "last_seen_at")})
            .status());
  }
  return MarkUp(ctx, tx, "tclient", TreeKey(path, uid));
}

Status ApplyClientDeployment(SiteContext& ctx, catalog::Tx& tx, const std::string& path,
                             const Json& j) {
  std::string uid = Str(j, "client", 128);
  catalog::Value dep = OptInt(j, "deployment");
  if (uid.empty() || dep.is_null())
    return Status::InvalidArgument("cd item without client or deployment");
  if (Gone(j)) {
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM tree_client_deployments WHERE site = ? AND "
                                  "client_uid = ? AND deployment_id = ?",
                                  {path, uid, dep})
                              .status());
  } else {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO tree_client_deployments (site, client_uid, deployment_id, state, "
                "version, exit_code, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON "
                "CONFLICT (site, client_uid, deployment_id) DO UPDATE SET state = excluded.state, "
                "version = excluded.version, exit_code = excluded.exit_code, detail = "
                "excluded.detail, updated_at = excluded.updated_at",
                {path, uid, dep, Str(j, "state", 32), OptInt(j, "version"), OptInt(j, "exit_code"),
                 Str(j, "detail"),
                 OptInt(j, "updated_at").is_null() ? catalog::Value(ctx.NowMs())
                                                   : OptInt(j, "updated_at")})
            .status());
  }
  return MarkUp(ctx, tx, "tcd", TreeKey(path, ClientDeploymentKey(uid, dep.AsInt())));
}

Status ApplyDp(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  std::string name = Str(j, "name", 64);
  if (name.empty()) return Status::InvalidArgument("dp item without name");
  if (Gone(j)) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM tree_dps WHERE site = ? AND name = ?", {path, name}).status());
  } else {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO tree_dps (site, name, state, detail, updated_at) VALUES (?, ?, ?, "
                "?, ?) ON CONFLICT (site, name) DO UPDATE SET state = excluded.state, detail = "
                "excluded.detail, updated_at = excluded.updated_at",
                {path, name, Str(j, "state", 32), ObjectText(j, "detail"), ctx.NowMs()})
            .status());
  }
  return MarkUp(ctx, tx, "tdp", TreeKey(path, name));
}

Status ApplyMessage(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  std::string key = Str(j, "key", 64);
  if (key.empty()) return Status::InvalidArgument("msg item without key");
  const core::MessageSpec* spec = core::FindMessage(static_cast<int>(OptInt(j, "code").AsInt()));
  if (spec == nullptr) return Status::InvalidArgument("msg item with an unknown code");
  catalog::Value at = OptInt(j, "at");
  catalog::Value last_at = OptInt(j, "last_at");
  if (at.is_null()) at = catalog::Value(ctx.NowMs());
  if (last_at.is_null()) last_at = at;
  std::int64_t count = std::max<std::int64_t>(1, OptInt(j, "count").AsInt());
  // Absolute state: the count as the origin counts it, so a re-sent item changes nothing.
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows id,
      tx.Query(
          "INSERT INTO messages (code, severity, component, source, dedup_key, at, last_at, "
          "count, package, version, dp, client, deployment, params, text, site) VALUES (?, "
          "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO UPDATE SET "
          "count = excluded.count, last_at = excluded.last_at, params = excluded.params, "
          "text = excluded.text RETURNING id",
          {spec->id, std::string(core::SeverityName(spec->severity)), std::string(spec->component),
           path + ":" + Str(j, "source", 256), "tree|" + path + "|" + key, at, last_at, count,
           OptStr(j, "package"), OptInt(j, "version"), OptStr(j, "dp"), OptStr(j, "client"),
           OptInt(j, "deployment"), ObjectText(j, "params"), Str(j, "text", 8192), path}));
  if (id.empty()) return Status::Ok();
  return MarkUp(ctx, tx, "msg", std::to_string(id[0].Int(0)));
}

Status ApplyLink(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  std::string link = ObjectText(j, "link");
  DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO tree_sites (site, link, updated_at) VALUES (?, ?, ?) "
                                "ON CONFLICT (site) DO UPDATE SET link = excluded.link, "
                                "updated_at = excluded.updated_at",
                                {path, link, ctx.NowMs()})
                            .status());
  return MarkUp(ctx, tx, "tlink", TreeKey(path, ""));
}

}  // namespace

core::Result<Json> ApplyChildReport(SiteContext& ctx, std::int64_t child_id, const Json& body) {
  // `through`: the highest sequence number the batch covers (things marked and gone
  // since have no item).
  std::int64_t through = 0;
  DEPOT_ASSIGN_OR_RETURN(std::vector<Item> items, ParseItems(body, &through));
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.seq < b.seq; });
  std::int64_t acked = 0;
  std::int64_t applied = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    applied = 0;
    auto row = tx.QueryRow("SELECT code, up_seq FROM children WHERE id = ?", {child_id});
    if (!row.ok()) {
      if (row.status().IsNotFound()) return Status::PermissionDenied("this child site was removed");
      return row.status();
    }
    const std::string code = row->Text(0);
    acked = row->Int(1);
    for (const Item& it : items) {
      if (it.seq <= acked) continue;  // applied before: a re-sent batch
      const std::string path = it.site.empty() ? code : code + "/" + it.site;
      Status a;
      if (it.kind == "client") {
        a = ApplyClient(ctx, tx, path, it.body);
      } else if (it.kind == "cd") {
        a = ApplyClientDeployment(ctx, tx, path, it.body);
      } else if (it.kind == "dp") {
        a = ApplyDp(ctx, tx, path, it.body);
      } else if (it.kind == "msg") {
        a = ApplyMessage(ctx, tx, path, it.body);
      } else {
        a = ApplyLink(ctx, tx, path, it.body);
        if (a.ok() && it.site.empty()) {
          a = tx.Exec("UPDATE children SET link = ? WHERE id = ?",
                      {ObjectText(it.body, "link"), child_id})
                  .status();
        }
      }
      if (!a.ok()) return a.WithContext("item seq " + std::to_string(it.seq));
      acked = it.seq;
      ++applied;
    }
    acked = std::max(acked, through);
    return tx
        .Exec("UPDATE children SET up_seq = ?, last_report_at = ? WHERE id = ?",
              {acked, ctx.NowMs(), child_id})
        .status();
  });
  if (!s.ok()) return s;
  return Json{{"acked", acked}, {"applied", applied}};
}

}  // namespace depot::site
