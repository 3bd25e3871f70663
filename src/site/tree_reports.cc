// The parent's side of upward reports: ApplyChildReport (declared in upward.h).
#include <algorithm>

#include "core/messages.h"
#include "site/upward.h"

namespace depot::site {

using core::Status;

namespace {

constexpr std::size_t kMaxItems = 1000;
constexpr std::size_t kMaxObject = 8u << 20;

// One checked item of a report.
struct Item {
  std::int64_t seq = 0;
  std::string kind;
  std::string site;  // path below the reporting child ("" the child itself)
  Json body;
};

Status CheckPath(const std::string& site, std::size_t i) {
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
    ObjectReader ir(j, "item " + std::to_string(i));
    it.seq = ir.Int("seq", true, 1, INT64_MAX);
    it.kind = ir.String("kind", true, 16);
    it.site = ir.String("site", false, 255);
    // The rest is the kind's, read when it is applied.
    DEPOT_RETURN_IF_ERROR(ir.FinishKnown());
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

// An object field (`attributes`, `detail`, `params`, `link`) as stored: its JSON text,
// "{}" when absent. InvalidArgument when it is something else or over 8 MiB (more than
// anything a site accepts: a client's attributes stay under about 1.1 MiB).
core::Result<std::string> ObjectText(ObjectReader& r, const char* key) {
  const Json* v = r.Raw(key);
  if (v == nullptr || v->is_null()) return std::string("{}");
  std::string text = v->is_object() ? Dump(*v) : std::string();
  if (text.empty() || text.size() > 65536)
    return Status::InvalidArgument(std::string("`") + key +
                                   "` must be an object of at most 64 KiB");
  return text;
}

// A reader for the fields of item `j` beyond seq, kind and site (read by ParseItems).
ObjectReader ItemReader(const Json& j, const std::string& kind) {
  ObjectReader r(j, kind + " item");
  for (const char* k : {"seq", "kind", "site"}) r.Raw(k);
  return r;
}

Status ApplyClient(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  ObjectReader r = ItemReader(j, "client");
  const std::string uid = r.String("uid", true, 128);
  const bool gone = r.Bool("gone");
  const std::string name = r.String("name", !gone, 256);
  auto enrolled = r.OptInt("enrolled_at", 0, INT64_MAX);
  auto seen = r.OptInt("last_seen_at", 0, INT64_MAX);
  DEPOT_ASSIGN_OR_RETURN(std::string attributes, ObjectText(r, "attributes"));
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (gone) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM tree_clients WHERE site = ? AND uid = ?", {path, uid}).status());
  } else {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO tree_clients (site, uid, name, attributes, enrolled_at, "
                "last_seen_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (site, uid) DO UPDATE SET "
                "name = excluded.name, attributes = excluded.attributes, enrolled_at = "
                "excluded.enrolled_at, last_seen_at = excluded.last_seen_at",
                {path, uid, name, attributes, enrolled, seen})
            .status());
  }
  return MarkUp(ctx, tx, "tclient", TreeKey(path, uid));
}

Status ApplyClientDeployment(SiteContext& ctx, catalog::Tx& tx, const std::string& path,
                             const Json& j) {
  ObjectReader r = ItemReader(j, "cd");
  const std::string uid = r.String("client", true, 128);
  const std::int64_t dep = r.Int("deployment", true, 1, INT64_MAX);
  const bool gone = r.Bool("gone");
  const std::string state = r.String("state", !gone, 32);
  auto version = r.OptInt("version", 0, INT64_MAX);
  auto exit_code = r.OptInt("exit_code", INT64_MIN, INT64_MAX);
  const std::string detail = r.String("detail", false, 65536);
  const std::int64_t updated = r.Int("updated_at", false, 0, INT64_MAX, ctx.NowMs());
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (gone) {
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
                {path, uid, dep, state, version, exit_code, detail, updated})
            .status());
  }
  return MarkUp(ctx, tx, "tcd", TreeKey(path, ClientDeploymentKey(uid, dep)));
}

