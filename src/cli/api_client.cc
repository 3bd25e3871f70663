#include "cli/api_client.h"

#include <CLI/CLI.hpp>
#include <cstdlib>

namespace depot::cli {

using core::Status;

void AddSiteFlags(CLI::App* cmd, SiteFlags* f) {
  cmd->add_option("--site", f->site, "Site URL (default: $DEPOT_SITE)");
  cmd->add_option("--token", f->token, "Credential (default: $DEPOT_TOKEN)");
  cmd->add_option("--ca", f->ca, "CA certificate to trust for the site (default: $DEPOT_CA)");
}

core::Result<std::unique_ptr<ApiClient>> ApiClient::Connect(const SiteFlags& in) {
  SiteFlags f = in;
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  if (f.site.empty()) f.site = env("DEPOT_SITE");
  if (f.token.empty()) f.token = env("DEPOT_TOKEN");
  if (f.ca.empty()) f.ca = env("DEPOT_CA");
  if (f.site.empty()) {
    return Status::InvalidArgument(
        "no site: pass --site URL or set DEPOT_SITE (e.g. http://127.0.0.1:8080)");
  }
  if (f.token.empty()) {
    return Status::InvalidArgument(
        "no credential: pass --token or set DEPOT_TOKEN (`depot site init` printed the "
        "first admin token)");
  }
  http::ClientOptions opts;
  opts.bearer_token = f.token;
  opts.ca_file = f.ca;
  opts.timeout_s = 3600;
  DEPOT_ASSIGN_OR_RETURN(auto client, http::Client::Create(f.site, opts));
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(f), std::move(client)));
}

core::Result<std::unique_ptr<ApiClient>> ApiClient::Clone() const { return Connect(flags_); }

core::Result<Json> ApiClient::SendRaw(const std::string& method, const std::string& target,
                                      std::string_view body, const std::string& content_type,
                                      const std::string& what) {
  DEPOT_ASSIGN_OR_RETURN(http::ClientResponse r, client_->Do(method, target, body, content_type));
  DEPOT_RETURN_IF_ERROR(http::ApiError(r, what));
  if (r.body.empty()) return Json::object();
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_discarded())
    return Status::Unavailable(what + ": the site answered with something that is not JSON");
  return j;
}

core::Result<Json> ApiClient::Get(const std::string& target, const std::string& what) {
  return SendRaw("GET", target, {}, "application/json", what);
}

core::Result<Json> ApiClient::Send(const std::string& method, const std::string& target,
                                   const Json& body, const std::string& what) {
  return SendRaw(method, target, body.dump(), "application/json", what);
}

std::string Escape(const std::string& s) { return http::PercentEncode(s); }

}  // namespace depot::cli
