#include "site/messages.h"

#include <algorithm>

#include "core/clock.h"
#include "core/messages.h"
#include "site/dp_reports.h"
#include "site/upward.h"

namespace depot::site {

using core::Status;

namespace {

// A sender's clock may run this far ahead of the site's before its times are
// corrected (clocks drift; NTP keeps them within well under a second).
constexpr std::int64_t kClockTolerance = 2 * 60 * 1000;

// "8d 3h", "5h 2m", "3m 10s": a clock difference for people.
std::string Span(std::int64_t ms) {
  std::int64_t s = ms / 1000;
  if (s >= 86400) return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
  if (s >= 3600) return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
}

Json ParamsJson(const std::map<std::string, std::string>& params) {
  Json j = Json::object();
  for (const auto& [k, v] : params) j[k] = v;
  return j;
}

Status Insert(SiteContext& ctx, catalog::Tx& tx, int code, const core::MessageSpec& spec,
              const std::string& source, std::optional<std::int64_t> seq,
              const std::string& dedup_key, std::int64_t at, const MessageSubject& subject,
              const std::map<std::string, std::string>& params) {
  std::string text = core::FormatMessage(code, params);
  std::string params_json = Dump(ParamsJson(params));
  catalog::Value dedup = dedup_key.empty() ? catalog::Value() : catalog::Value(dedup_key);
  auto opt_text = [](const std::string& s) {
    return s.empty() ? catalog::Value() : catalog::Value(s);
  };
  std::string sql =
      "INSERT INTO messages (code, severity, component, source, source_seq, dedup_key, at, "
      "last_at, count, package, version, dp, client, deployment, params, text) VALUES (?, ?, ?, "
      "?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)";
  if (!dedup_key.empty()) {
    sql +=
        " ON CONFLICT (dedup_key) DO UPDATE SET count = messages.count + 1, last_at = "
        "excluded.last_at, params = excluded.params, text = excluded.text";
  } else if (seq) {
    sql += " ON CONFLICT (source, source_seq) DO NOTHING";
  }
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows id,
      tx.Query(
          sql + " RETURNING id",
          {code, std::string(core::SeverityName(spec.severity)), std::string(spec.component),
           source, seq, dedup, at, at, opt_text(subject.package), subject.version,
           opt_text(subject.dp), opt_text(subject.client), subject.deployment, params_json, text}));
  // A re-sent message (DO NOTHING) returns no row and changes nothing to report up.
  if (id.empty()) return Status::Ok();
  return MarkUp(ctx, tx, "msg", std::to_string(id[0].Int(0)));
}

// One message of a batch from a DP or an agent, checked.
struct Item {
  std::int64_t seq, code, at;
  MessageSubject subject;
  std::map<std::string, std::string> params;
  const core::MessageSpec* spec;
};

// Reads message `i` of a batch from `component`; the subject's DP or client comes
// from the sender's credential (`dp_name`, `client_uid`), never from the message.
core::Result<Item> ParseItem(const Json& m, std::size_t i, const std::string& component,
                             const std::string& dp_name, const std::string& client_uid,
                             std::int64_t now) {
  ObjectReader mr(m, "message " + std::to_string(i));
  Item it;
  it.seq = mr.Int("seq", true, 1, INT64_MAX);
  it.code = mr.Int("code", true, 1, 9999);
  it.at = mr.Int("time_ms", false, 0, INT64_MAX, now);
  it.subject.package = mr.String("package", false, 64);
  it.subject.version = mr.OptInt("version", 1, INT64_MAX);
  it.subject.deployment = mr.OptInt("deployment", 1, INT64_MAX);
  const Json* params = mr.Raw("params");
  DEPOT_RETURN_IF_ERROR(mr.Finish());
  if (params != nullptr) {
    if (!params->is_object() || params->size() > 32) {
      return Status::InvalidArgument("message " + std::to_string(i) +
                                     ": params must be an object of at most 32 strings");
    }
    for (auto p = params->begin(); p != params->end(); ++p) {
      if (!p->is_string() || p.key().size() > 64 ||
          p->get_ref<const std::string&>().size() > 4096) {
        return Status::InvalidArgument("message " + std::to_string(i) + ": param `" + p.key() +
                                       "` must be a string of at most 4096 bytes");
      }
      it.params[p.key()] = p->get<std::string>();
    }
  }
  it.spec = core::FindMessage(static_cast<int>(it.code));
  if (it.spec == nullptr || it.spec->component != component) {
    return Status::InvalidArgument("message " + std::to_string(i) + ": code " +
                                   std::to_string(it.code) + " is not a " + component +
                                   " message (see docs/messages.md)");
  }
  // The sender's identity comes from its credential, never from the message.
  it.subject.dp = dp_name;
  it.subject.client = client_uid;
  if (!dp_name.empty()) it.params["dp"] = dp_name;
  if (!client_uid.empty()) it.params["client"] = client_uid;
  if (!it.subject.package.empty()) it.params["package"] = it.subject.package;
  if (it.subject.version) it.params["version"] = std::to_string(*it.subject.version);
  if (it.subject.deployment) it.params["deployment"] = std::to_string(*it.subject.deployment);
  return it;
}

}  // namespace

