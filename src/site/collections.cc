#include "site/collections.h"

#include <optional>
#include <set>

#include "core/messages.h"
#include "site/membership.h"
#include "site/messages.h"
#include "site/rules.h"
#include "store/manifest.h"

namespace depot::site {

using core::Status;

namespace {

Status ValidateCollectionName(const std::string& name) {
  return store::ValidatePackageName(name).ok()
             ? Status::Ok()
             : Status::InvalidArgument("collection name `" + name.substr(0, 80) +
                                       "` must be 1-64 characters of A-Z a-z 0-9 . _ -");
}

}  // namespace

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
    if (!members.empty())
      return Status::InvalidArgument("a collection has either a rule or static members, not both");
    DEPOT_ASSIGN_OR_RETURN(rule, Rule::Parse(*rule_text));
  }
  std::int64_t count = 0;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t exists,
                           tx.QueryInt("SELECT COUNT(*) FROM collections WHERE name = ?", {name}));
    if (exists > 0)
      return Status::InvalidArgument("a collection named " + name + " already exists");
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t id,
        tx.QueryInt(
            "INSERT INTO collections (name, kind, rule, description, created_at) VALUES "
            "(?, ?, ?, ?, ?) RETURNING id",
            {name, rule ? "rule" : "static", rule ? rule->text() : "", description, ctx.NowMs()}));
    if (rule) {
      DEPOT_ASSIGN_OR_RETURN(count, EvaluateRule(tx, id, *rule));
    } else {
      DEPOT_ASSIGN_OR_RETURN(auto ids, ResolveClients(tx, members));
      for (auto cid : std::set<std::int64_t>(ids.begin(), ids.end())) {
        DEPOT_RETURN_IF_ERROR(
            tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?)",
                    {id, cid})
                .status());
        ++count;
      }
    }
    return PostMessage(
        ctx, tx, core::msg::kCollectionChanged, {},
        {{"collection", name}, {"change", "created"}, {"members", std::to_string(count)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"name", name}, {"kind", rule ? "rule" : "static"}, {"members", count}};
}

core::Result<Json> ListCollections(SiteContext& ctx) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query(
          "SELECT c.name, c.kind, c.rule, c.description, (SELECT COUNT(*) FROM "
          "collection_members m WHERE m.collection_id = c.id), (SELECT COUNT(*) FROM deployments d "
          "WHERE d.collection_id = c.id AND d.cancelled_at IS NULL) FROM collections c ORDER BY "
          "c.name"));
  Json out = Json::array();
  for (const auto& r : rows) {
    out.push_back({{"name", r.Text(0)},
                   {"kind", r.Text(1)},
                   {"rule", r.Text(2)},
                   {"description", r.Text(3)},
                   {"members", r.Int(4)},
                   {"deployments", r.Int(5)}});
  }
  return Json{{"collections", out}};
}

core::Result<Json> ShowCollection(SiteContext& ctx, const std::string& name) {
  auto c = ctx.db->QueryRow("SELECT id, kind, rule, description FROM collections WHERE name = ?",
                            {name});
  if (!c.ok()) {
    if (c.status().IsNotFound())
      return Status::NotFound("no collection named " + name + " (see `depot collection list`)");
    return c.status();
  }
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query("SELECT cl.uid, cl.name FROM clients cl JOIN collection_members m ON "
                    "m.client_id = cl.id WHERE m.collection_id = ? ORDER BY cl.name",
                    {c->Int(0)}));
  Json members = Json::array();
  for (const auto& r : rows) members.push_back({{"id", r.Text(0)}, {"name", r.Text(1)}});
  return Json{{"name", name},
              {"kind", c->Text(1)},
              {"rule", c->Text(2)},
              {"description", c->Text(3)},
              {"members", members}};
}

core::Result<Json> DeleteCollection(SiteContext& ctx, const std::string& name) {
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    auto c = tx.QueryRow("SELECT id FROM collections WHERE name = ?", {name});
    if (!c.ok())
      return c.status().IsNotFound() ? Status::NotFound("no collection named " + name) : c.status();
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t deps,
        tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE collection_id = ? AND "
                    "cancelled_at IS NULL",
                    {c->Int(0)}));
    if (deps > 0) {
      return Status::InvalidArgument(
          "collection " + name + " has " + std::to_string(deps) +
          " active deployments; cancel them first (`depot deployment cancel`)");
    }
    DEPOT_ASSIGN_OR_RETURN(
        std::int64_t any,
        tx.QueryInt("SELECT COUNT(*) FROM deployments WHERE collection_id = ?", {c->Int(0)}));
    if (any > 0) {
      return Status::InvalidArgument(
          "collection " + name + " is referenced by " + std::to_string(any) +
          " cancelled deployments, kept for their history; it cannot be deleted");
    }
    DEPOT_RETURN_IF_ERROR(tx.Exec("DELETE FROM collections WHERE id = ?", {c->Int(0)}).status());
    return PostMessage(ctx, tx, core::msg::kCollectionChanged, {},
                       {{"collection", name}, {"change", "deleted"}, {"members", "0"}});
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
    if (!c.ok())
      return c.status().IsNotFound() ? Status::NotFound("no collection named " + name) : c.status();
    std::int64_t id = c->Int(0);
    if (rule) {
      if (!add.empty() || !remove.empty())
        return Status::InvalidArgument("change either the rule or the members, not both");
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("UPDATE collections SET kind = 'rule', rule = ? WHERE id = ?", {rule->text(), id})
              .status());
      DEPOT_ASSIGN_OR_RETURN(count, EvaluateRule(tx, id, *rule));
    } else {
      if (c->Text(1) != "static") {
        return Status::InvalidArgument("collection " + name +
                                       " is computed from its rule; change the rule instead");
      }
      DEPOT_ASSIGN_OR_RETURN(auto add_ids, ResolveClients(tx, add));
      DEPOT_ASSIGN_OR_RETURN(auto remove_ids, ResolveClients(tx, remove));
      for (auto cid : add_ids) {
        DEPOT_RETURN_IF_ERROR(tx.Exec("INSERT INTO collection_members (collection_id, client_id) "
                                      "VALUES (?, ?) ON CONFLICT "
                                      "(collection_id, client_id) DO NOTHING",
                                      {id, cid})
                                  .status());
      }
      for (auto cid : remove_ids) {
        DEPOT_RETURN_IF_ERROR(
            tx.Exec("DELETE FROM collection_members WHERE collection_id = ? AND client_id = ?",
                    {id, cid})
                .status());
      }
      DEPOT_ASSIGN_OR_RETURN(
          count,
          tx.QueryInt("SELECT COUNT(*) FROM collection_members WHERE collection_id = ?", {id}));
    }
    return PostMessage(ctx, tx, core::msg::kCollectionChanged, {},
                       {{"collection", name},
                        {"change", rule ? "rule changed" : "members changed"},
                        {"members", std::to_string(count)}});
  });
  if (!s.ok()) return s;
  ctx.Changed();
  return Json{{"name", name}, {"members", count}};
}

}  // namespace depot::site
