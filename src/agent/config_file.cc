#include "agent/config_file.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json_text.h"
#include "core/path.h"

namespace depot::agent {

using core::Status;
using Json = nlohmann::json;

namespace {

constexpr char kConfigFile[] = "agent.json";

core::Result<core::Duration> DurFrom(const Json& j, const char* key, core::Duration fallback) {
  auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (!it->is_string())
    return Status::InvalidArgument(std::string(key) + " must be a duration string");
  return core::ParseDuration(it->get<std::string>());
}

}  // namespace

Status SaveAgentConfig(core::Env* env, const std::string& data_dir, const AgentConfig& c,
                       const Identity& id) {
  Json tags = Json::object();
  for (const auto& [k, v] : c.tags) tags[k] = v;
  Json j = {{"site", c.site},
            {"more_sites", c.more_sites},
            {"ca", c.ca},
            {"name", c.name},
            {"tags", tags},
            {"client", id.client},
            {"token", id.token},
            {"site_code", id.site_code},
            {"poll_interval", core::FormatDuration(c.poll_interval)},
            {"long_poll", core::FormatDuration(c.long_poll)},
            {"cache_max_bytes", c.cache_max_bytes},
            {"purge_grace", core::FormatDuration(c.purge_grace)},
            {"parallel", c.parallel},
            {"max_rate", c.max_rate},
            {"stall_timeout", core::FormatDuration(c.stall_timeout)},
            {"retry_base", core::FormatDuration(c.retry_base)},
            {"retry_max", core::FormatDuration(c.retry_max)},
            {"max_attempts", c.max_attempts},
            {"source_penalty", core::FormatDuration(c.source_penalty)}};
  return env->WriteFileIfChanged(core::JoinPath(data_dir, kConfigFile), j.dump(2) + "\n", 0600);
}

Status LoadAgentConfig(core::Env* env, const std::string& data_dir, AgentConfig* c, Identity* id) {
  std::string path = core::JoinPath(data_dir, kConfigFile);
  DEPOT_ASSIGN_OR_RETURN(std::string text, env->ReadFile(path, 1 << 20));
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object())
    return Status::Corruption(path + " is not a JSON object; remove it and enroll again");
  try {
    c->site = j.value("site", "");
    c->more_sites = j.value("more_sites", std::vector<std::string>{});
    c->ca = j.value("ca", "");
    c->name = j.value("name", "");
    if (j.contains("tags") && j["tags"].is_object()) {
      for (auto it = j["tags"].begin(); it != j["tags"].end(); ++it)
        c->tags[it.key()] = it->get<std::string>();
    }
    id->client = j.value("client", "");
    id->token = j.value("token", "");
    id->site_code = j.value("site_code", "");
    c->cache_max_bytes = j.value("cache_max_bytes", c->cache_max_bytes);
    c->parallel = j.value("parallel", c->parallel);
    c->max_rate = j.value("max_rate", c->max_rate);
    c->max_attempts = j.value("max_attempts", c->max_attempts);
  } catch (const Json::exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  struct {
    const char* key;
    core::Duration* out;
  } durs[] = {{"poll_interval", &c->poll_interval},  {"long_poll", &c->long_poll},
              {"purge_grace", &c->purge_grace},      {"stall_timeout", &c->stall_timeout},
              {"retry_base", &c->retry_base},        {"retry_max", &c->retry_max},
              {"source_penalty", &c->source_penalty}};
  for (auto& d : durs) {
    auto v = DurFrom(j, d.key, *d.out);
    if (!v.ok()) return v.status().WithContext(path);
    *d.out = *v;
  }
  return Status::Ok();
}

core::Result<AgentConfig> ApplyOverrides(AgentConfig c, const AgentOverrides& o) {
  if (!o.site.empty()) c.site = o.site;
  if (o.more_sites) c.more_sites = *o.more_sites;
  if (!o.ca.empty()) {
    std::error_code ec;
    auto absolute = std::filesystem::absolute(o.ca, ec);
    c.ca = ec ? o.ca : absolute.string();
  }
  if (!o.name.empty()) c.name = o.name;
  for (const auto& [k, v] : o.tags) c.tags[k] = v;
  auto take = [](auto& into, const auto& from) {
    if (from) into = *from;
  };
  take(c.poll_interval, o.poll_interval);
  take(c.long_poll, o.long_poll);
  if (c.long_poll > std::chrono::seconds(110))
    return Status::InvalidArgument("long_poll must be at most 110s (the site holds a poll 120 s)");
  take(c.purge_grace, o.purge_grace);
  take(c.stall_timeout, o.stall_timeout);
  take(c.retry_base, o.retry_base);
  take(c.retry_max, o.retry_max);
  take(c.source_penalty, o.source_penalty);
  take(c.cache_max_bytes, o.cache_max_bytes);
  take(c.max_rate, o.max_rate);
  take(c.parallel, o.parallel);
  take(c.max_attempts, o.max_attempts);
  if (c.parallel < 1 || c.parallel > 64)
    return Status::InvalidArgument("parallel must be from 1 to 64");
  if (c.max_attempts < 1) return Status::InvalidArgument("max_attempts must be at least 1");
  if (c.retry_max < c.retry_base)
    return Status::InvalidArgument("retry_max must not be below retry_base");
  if (c.site.empty()) return Status::InvalidArgument("no site: pass --site URL on the first start");
  while (!c.site.empty() && c.site.back() == '/') c.site.pop_back();
  return c;
}

}  // namespace depot::agent
