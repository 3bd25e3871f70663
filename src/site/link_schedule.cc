#include "site/link_schedule.h"

#include "site/deployments.h"
#include "site/distribution.h"

namespace depot::site {

using core::Status;

core::Result<LinkSchedule> ReadLinkSchedule(ObjectReader& r,
                                            const std::function<Status()>& finish) {
  LinkSchedule s;
  s.max_rate = r.OptInt("max_rate", 0, INT64_MAX);
  const Json* windows = r.Raw("windows");
  DEPOT_RETURN_IF_ERROR(finish());
  if (windows != nullptr) {
    DEPOT_ASSIGN_OR_RETURN(Json w, ParseWindows(windows));
    s.windows = std::move(w);
  }
  return s;
}

Status StoreLinkSchedule(catalog::Tx& tx, const char* table, std::int64_t id,
                         const LinkSchedule& s) {
  const std::string t = table;
  if (s.max_rate) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE " + t + " SET max_rate = ? WHERE id = ?", {*s.max_rate, id}).status());
  }
  if (s.windows) {
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE " + t + " SET windows = ? WHERE id = ?", {Dump(*s.windows), id}).status());
  }
  return Status::Ok();
}

Json LinkScheduleJson(std::int64_t max_rate, const std::string& windows_text) {
  Json windows = Json::parse(windows_text, nullptr, false);
  return {{"max_rate", max_rate}, {"windows", windows.is_array() ? windows : Json::array()}};
}

core::Result<Json> ChangeDp(SiteContext& ctx, const std::string& name, const Json& body) {
  ObjectReader r(body, "DP change");
  DEPOT_ASSIGN_OR_RETURN(LinkSchedule sched, ReadLinkSchedule(r, [&] { return r.Finish(); }));
  Json schedule;
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    DEPOT_ASSIGN_OR_RETURN(const std::int64_t id, DpId(tx, name));
    DEPOT_RETURN_IF_ERROR(StoreLinkSchedule(tx, "dps", id, sched));
    DEPOT_ASSIGN_OR_RETURN(auto now,
                           tx.QueryRow("SELECT max_rate, windows FROM dps WHERE id = ?", {id}));
    schedule = LinkScheduleJson(now.Int(0), now.Text(1));
    return Status::Ok();
  });
  if (!s.ok()) return s;
  ctx.Changed();  // the assignment carries the schedule: parked polls answer now
  return Json{{"name", name}, {"schedule", schedule}};
}

}  // namespace depot::site
