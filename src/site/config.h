// The site's configuration: DIR/site.toml, written by `depot site init` and read by
// `depot site serve`. Every key has a default, so a minimal file is just the code.
// Durations are strings like "90s", "15m", "12h", "30d".
//
//   [site]
//   code = "ABC"                  # 1-8 of A-Z 0-9 naming the site
//   listen = "127.0.0.1:8080"
//   public_url = ""               # what DPs and agents are told to use; "" derives it
//   access_log = ""               # one JSON line per request; relative: inside DIR
//   [tls]
//   cert = "tls/site.pem"         # relative paths are inside the data directory
//   key = "tls/site.key"
//   ca = "tls/ca.pem"             # the private CA handed to agents, if any
//   [packages]
//   keep_versions = 5             # retention: newest K versions, plus any deployed
//   gc_grace = "24h"              # content of retired versions is collected after this
//   verify_file_hashes = false    # also re-hash multi-chunk files before signing
//   [distribution]
//   retry_base = "30s"            # per-(version, DP) backoff after a failed copy
//   retry_max = "6h"
//   dp_offline_after = "5m"       # a DP silent this long is probed by the site
//   probe_base = "1m"             # per-DP probe backoff
//   probe_max = "12h"
//   probe_timeout = "10s"         # one probe's connect and answer
//   [signing]
//   timestamp_lifetime = "7d"     # each signed timestamp's validity; re-signed every quarter of it
//   [agents]
//   poll_interval = "60s"         # told to agents in every policy
//   offline_after = "1h"          # `depot status` lists clients unseen this long
//   trust_client_ips = false      # boundaries match only the address the site sees
//   [limits]
//   max_connections = 10000
//   max_connections_per_address = 0   # 0: a quarter of max_connections
//   max_body_memory = "1GiB"      # request bodies held at once; one address a quarter
//   max_upload_body = "64MiB"     # largest chunk batch in one request
//   [catalog]                     # only with PostgreSQL (docs/scale-out.md)
//   db = "postgresql://..."       # the catalog's database
//   lease_ttl = "30s"             # a process silent this long is taken as dead
//   [parent]                      # only at a child site (docs/hierarchy.md)
//   url = "https://top:8080"      # the parent site
//   token_file = "parent-token"   # the child's credential there (mode 0600)
//   ca = ""                       # a PEM CA to trust for the parent; "": the system's
//
// Thread safety: a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"

namespace depot::site {

// In the data directory: the configuration, and the SQLite catalog (when the
// configuration names no PostgreSQL database).
inline constexpr char kSiteConfigFile[] = "site.toml";
inline constexpr char kSiteCatalogFile[] = "catalog.db";

struct SiteConfig {
  std::string code;
  std::string listen = "127.0.0.1:8080";
  std::string public_url;
  std::string access_log;  // one JSON line per request; relative: inside the data dir
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  int keep_versions = 5;
  core::Duration gc_grace = std::chrono::hours(24);
  bool verify_file_hashes = false;
  core::Duration retry_base = std::chrono::seconds(30);
  core::Duration retry_max = std::chrono::hours(6);
  core::Duration dp_offline_after = std::chrono::minutes(5);
  core::Duration probe_base = std::chrono::minutes(1);
  core::Duration probe_max = std::chrono::hours(12);
  core::Duration probe_timeout = std::chrono::seconds(10);
  core::Duration timestamp_lifetime = std::chrono::hours(24 * 7);
  core::Duration poll_interval = std::chrono::seconds(60);
  core::Duration client_offline_after = std::chrono::hours(1);
  // Whether DP boundaries also match the addresses agents report about themselves
  // (`ips`), not only the address the site sees them connect from (`address`): for
  // fleets the site sees through NAT, where every agent has the gateway's address.
  bool trust_client_ips = false;
  std::uint64_t max_connections = 10'000;
  std::uint64_t max_connections_per_address = 0;  // 0: a quarter of max_connections
  std::uint64_t max_body_memory = 1ull << 30;
  std::uint64_t max_upload_body = 64ull << 20;
  // A child site pulls content and work from its parent and reports up to it; empty at
  // the top of a tree.
  std::string parent_url;
  std::string parent_token_file = "parent-token";
  std::string parent_ca;
  // The catalog database: "" is the embedded SQLite file catalog.db in the data
  // directory; else a PostgreSQL connection string (postgresql://... or key=value).
  std::string db;
  // Several processes on one catalog: one silent this long is taken as dead, and its
  // leases and version reservations pass to the others.
  core::Duration lease_ttl = std::chrono::seconds(30);

  bool is_child() const { return !parent_url.empty(); }
};

// A path from site.toml: relative ones are inside the data directory `data_dir`; ""
// stays "".
std::string ResolvePath(const std::string& data_dir, const std::string& path);

// Site codes: 1-8 characters of [A-Z0-9].
core::Status ValidateSiteCode(std::string_view code);

// Reads and validates `path`. InvalidArgument naming the file, the key and the rule
// for anything malformed or unknown (a typo in a key must not pass silently).
core::Result<SiteConfig> LoadConfig(core::Env* env, const std::string& path);

// The TOML text of `config` (every key, with comments).
std::string RenderConfig(const SiteConfig& config);

}  // namespace depot::site
