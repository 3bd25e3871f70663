// How admin commands reach a site (internal to the cli component): --site URL or
// DEPOT_SITE, --token or DEPOT_TOKEN, --ca FILE or DEPOT_CA (a private CA to trust).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "http/client.h"

namespace CLI {
class App;
}

namespace depot::cli {

using Json = nlohmann::json;

struct SiteFlags {
  std::string site;
  std::string token;
  std::string ca;
};

// Registers --site, --token and --ca on `cmd`.
void AddSiteFlags(CLI::App* cmd, SiteFlags* flags);

class ApiClient {
 public:
  // Resolves flags and environment. InvalidArgument when no site or token is given
  // (the message says which flag or variable to set).
  static core::Result<std::unique_ptr<ApiClient>> Connect(const SiteFlags& flags);

  const std::string& site() const { return client_->base_url(); }
  const SiteFlags& flags() const { return flags_; }

  // JSON calls. A non-2xx answer becomes the site's error as a Status, with
  // `what` as context.
  core::Result<Json> Get(const std::string& target, const std::string& what);
  core::Result<Json> Send(const std::string& method, const std::string& target, const Json& body,
                          const std::string& what);
  // A raw body (chunk batches, manifests).
  core::Result<Json> SendRaw(const std::string& method, const std::string& target,
                             std::string_view body, const std::string& content_type,
                             const std::string& what);

  // A second connection with the same credentials (for parallel uploads).
  core::Result<std::unique_ptr<ApiClient>> Clone() const;

 private:
  ApiClient(SiteFlags flags, std::unique_ptr<http::Client> client)
      : flags_(std::move(flags)), client_(std::move(client)) {}
  SiteFlags flags_;
  std::unique_ptr<http::Client> client_;
};

// URL-encodes one path segment or query value.
std::string Escape(const std::string& s);

}  // namespace depot::cli
