#include "agent/policy_sync.h"

#include <nlohmann/json.hpp>
#include <set>

#include "agent/enrollment.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/messages.h"
#include "store/manifest.h"

namespace depot::agent {

using core::Status;
using Json = nlohmann::json;

core::Result<std::vector<PolicyItem>> ParsePolicy(std::string_view body,
                                                  core::Duration* poll_interval) {
  Json policy = Json::parse(body.begin(), body.end(), nullptr, false);
  if (!policy.is_object() || !policy.contains("deployments") || !policy["deployments"].is_array()) {
    return Status::Corruption("the answer is not a policy document");
  }
  if (policy.contains("poll_interval_s") && policy["poll_interval_s"].is_number_integer()) {
    *poll_interval = std::chrono::seconds(
        std::max<std::int64_t>(1, policy["poll_interval_s"].get<std::int64_t>()));
  }
  std::vector<PolicyItem> out;
  for (const auto& item : policy["deployments"]) {
    if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer()) continue;
    PolicyItem p;
    try {
      p.id = item["id"].get<std::int64_t>();
      p.package = item.at("package").get<std::string>();
      p.package_id = item.value("package_id", "");
      p.version = item.at("version").get<std::int64_t>();
      p.manifest_id = item.value("manifest_id", "");
      p.program = item.value("program", "");
      p.kind = item.value("kind", "required");
      p.bytes = item.value("bytes", std::int64_t{0});
    } catch (const Json::exception& e) {
      core::Log(core::LogLevel::kWarn, "agent.bad_policy_item", {{"error", e.what()}});
      continue;
    }
    if (!store::ValidatePackageName(p.package).ok() || p.version < 1) continue;
    p.policy_json = core::DumpJson(item);
    out.push_back(std::move(p));
  }
  return out;
}

PolicySync::PolicySync(StateStore* state, core::Clock* clock, const AgentConfig* config)
    : state_(state),
      clock_(clock),
      config_(config),
      failures_(clock, {std::chrono::seconds(1), std::chrono::minutes(10)}) {}

core::Duration PolicySync::poll_interval() const {
  return config_->poll_interval.count() > 0 ? config_->poll_interval : site_interval_;
}

Status PolicySync::MaybePoll(http::Client* site, bool force, std::vector<std::int64_t>* stop) {
  const core::MonoTime now = clock_->Monotonic();
  if (!force && next_poll_ && now < *next_poll_) return Status::Ok();
  SyncAttributes(state_, site, *config_);
  const bool holding = long_poll_ && config_->long_poll.count() > 0 && !etag_.empty();
  Status s = Poll(site, stop);
  if (s.ok()) {
    failures_.Succeeded();
    // A held poll waited at the site already: the next one may follow at once.
    next_poll_ = holding ? now : now + poll_interval();
  } else {
    // Backs off, but never polls less often than the interval says.
    next_poll_ = now + std::min(failures_.Failed(), poll_interval());
    core::Log(core::LogLevel::kWarn, "agent.poll_failed", {{"error", s.ToString()}});
  }
  return s;
}

Status PolicySync::Poll(http::Client* site, std::vector<std::int64_t>* stop) {
  std::vector<std::string> headers;
  if (!etag_.empty()) headers.push_back("If-None-Match: " + etag_);
  std::string target = "/api/v1/agent/policy";
  long timeout_s = -1;
  if (long_poll_ && config_->long_poll.count() > 0 && !etag_.empty()) {
    const auto wait = std::chrono::duration_cast<std::chrono::seconds>(config_->long_poll).count();
    target += "?wait=" + std::to_string(wait);
    timeout_s = wait + 30;
  }
  DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r,
                         site->Do("GET", target, {}, "", headers, timeout_s));
  if (const std::string* date = r.GetHeader("date")) {
    // Whole seconds: enough to tell a clock days off from one that is right.
    if (auto t = http::ParseHttpDate(*date)) site_clock_offset_ = *t - clock_->Now();
  }
  if (r.status == 304) return Status::Ok();
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, "policy from " + config_->site));
  auto items = ParsePolicy(r.body, &site_interval_);
  if (!items.ok()) return items.status().WithContext("policy from " + config_->site);
  bool deferred = false;
  DEPOT_RETURN_IF_ERROR(Reconcile(*items, stop, &deferred));
  // A version change left for later must not be answered 304 by the next poll.
  const std::string* tag = r.GetHeader("etag");
  etag_ = tag != nullptr && !deferred ? *tag : "";
  return Status::Ok();
}

Status PolicySync::Reconcile(const std::vector<PolicyItem>& items, std::vector<std::int64_t>* stop,
                             bool* deferred) {
  std::set<std::int64_t> present;
  for (const PolicyItem& p : items) {
    present.insert(p.id);
    DEPOT_ASSIGN_OR_RETURN(std::optional<Deployment> existing, state_->Get(p.id));
    if (!existing) {
      DEPOT_RETURN_IF_ERROR(state_->Insert(p));
      continue;
    }
    if (existing->version == p.version) {
      DEPOT_RETURN_IF_ERROR(state_->Refresh(p));
      continue;
    }
    // Another version: start over, unless a program is running (it finishes first;
    // the next poll brings the new version).
    Changes c;
    c.new_version = p;
    DEPOT_ASSIGN_OR_RETURN(auto to, state_->Transition(p.id, Event::kNewVersion, c, {}));
    if (to) {
      stop->push_back(p.id);
    } else {
      *deferred = true;  // ask again next poll
    }
  }
  // Deployments that left the policy: stop at once, purge later.
  DEPOT_ASSIGN_OR_RETURN(std::vector<Deployment> live, state_->Live());
  for (const Deployment& d : live) {
    if (present.count(d.id)) continue;
    stop->push_back(d.id);
    catalog::OutboxMessage m{core::msg::kAgentDeploymentRemoved,
                             core::UnixMillis(clock_->Now()),
                             d.package,
                             d.version,
                             d.id,
                             {}};
    DEPOT_RETURN_IF_ERROR(state_->MarkRemoved(d.id, m));
    core::Log(core::LogLevel::kInfo, "agent.deployment_removed",
              {{"deployment", std::to_string(d.id)}, {"package", d.package}});
  }
  return Status::Ok();
}

}  // namespace depot::agent