Status ApplyDp(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  ObjectReader r = ItemReader(j, "dp");
  const std::string name = r.String("name", true, 64);
  const bool gone = r.Bool("gone");
  const std::string state = r.String("state", !gone, 32);
  DEPOT_ASSIGN_OR_RETURN(std::string detail, ObjectText(r, "detail"));
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (gone) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("DELETE FROM tree_dps WHERE site = ? AND name = ?", {path, name}).status());
  } else {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO tree_dps (site, name, state, detail, updated_at) VALUES (?, ?, ?, "
                "?, ?) ON CONFLICT (site, name) DO UPDATE SET state = excluded.state, detail = "
                "excluded.detail, updated_at = excluded.updated_at",
                {path, name, state, detail, ctx.NowMs()})
            .status());
  }
  return MarkUp(ctx, tx, "tdp", TreeKey(path, name));
}

Status ApplyMessage(SiteContext& ctx, catalog::Tx& tx, const std::string& path, const Json& j) {
  ObjectReader r = ItemReader(j, "msg");
  const std::string key = r.String("key", true, 64);
  const std::int64_t code = r.Int("code", true, 1, 9999);
  r.Raw("severity");  // the code's, as this site's catalog has it
  r.Raw("component");
  const std::string source = r.String("source", true, 256);
  const std::int64_t at = r.Int("at", false, 0, INT64_MAX, ctx.NowMs());
  const std::int64_t last_at = r.Int("last_at", false, 0, INT64_MAX, at);
  // Absolute state: the count as the origin counts it, so a re-sent item changes nothing.
  const std::int64_t count = r.Int("count", false, 1, INT64_MAX, 1);
  auto package = r.OptString("package", 64);
  auto version = r.OptInt("version", 0, INT64_MAX);
  auto dp = r.OptString("dp", 64);
  auto client = r.OptString("client", 128);
  auto deployment = r.OptInt("deployment", 0, INT64_MAX);
  const std::string text = r.String("text", true, 256 * 1024);
  DEPOT_ASSIGN_OR_RETURN(std::string params, ObjectText(r, "params"));
  DEPOT_RETURN_IF_ERROR(r.Finish());
  const core::MessageSpec* spec = core::FindMessage(static_cast<int>(code));
  if (spec == nullptr)
    return Status::InvalidArgument("msg item: code " + std::to_string(code) +
                                   " is not in this site's catalog (docs/messages.md)");
  auto opt = [](const std::optional<std::string>& v) {
    return v ? catalog::Value(*v) : catalog::Value();
  };
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows id,
      tx.Query(
          "INSERT INTO messages (code, severity, component, source, dedup_key, at, last_at, "
          "count, package, version, dp, client, deployment, params, text, site) VALUES (?, "
          "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_key) DO UPDATE SET "
          "count = excluded.count, last_at = excluded.last_at, params = excluded.params, "
          "text = excluded.text RETURNING id",
          {spec->id, std::string(core::SeverityName(spec->severity)), std::string(spec->component),
           path + ":" + source, "tree|" + path + "|" + key, at, last_at, count, opt(package),
           version, opt(dp), opt(client), deployment, params, text, path}));
  if (id.empty()) return Status::Ok();
  return MarkUp(ctx, tx, "msg", std::to_string(id[0].Int(0)));
}

// Returns the link's JSON text (the reporting child's own link goes on its row too).
core::Result<std::string> ApplyLink(SiteContext& ctx, catalog::Tx& tx, const std::string& path,
                                    const Json& j) {
  ObjectReader r = ItemReader(j, "link");
  DEPOT_ASSIGN_OR_RETURN(std::string link, ObjectText(r, "link"));
  DEPOT_RETURN_IF_ERROR(r.Finish());
  DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO tree_sites (site, link, updated_at) VALUES (?, ?, ?) "
                                "ON CONFLICT (site) DO UPDATE SET link = excluded.link, "
                                "updated_at = excluded.updated_at",
                                {path, link, ctx.NowMs()})
                            .status());
  DEPOT_RETURN_IF_ERROR(MarkUp(ctx, tx, "tlink", TreeKey(path, "")));
  return link;
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
        auto link = ApplyLink(ctx, tx, path, it.body);
        a = link.status();
        if (a.ok() && it.site.empty()) {
          a = tx.Exec("UPDATE children SET link = ? WHERE id = ?", {*link, child_id}).status();
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
