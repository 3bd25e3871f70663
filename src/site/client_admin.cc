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

// A client search, parsed once: "key=value" is that attribute holding `value`
// (case-insensitive substring); other text is a substring of the name, id or any
// attribute value; empty matches every client.
class Search {
 public:
  explicit Search(const std::string& q) {
    const auto eq = q.find('=');
    if (eq != std::string::npos && eq > 0) {
      key_ = q.substr(0, eq);
      needle_ = Lower(q.substr(eq + 1));
    } else {
      needle_ = Lower(q);
    }
    all_ = q.empty();
  }

  bool Matches(const std::string& name, const std::string& id, const Json& attrs) const {
    if (all_) return true;
    if (!key_.empty()) return attrs.contains(key_) && Holds(attrs[key_]);
    if (Holds(name) || Holds(id)) return true;
    for (const auto& [k, v] : attrs.items())
      if (Holds(v)) return true;
    return false;
  }

 private:
  bool Holds(const Json& v) const {
    if (v.is_array()) {
      for (const auto& x : v)
        if (Holds(x)) return true;
      return false;
    }
    return v.is_string() && Lower(v.get<std::string>()).find(needle_) != std::string::npos;
  }

  std::string key_, needle_;
  bool all_ = false;
};

}  // namespace

core::Result<Json> ListClients(SiteContext& ctx, const std::string& q, std::int64_t limit) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                         ctx.db->Query("SELECT uid, name, address, enrolled_at, last_seen_at, "
                                       "attributes FROM clients ORDER BY name, uid"));
  std::int64_t offline_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.client_offline_after)
          .count();
  std::int64_t now = ctx.NowMs();
  const Search search(q);
  Json out = Json::array();
  std::int64_t total = 0, matched = 0;
  // Whether the client is listed: counted when it matches, its row built only when
  // it is within `limit` (a fleet's search sends, and builds, only what is shown).
  auto keep = [&](const std::string& name, const std::string& id, const Json& attrs) {
    ++total;
    if (!search.Matches(name, id, attrs)) return false;
    ++matched;
    return limit <= 0 || matched <= limit;
  };
  for (const auto& r : rows) {
    Json attrs = StoredAttributesJson(r.Text(5));
    if (!keep(r.Text(1), r.Text(0), attrs)) continue;
    out.push_back({{"id", r.Text(0)},
                   {"name", r.Text(1)},
                   {"address", r.Text(2)},
                   {"enrolled", FormatMs(r.Int(3))},
                   {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
                   {"online", !r.IsNull(4) && now - r.Int(4) < offline_ms},
                   {"attributes", std::move(attrs)},
                   {"site", ""}});
  }
  // Clients of the subtree, as the child sites reported them (docs/hierarchy.md).
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows tree,
                         ctx.db->Query("SELECT site, uid, name, enrolled_at, last_seen_at, "
                                       "attributes FROM tree_clients ORDER BY site, name, uid"));
  for (const auto& r : tree) {
    Json attrs = StoredAttributesJson(r.Text(5));
    if (!keep(r.Text(2), r.Text(1), attrs)) continue;
    out.push_back({{"id", r.Text(1)},
                   {"name", r.Text(2)},
                   {"site", r.Text(0)},
                   {"enrolled", r.IsNull(3) ? "" : FormatMs(r.Int(3))},
                   {"last_seen", r.IsNull(4) ? "" : FormatMs(r.Int(4))},
                   {"online", !r.IsNull(4) && now - r.Int(4) < offline_ms},
                   {"attributes", std::move(attrs)}});
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
  Json attrs = StoredAttributesJson(r.Text(5));
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
              {"attributes", attrs},
              {"collections", collections},
              {"deployments", reports},
              {"policy", policy}};
}

}  // namespace depot::site
