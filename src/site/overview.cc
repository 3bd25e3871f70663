#include "site/overview.h"

#include "site/children.h"
#include "site/deployments.h"
#include "site/distribution.h"

namespace depot::site {

core::Result<Json> StatusOverview(SiteContext& ctx) {
  // Sightings not yet written (they are flushed in batches): a client or DP that just
  // checked in must not be listed as silent.
  FlushSeen(ctx);
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows versions,
      ctx.db->Query(
          "SELECT p.name, v.version, v.bytes, (SELECT COUNT(*) FROM dp_records r WHERE "
          "r.version_id = v.id), "
          "(SELECT COUNT(*) FROM dp_records r WHERE r.version_id = v.id AND r.state = 'ready'), "
          "(SELECT COUNT(*) FROM dp_records r WHERE r.version_id = v.id AND r.state = 'failed') "
          "FROM versions v "
          "JOIN packages p ON p.id = v.package_id WHERE v.state = 'active' AND p.deleted_at IS "
          "NULL ORDER BY p.name, "
          "v.version"));
  Json packages = Json::array();
  for (const auto& v : versions) {
    packages.push_back(
        {{"package", v.Text(0)},
         {"version", v.Int(1)},
         {"bytes", v.Int(2)},
         {"dps", {{"assigned", v.Int(3)}, {"ready", v.Int(4)}, {"failed", v.Int(5)}}}});
  }
  DEPOT_ASSIGN_OR_RETURN(Json dps, ListDps(ctx));
  DEPOT_ASSIGN_OR_RETURN(Json not_ready, DpsNotReady(ctx));
  DEPOT_ASSIGN_OR_RETURN(Json deployments, ListDeployments(ctx));
  Json active = Json::array();
  for (auto& d : deployments["deployments"]) {
    if (d["state"] == "active") active.push_back(d);
  }
  std::int64_t offline_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(ctx.config.client_offline_after)
          .count();
  DEPOT_ASSIGN_OR_RETURN(std::int64_t clients, ctx.db->QueryInt("SELECT COUNT(*) FROM clients"));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows offline,
                         ctx.db->Query("SELECT uid, name, last_seen_at FROM clients WHERE "
                                       "last_seen_at IS NULL OR last_seen_at < ? "
                                       "ORDER BY last_seen_at LIMIT 100",
                                       {ctx.NowMs() - offline_ms}));
  DEPOT_ASSIGN_OR_RETURN(
      std::int64_t offline_count,
      ctx.db->QueryInt(
          "SELECT COUNT(*) FROM clients WHERE last_seen_at IS NULL OR last_seen_at < ?",
          {ctx.NowMs() - offline_ms}));
  Json off = Json::array();
  for (const auto& c : offline) {
    off.push_back({{"id", c.Text(0)},
                   {"name", c.Text(1)},
                   {"last_seen", c.IsNull(2) ? "" : FormatMs(c.Int(2))}});
  }
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows queue,
                         ctx.db->Query("SELECT state, COUNT(*) FROM dp_records GROUP BY state"));
  Json q = {{"pending", 0}, {"syncing", 0}, {"ready", 0}, {"failed", 0}, {"verifying", 0}};
  for (const auto& x : queue) q[x.Text(0)] = x.Int(1);
  DEPOT_ASSIGN_OR_RETURN(Json hierarchy, HierarchyOverview(ctx));
  return Json{{"site", {{"code", ctx.config.code}, {"url", ctx.public_url}}},
              {"hierarchy", hierarchy},
              {"packages", packages},
              {"dps", dps["dps"]},
              {"dps_not_ready", not_ready},
              {"distribution_queue", q},
              {"deployments", active},
              {"clients", {{"total", clients}, {"offline", offline_count}, {"offline_list", off}}}};
}

}  // namespace depot::site
