#include "agent/enrollment.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "core/json_text.h"
#include "core/path.h"

namespace depot::agent {

using core::Status;
using Json = nlohmann::json;

namespace {

constexpr char kAgentVersion[] = "0.1.0";
constexpr char kAttributesKey[] = "attributes";

std::string PrettyOsName() {
  std::FILE* f = std::fopen("/etc/os-release", "r");
  if (f == nullptr) return "";
  std::string out;
  char line[512];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    std::string l(line);
    if (l.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string v = l.substr(12);
    while (!v.empty() && (v.back() == '\n' || v.back() == '"')) v.pop_back();
    if (!v.empty() && v.front() == '"') v.erase(0, 1);
    out = v.substr(0, 200);
  }
  std::fclose(f);
  return out;
}

// Non-loopback, non-link-local addresses (at most 16).
std::vector<std::string> Addresses() {
  std::set<std::string> ips;
  struct ifaddrs* ifs = nullptr;
  if (::getifaddrs(&ifs) != 0) return {};
  for (auto* i = ifs; i != nullptr && ips.size() < 16; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf,
                  sizeof(buf));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;
      ::inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf));
    } else {
      continue;
    }
    ips.insert(buf);
  }
  ::freeifaddrs(ifs);
  return {ips.begin(), ips.end()};
}

std::string HostName() {
  char host[256] = {};
  return ::gethostname(host, sizeof(host) - 1) == 0 ? std::string(host) : std::string();
}

}  // namespace

std::string CollectAttributes(const AgentConfig& config) {
  Json a = Json::object();
  struct utsname u {};
  if (::uname(&u) == 0) {
    std::string os = u.sysname;
    std::transform(os.begin(), os.end(), os.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    a["os"] = os;
    a["kernel"] = std::string(u.release);
    a["arch"] = std::string(u.machine);
  }
  std::string host = HostName();
  if (!host.empty()) a["hostname"] = host;
  std::string pretty = PrettyOsName();
  if (!pretty.empty()) a["os_release"] = pretty;
  a["ips"] = Json(Addresses());
  a["agent_version"] = kAgentVersion;
  Json tags = Json::object();
  for (const auto& [k, v] : config.tags) tags[k] = v;
  a["tags"] = tags;
  return core::DumpJson(a);
}

core::Result<Enrollment> Enroll(const AgentConfig& config, const std::string& enroll_token) {
  if (enroll_token.empty()) {
    return Status::InvalidArgument(
        "this agent is not enrolled yet: pass --enroll-token T (from `depot token create "
        "--role enroll`)");
  }
  http::ClientOptions o;
  o.bearer_token = enroll_token;
  o.ca_file = config.ca;
  o.fallback_urls = config.more_sites;
  DEPOT_ASSIGN_OR_RETURN(auto client, http::Client::Create(config.site, o));
  Enrollment out;
  out.attributes = CollectAttributes(config);
  std::string name = config.name.empty() ? HostName() : config.name;
  Json body = {{"name", name}, {"attributes", Json::parse(out.attributes)}};
  DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r,
                         client->Do("POST", "/api/v1/agent/enroll", core::DumpJson(body)));
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, "enrolling with " + config.site));
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("token") || !j["token"].is_string() || !j.contains("client") ||
      !j["client"].is_string() || !j.contains("trusted_root") || !j["trusted_root"].is_string()) {
    return Status::Corruption("enrollment answer from " + config.site +
                              " is not what the agent API returns");
  }
  out.identity.client = j["client"].get<std::string>();
  out.identity.token = j["token"].get<std::string>();
  if (j.contains("site") && j["site"].is_object())
    out.identity.site_code = j["site"].value("code", "");
  out.trusted_root = j["trusted_root"].get<std::string>();
  return out;
}

std::string TrustedRootPath(const std::string& data_dir) {
  return core::JoinPath(data_dir, "trusted_root.json");
}

Status RecordEnrollment(core::Env* env, const std::string& data_dir, StateStore* state,
                        const AgentConfig& config, const Enrollment& e) {
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(TrustedRootPath(data_dir), e.trusted_root, 0644));
  DEPOT_RETURN_IF_ERROR(SaveAgentConfig(env, data_dir, config, e.identity));
  return state->SetMeta(kAttributesKey, e.attributes);
}

void SyncAttributes(StateStore* state, http::Client* site, const AgentConfig& config) {
  std::string now = CollectAttributes(config);
  auto last = state->Meta(kAttributesKey);
  if (last.ok() && *last == now) return;
  auto r = site->Do("POST", "/api/v1/agent/attributes", "{\"attributes\":" + now + "}");
  if (!r.ok() || !http::ApiError(*r, "attributes").ok()) return;  // next poll tries again
  state->SetMeta(kAttributesKey, now).IgnoreError();
}

}  // namespace depot::agent