Status PostMessage(SiteContext& ctx, catalog::Tx& tx, int code, const MessageSubject& subject,
                   const std::map<std::string, std::string>& params, const std::string& dedup_key) {
  const core::MessageSpec* spec = core::FindMessage(code);
  if (spec == nullptr)
    return Status::InvalidArgument("internal: unknown message " + std::to_string(code));
  return Insert(ctx, tx, code, *spec, "site", std::nullopt, dedup_key, ctx.NowMs(), subject,
                params);
}

core::Result<Json> IngestMessages(SiteContext& ctx, const std::string& source,
                                  const std::string& component, const std::string& dp_name,
                                  const std::string& client_uid, const Json& body) {
  ObjectReader r(body, "messages batch");
  const Json* list = r.Raw("messages");
  DEPOT_RETURN_IF_ERROR(r.Finish());
  if (list == nullptr || !list->is_array()) {
    return Status::InvalidArgument("messages batch: field `messages` must be a list");
  }
  if (list->size() > 1000) {
    return Status::InvalidArgument("messages batch: at most 1000 messages per request");
  }
  std::vector<Item> items;
  std::int64_t now = ctx.NowMs();
  for (std::size_t i = 0; i < list->size(); ++i) {
    DEPOT_ASSIGN_OR_RETURN(Item it, ParseItem((*list)[i], i, component, dp_name, client_uid, now));
    items.push_back(std::move(it));
  }
  // A time ahead of the site's is the sender's clock, not the future: the message is
  // dated when it arrived and marked, so listings stay in order and say so.
  std::int64_t ahead_ms = 0;
  for (Item& it : items) {
    if (it.at <= now + kClockTolerance) continue;
    ahead_ms = std::max(ahead_ms, it.at - now);
    it.params["reported_time"] = FormatMs(it.at);
    it.params["clock_ahead"] = Span(it.at - now);
    it.at = now;
  }
  std::int64_t accepted = 0, duplicates = 0, last_seq = 0;
  bool changed = false;  // an agent's report took a DP out of policies
  Status s = ctx.db->Transaction([&](catalog::Tx& tx) -> Status {
    accepted = duplicates = last_seq = 0;
    changed = false;
    for (const Item& it : items) {
      DEPOT_ASSIGN_OR_RETURN(
          std::int64_t exists,
          tx.QueryInt("SELECT COUNT(*) FROM messages WHERE source = ? AND source_seq = ?",
                      {source, it.seq}));
      last_seq = std::max(last_seq, it.seq);
      if (exists > 0) {
        ++duplicates;
        continue;
      }
      DEPOT_RETURN_IF_ERROR(Insert(ctx, tx, static_cast<int>(it.code), *it.spec, source, it.seq, {},
                                   it.at, it.subject, it.params));
      ++accepted;
      if (component == "agent") {
        DEPOT_RETURN_IF_ERROR(OnAgentReport(ctx, tx, client_uid, static_cast<int>(it.code),
                                            it.subject.package, it.subject.version, it.params,
                                            &changed));
      }
    }
    if (ahead_ms > 0) {
      // One record per sender whose count grows with each batch that came early.
      MessageSubject who{{}, {}, dp_name, client_uid, {}};
      std::string sender = !dp_name.empty() ? "DP " + dp_name : "client " + client_uid;
      const core::MessageSpec* spec = core::FindMessage(core::msg::kClockAhead);
      DEPOT_RETURN_IF_ERROR(Insert(ctx, tx, core::msg::kClockAhead, *spec, "site", std::nullopt,
                                   "clock-ahead:" + source, now, who,
                                   {{"sender", sender}, {"ahead", Span(ahead_ms)}}));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (changed) ctx.Changed();
  return Json{{"accepted", accepted}, {"duplicates", duplicates}, {"last_seq", last_seq}};
}

namespace {

// `since` as a time, or as a duration meaning that long ago: milliseconds since the epoch.
core::Result<std::int64_t> SinceMs(SiteContext& ctx, const std::string& since) {
  std::int64_t ms = 0;
  auto t = core::ParseUtc(since);
  if (t.ok()) {
    ms = std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
  } else {
    auto d = core::ParseDuration(since);
    if (!d.ok()) {
      return Status::InvalidArgument(
          "since must be a time like 2026-11-22T03:04:05Z or a "
          "duration like 15m (meaning: that long ago)");
    }
    ms = ctx.NowMs() - std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
  }
  return ms;
}

// The uid of the client a `client` filter names: an exact id, or a name only one client has.
core::Result<std::string> FilterClientUid(SiteContext& ctx, const std::string& name) {
  // A client id, or a name as `client show` takes it.
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query("SELECT uid FROM clients WHERE uid = ? OR name = ? LIMIT 10", {name, name}));
  if (rows.empty()) {
    return Status::NotFound("no client with id or name `" + name.substr(0, 80) +
                            "` (see `depot client list`)");
  }
  auto exact = std::find_if(rows.begin(), rows.end(),
                            [&](const catalog::Row& r) { return r.Text(0) == name; });
  if (exact != rows.end()) rows = catalog::Rows{*exact};  // an exact id wins over names
  if (rows.size() > 1) {
    std::string uids;
    for (const auto& r : rows) uids += (uids.empty() ? "" : ", ") + r.Text(0);
    return Status::InvalidArgument("several clients are named `" + name.substr(0, 80) +
                                   "`; use one of their ids: " + uids);
  }
  return rows[0].Text(0);
}

// One message record as the API shows it.
Json MessageJson(const catalog::Row& r) {
  Json m = {{"id", r.Int(0)},
            {"code", r.Int(1)},
            {"severity", r.Text(2)},
            {"component", r.Text(3)},
            {"source", r.Text(4)},
            {"time", FormatMs(r.Int(5))},
            {"last_time", FormatMs(r.Int(6))},
            {"count", r.Int(7)},
            {"text", r.Text(14)},
            {"site", r.Text(15)}};
  const core::MessageSpec* spec = core::FindMessage(static_cast<int>(r.Int(1)));
  if (spec != nullptr) m["name"] = std::string(spec->name);
  if (!r.IsNull(8)) m["package"] = r.Text(8);
  if (!r.IsNull(9)) m["version"] = r.Int(9);
  if (!r.IsNull(10)) m["dp"] = r.Text(10);
  if (!r.IsNull(11)) m["client"] = r.Text(11);
  if (!r.IsNull(12)) m["deployment"] = r.Int(12);
  Json p = Json::parse(r.Text(13), nullptr, false);
  m["params"] = p.is_discarded() ? Json::object() : p;
  return m;
}

}  // namespace

core::Result<Json> QueryMessages(SiteContext& ctx, const http::Request& req) {
  std::string sql =
      "SELECT id, code, severity, component, source, at, last_at, count, package, version, dp, "
      "client, deployment, params, text, site FROM messages WHERE 1=1";
  catalog::Params params;
  // A site of the tree ("B" also covers B's subtree); "." this site's own messages.
  if (auto v = req.QueryParam("site")) {
    if (*v == ".") {
      sql += " AND site = ''";
    } else {
      sql += " AND (site = ? OR site LIKE ?)";
      params.emplace_back(*v);
      params.emplace_back(*v + "/%");
    }
  }
  if (auto since = req.QueryParam("since")) {
    DEPOT_ASSIGN_OR_RETURN(std::int64_t ms, SinceMs(ctx, *since));
    sql += " AND last_at >= ?";
    params.emplace_back(ms);
  }
  if (auto sev = req.QueryParam("severity")) {
    core::Severity min;
    if (!core::ParseSeverity(*sev, &min)) {
      return Status::InvalidArgument("severity must be info, warning or error");
    }
    if (min == core::Severity::kWarning) sql += " AND severity IN ('warning', 'error')";
    if (min == core::Severity::kError) sql += " AND severity = 'error'";
  }
  for (const char* field : {"package", "dp", "component"}) {
    if (auto v = req.QueryParam(field)) {
      sql += std::string(" AND ") + field + " = ?";
      params.emplace_back(*v);
    }
  }
  if (auto v = req.QueryParam("client")) {
    DEPOT_ASSIGN_OR_RETURN(std::string uid, FilterClientUid(ctx, *v));
    sql += " AND client = ?";
    params.emplace_back(uid);
  }
  for (const char* field : {"deployment", "code", "version"}) {
    DEPOT_ASSIGN_OR_RETURN(auto v, IntQueryParam(req, field, 0, INT64_MAX));
    if (v) {
      sql += std::string(" AND ") + field + " = ?";
      params.emplace_back(*v);
    }
  }
  DEPOT_ASSIGN_OR_RETURN(auto limit, IntQueryParam(req, "limit", 1, 100000));
  sql += " ORDER BY last_at DESC, id DESC LIMIT ?";
  params.emplace_back(limit.value_or(1000));
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rows, ctx.db->Query(sql, params));
  Json out = Json::array();
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) {
    out.push_back(MessageJson(*it));
  }
  return Json{{"messages", out}};
}

}  // namespace depot::site
