#include "site/api.h"
#include "site/api_routes.h"
#include "site/auth.h"
#include "site/membership.h"
#include "site/rules.h"

namespace depot::site {

using core::Status;

namespace {

// GET /api/v1/changes?since=R&wait=S: the console's one push stream per tab.
core::Result<Json> ChangesRoute(ApiCall& c) {
  // The topic's sequence first, then the revision: a change in between wakes the park.
  const std::uint64_t seq = c.ctx.server != nullptr ? c.ctx.server->Sequence(kConsoleTopic) : 0;
  const std::int64_t revision = c.ctx.console_revision.load();
  std::int64_t since = 0;
  if (auto v = c.req.QueryParam("since")) {
    std::optional<std::int64_t> p = ParseDecimal(*v, 0, INT64_MAX);
    if (!p) return Status::InvalidArgument("since `" + v->substr(0, 40) + "` is not a revision");
    since = *p;
  }
  if (revision <= since && ParkUntilChange(c.ctx, c.req, seq, 25, c.resp, kConsoleTopic)) {
    c.handled = true;
    return Json();
  }
  return Json{{"revision", revision}, {"changed", revision > since}};
}

// POST /api/v1/rules/preview {"rule": "..."}: the clients a rule matches now, for a
// collection being written (nothing is stored): {"valid": true, "count", "clients"
// (the first 50)}, or {"valid": false, "error"} for a rule that does not parse.
core::Result<Json> PreviewRoute(ApiCall& c) {
  constexpr std::size_t kShown = 50;
  c.quiet = true;
  DEPOT_ASSIGN_OR_RETURN(Json body, c.Body());
  ObjectReader r(body, "rule preview");
  std::string text = r.String("rule", true, 4096);
  DEPOT_RETURN_IF_ERROR(r.Finish());
  auto rule = Rule::Parse(text);
  // Half a rule, as typed, is not a failed request: the answer says what is wrong.
  if (!rule.ok()) return Json{{"valid", false}, {"error", rule.status().message()}};
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      c.ctx.db->Query("SELECT uid, name, attributes FROM clients ORDER BY name, uid"));
  Json shown = Json::array();
  std::int64_t count = 0;
  for (const auto& row : rows) {
    if (!rule->Matches(LoadAttributes(row.Text(2)))) continue;
    if (++count <= static_cast<std::int64_t>(kShown))
      shown.push_back({{"id", row.Text(0)}, {"name", row.Text(1)}});
  }
  return Json{{"valid", true}, {"rule", rule->text()}, {"count", count}, {"clients", shown}};
}

}  // namespace

void AddConsoleRoutes(const AddRouteFn& add) {
  add("GET", "/api/v1/whoami", Role::kReadOnly, 0, [](ApiCall& c) -> core::Result<Json> {
    Json out = {{"role", std::string(RoleName(c.who.role))},
                {"name", c.who.name},
                {"token_id", c.who.token_id},
                {"site", c.ctx.config.code},
                {"revision", c.ctx.console_revision.load()}};
    if (c.ctx.config.is_child()) out["parent"] = c.ctx.config.parent_url;
    return out;
  });
  add("GET", "/api/v1/changes", Role::kReadOnly, 0, ChangesRoute);
  add("GET", "/api/v1/processes", Role::kReadOnly, 0, [](ApiCall& c) -> core::Result<Json> {
    // The processes serving this site (docs/scale-out.md), newest first.
    DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows,
                           c.ctx.db->Query("SELECT id, host, pid, url, started_at, seen_at FROM "
                                           "site_processes ORDER BY started_at DESC, id"));
    Json out = Json::array();
    for (const auto& r : rows) {
      out.push_back({{"id", r.Text(0)},
                     {"host", r.Text(1)},
                     {"pid", r.Int(2)},
                     {"url", r.Text(3)},
                     {"started", FormatMs(r.Int(4))},
                     {"seen", FormatMs(r.Int(5))},
                     {"this", r.Text(0) == c.ctx.process_id}});
    }
    return Json{{"processes", out}};
  });
  add("POST", "/api/v1/rules/preview", Role::kReadOnly, kSmallBody, PreviewRoute);
}

}  // namespace depot::site
