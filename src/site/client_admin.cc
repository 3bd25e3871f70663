#include "site/client_admin.h"

#include <cctype>

#include "site/agent_api.h"
#include "site/membership.h"

namespace depot::site {

using core::Status;

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Whether a listed client matches a search: "key=value" is that attribute holding
// `value` (case-insensitive substring); other text is a substring of its name, id or
// any attribute value.
bool MatchesSearch(const Json& client, const std::string& q) {
  if (q.empty()) return true;
  auto holds = [](const Json& v, const std::string& needle) {
    if (v.is_array()) {
      for (const auto& x : v)
        if (x.is_string() && Lower(x.get<std::string>()).find(needle) != std::string::npos)
          return true;
      return false;
    }
    return v.is_string() && Lower(v.get<std::string>()).find(needle) != std::string::npos;
  };
  const Json& attrs = client["attributes"];
  const auto eq = q.find('=');
  if (eq != std::string::npos && eq > 0) {
    const std::string key = q.substr(0, eq);
    return attrs.contains(key) && holds(attrs[key], Lower(q.substr(eq + 1)));
  }
  const std::string needle = Lower(q);
  if (holds(client["name"], needle) || holds(client["id"], needle)) return true;
  for (const auto& [k, v] : attrs.items())
    if (holds(v, needle)) return true;
  return false;
}

}  // namespace

core::Result<Json> ListClients(SiteContext& ctx, const std::string& q, std::int64_t limit) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT uid, name, address, enrolled_at, last_seen_at, "
                                       "attributes FROM clients ORDER BY name, uid"));
  std::int64_t offline_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.client_offline_after)
          .count();
  std::int64_t now = ctx.NowMs();
  Json out = Json::array();
  std::int64_t total = 0, matched = 0;
  auto add = [&](Json c) {
    ++total;
    if (!MatchesSearch(c, q)) return;
    if (limit <= 0 || matched < limit) out.push_back(std::move(c));
    ++matched;
  };
  for (const auto& r : rows) {
    Json attrs = Json::parse(r.Text(5), nullptr, false);
    add({{"id", r.Text(0)},
         {"name", r.Text(1)},
         {"address", r.Text(2)},
         {"enrolled", FormatMs(r.Int(3))},
         {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
         {"online", !r.IsNull(4) && now - r.Int(4) < offline_ms},
         {"attributes", attrs.is_discarded() ? Json::object() : attrs},
         {"site", ""}});
  }
  // Clients of the subtree, as the child sites reported them (docs/hierarchy.md).
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows tree,
                         ctx.db->Query("SELECT site, uid, name, enrolled_at, last_seen_at, "
                                       "attributes FROM tree_clients ORDER BY site, name, uid"));
  for (const auto& r : tree) {
    Json attrs = Json::parse(r.Text(5), nullptr, false);
    add({{"id", r.Text(1)},
         {"name", r.Text(2)},
         {"site", r.Text(0)},
         {"enrolled", r.IsNull(3) ? "" : FormatMs(r.Int(3))},
         {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
         {"online", !r.IsNull(4) && now - r.Int(4) < offline_ms},
         {"attributes", attrs.is_discarded() ? Json::object() : attrs}});
  }
  return Json{{"clients", out}, {"total", total}, {"matched", matched}};
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
  DEPOT_ASSIGN_OR_RETURN(
      auto r, ctx.db->QueryRow("SELECT uid, name, address, enrolled_at, last_seen_at, attributes "
                               "FROM clients WHERE id = ?",
                               {id}));
  Json attrs = Json::parse(r.Text(5), nullptr, false);
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows cols,
      ctx.db->Query("SELECT c.name FROM collections c JOIN collection_members m ON "
                    "m.collection_id = c.id WHERE m.client_id = ? ORDER BY c.name",
                    {id}));
  Json collections = Json::array();
  for (const auto& c : cols) collections.push_back(c.Text(0));
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows reps,
      ctx.db->Query("SELECT deployment_id, state, version, exit_code, detail, updated_at "
                    "FROM client_deployments WHERE client_id = ? ORDER BY deployment_id",
                    {id}));
  Json reports = Json::array();
  for (const auto& x : reps) {
    Json j = {{"deployment", x.Int(0)},
              {"state", x.Text(1)},
              {"detail", x.Text(4)},
              {"updated", FormatMs(x.Int(5))}};
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

}  // namespace depot::site
