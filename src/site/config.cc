#include "site/config.h"

#include <map>
#include <set>
#include <sstream>

#include "core/toml_config.h"

namespace depot::site {

using core::Status;

Status ValidateSiteCode(std::string_view code) {
  if (code.empty() || code.size() > 8) {
    return Status::InvalidArgument("site code `" + std::string(code) +
                                   "` must be 1 to 8 characters of A-Z and 0-9");
  }
  for (char c : code) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
      return Status::InvalidArgument("site code `" + std::string(code) +
                                     "` must be 1 to 8 characters of A-Z and 0-9");
    }
  }
  return Status::Ok();
}

std::string ResolvePath(const std::string& data_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return core::JoinPath(data_dir, path);
}

namespace {

// Reads each table of site.toml into `c`; keys a table does not know are errors.
Status ReadTables(toml::table& root, const std::string& path, SiteConfig* c) {
  {
    core::TomlTable t(root["site"].as_table(), "site", path, "docs/site.md");
    DEPOT_RETURN_IF_ERROR(t.String("code", &c->code));
    DEPOT_RETURN_IF_ERROR(t.String("listen", &c->listen));
    DEPOT_RETURN_IF_ERROR(t.String("public_url", &c->public_url));
    DEPOT_RETURN_IF_ERROR(t.String("access_log", &c->access_log));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    core::TomlTable t(root["tls"].as_table(), "tls", path, "docs/site.md");
    DEPOT_RETURN_IF_ERROR(t.String("cert", &c->tls_cert));
    DEPOT_RETURN_IF_ERROR(t.String("key", &c->tls_key));
    DEPOT_RETURN_IF_ERROR(t.String("ca", &c->tls_ca));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    core::TomlTable t(root["packages"].as_table(), "packages", path, "docs/site.md");
    std::int64_t keep = c->keep_versions;
    DEPOT_RETURN_IF_ERROR(t.Int("keep_versions", 1, 10000, &keep));
    c->keep_versions = static_cast<int>(keep);
    DEPOT_RETURN_IF_ERROR(t.Duration("gc_grace", &c->gc_grace));
    DEPOT_RETURN_IF_ERROR(t.Bool("verify_file_hashes", &c->verify_file_hashes));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    core::TomlTable t(root["distribution"].as_table(), "distribution", path, "docs/site.md");
    DEPOT_RETURN_IF_ERROR(t.Duration("retry_base", &c->retry_base));
    DEPOT_RETURN_IF_ERROR(t.Duration("retry_max", &c->retry_max));
    DEPOT_RETURN_IF_ERROR(t.Duration("dp_offline_after", &c->dp_offline_after));
    DEPOT_RETURN_IF_ERROR(t.Duration("probe_base", &c->probe_base));
    DEPOT_RETURN_IF_ERROR(t.Duration("probe_max", &c->probe_max));
    DEPOT_RETURN_IF_ERROR(t.Duration("probe_timeout", &c->probe_timeout));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    core::TomlTable t(root["signing"].as_table(), "signing", path, "docs/site.md");
    DEPOT_RETURN_IF_ERROR(t.Duration("timestamp_lifetime", &c->timestamp_lifetime));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    core::TomlTable t(root["agents"].as_table(), "agents", path, "docs/site.md");
    DEPOT_RETURN_IF_ERROR(t.Duration("poll_interval", &c->poll_interval));
    DEPOT_RETURN_IF_ERROR(t.Duration("offline_after", &c->client_offline_after));
    DEPOT_RETURN_IF_ERROR(t.Bool("trust_client_ips", &c->trust_client_ips));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    core::TomlTable t(root["limits"].as_table(), "limits", path, "docs/site.md");
    std::int64_t conns = static_cast<std::int64_t>(c->max_connections);
    DEPOT_RETURN_IF_ERROR(t.Int("max_connections", 1, 1'000'000, &conns));
    c->max_connections = static_cast<std::uint64_t>(conns);
    std::int64_t per = static_cast<std::int64_t>(c->max_connections_per_address);
    DEPOT_RETURN_IF_ERROR(t.Int("max_connections_per_address", 0, 1'000'000, &per));
    c->max_connections_per_address = static_cast<std::uint64_t>(per);
    DEPOT_RETURN_IF_ERROR(t.Size("max_body_memory", &c->max_body_memory));
    DEPOT_RETURN_IF_ERROR(t.Size("max_upload_body", &c->max_upload_body));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  if (root.contains("catalog")) {
    core::TomlTable t(root["catalog"].as_table(), "catalog", path, "docs/scale-out.md");
    DEPOT_RETURN_IF_ERROR(t.String("db", &c->db));
    DEPOT_RETURN_IF_ERROR(t.Duration("lease_ttl", &c->lease_ttl));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  if (root.contains("parent")) {
    core::TomlTable t(root["parent"].as_table(), "parent", path, "docs/hierarchy.md");
    DEPOT_RETURN_IF_ERROR(t.String("url", &c->parent_url));
    DEPOT_RETURN_IF_ERROR(t.String("token_file", &c->parent_token_file));
    DEPOT_RETURN_IF_ERROR(t.String("ca", &c->parent_ca));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  return Status::Ok();
}

// The checks across keys: a valid code, limits in order, a usable timestamp lifetime
// and TLS given whole.
Status CheckConfig(const SiteConfig& c, const std::string& path) {
  DEPOT_RETURN_IF_ERROR(ValidateSiteCode(c.code).WithContext(path + ": [site] code"));
  if (c.retry_max < c.retry_base || c.probe_max < c.probe_base) {
    return Status::InvalidArgument(path + ": [distribution] a *_max must not be below its *_base");
  }
  if (c.timestamp_lifetime < std::chrono::minutes(10) ||
      c.timestamp_lifetime > std::chrono::hours(24 * 30)) {
    return Status::InvalidArgument(
        path +
        ": [signing] timestamp_lifetime must be from 10m to 30d (the snapshot's "
        "lifetime): agents refuse a timestamp older than this");
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return Status::InvalidArgument(path + ": [tls] needs both cert and key, or neither");
  }
  if (c.lease_ttl < std::chrono::seconds(2) || c.lease_ttl > std::chrono::minutes(10)) {
    return Status::InvalidArgument(path +
                                   ": [catalog] lease_ttl must be from 2s to 10m (a process "
                                   "renews its leases every third of it)");
  }
  if (!c.db.empty() && c.db.rfind("postgresql://", 0) != 0 && c.db.rfind("postgres://", 0) != 0 &&
      c.db.find('=') == std::string::npos) {
    return Status::InvalidArgument(
        path +
        ": [catalog] db must be a PostgreSQL connection string (postgresql://... or "
        "host=... dbname=...)");
  }
  if (c.is_child() && c.parent_url.rfind("http://", 0) != 0 &&
      c.parent_url.rfind("https://", 0) != 0) {
    return Status::InvalidArgument(path + ": [parent] url must start with http:// or https://");
  }
  return Status::Ok();
}

}  // namespace

core::Result<SiteConfig> LoadConfig(core::Env* env, const std::string& path) {
  DEPOT_ASSIGN_OR_RETURN(toml::table root,
                         core::ReadTomlFile(env, path,
                                            "is this a site data directory? Create one with "
                                            "`depot site init --data DIR --code CODE`"));
  SiteConfig c;
  static const std::set<std::string> kTables = {"site",         "tls",     "packages",
                                                "distribution", "signing", "agents",
                                                "limits",       "parent",  "catalog"};
  for (auto&& [k, v] : root) {
    std::string key(k.str());
    if (!kTables.count(key) || !v.is_table()) {
      return Status::InvalidArgument(path + ": unknown table or key `" + key +
                                     "` (expected one of [site], [tls], [packages], [catalog], "
                                     "[distribution], [signing], [agents], [limits], [parent])");
    }
  }
  DEPOT_RETURN_IF_ERROR(ReadTables(root, path, &c));
  DEPOT_RETURN_IF_ERROR(CheckConfig(c, path));
  return c;
}

std::string RenderConfig(const SiteConfig& c) {
  auto q = [](const std::string& s) { return core::TomlQuote(s); };
  std::ostringstream o;
  o << "# depot site configuration (docs/site.md). Restart `depot site serve` after edits.\n\n"
    << "[site]\n"
    << "code = " << q(c.code) << "\n"
    << "listen = " << q(c.listen) << "\n"
    << "# The URL DPs and agents are told to use; empty: derived from listen.\n"
    << "public_url = " << q(c.public_url) << "\n"
    << "# One JSON line per HTTP request (relative: inside the data directory); empty: none.\n"
    << "access_log = " << q(c.access_log) << "\n\n"
    << "[tls]\n"
    << "# PEM files; relative paths are inside the data directory. Empty: plain HTTP.\n"
    << "cert = " << q(c.tls_cert) << "\n"
    << "key = " << q(c.tls_key) << "\n"
    << "ca = " << q(c.tls_ca) << "\n\n"
    << "[packages]\n"
    << "# Keep the newest K versions of each package, plus any version still deployed.\n"
    << "keep_versions = " << c.keep_versions << "\n"
    << "# Content of retired versions and deleted packages is collected after this.\n"
    << "gc_grace = " << q(core::FormatDuration(c.gc_grace)) << "\n"
    << "# Chunks are verified when uploaded; this also re-hashes every multi-chunk file\n"
    << "# from its chunks before signing (agents verify every file in any case).\n"
    << "verify_file_hashes = " << (c.verify_file_hashes ? "true" : "false") << "\n\n"
    << "[distribution]\n"
    << "# Backoff of one (version, DP) record after a failed copy; other records never wait.\n"
    << "retry_base = " << q(core::FormatDuration(c.retry_base)) << "\n"
    << "retry_max = " << q(core::FormatDuration(c.retry_max)) << "\n"
    << "# A DP that has not polled for this long is probed, with per-DP backoff.\n"
    << "dp_offline_after = " << q(core::FormatDuration(c.dp_offline_after)) << "\n"
    << "probe_base = " << q(core::FormatDuration(c.probe_base)) << "\n"
    << "probe_max = " << q(core::FormatDuration(c.probe_max)) << "\n"
    << "# How long one probe may take to connect and answer /healthz.\n"
    << "probe_timeout = " << q(core::FormatDuration(c.probe_timeout)) << "\n\n"
    << "[signing]\n"
    << "# How long each signed timestamp is valid. The site re-signs it at start and every\n"
    << "# quarter of this (at least a minute apart), and whenever a version is published or\n"
    << "# retired; an agent refuses a timestamp past its expiry (a freeze attack).\n"
    << "timestamp_lifetime = " << q(core::FormatDuration(c.timestamp_lifetime)) << "\n\n"
    << "[agents]\n"
    << "poll_interval = " << q(core::FormatDuration(c.poll_interval)) << "\n"
    << "offline_after = " << q(core::FormatDuration(c.client_offline_after)) << "\n"
    << "# DP boundaries match the address the site sees an agent connect from. true: also\n"
    << "# the addresses agents report (`ips`), for fleets the site sees through NAT.\n"
    << "trust_client_ips = " << (c.trust_client_ips ? "true" : "false") << "\n\n"
    << "[limits]\n"
    << "max_connections = " << c.max_connections << "\n"
    << "# Connections one peer address may hold (0: a quarter of max_connections). Raise it\n"
    << "# when many agents reach the site through one NAT address.\n"
    << "max_connections_per_address = " << c.max_connections_per_address << "\n"
    << "# Request bodies held at once (one address gets a quarter; past it, 503).\n"
    << "max_body_memory = " << q(core::FormatSize(c.max_body_memory)) << "\n"
    << "max_upload_body = " << q(core::FormatSize(c.max_upload_body)) << "\n";
  if (!c.db.empty()) {
    o << "\n[catalog]\n"
      << "# The catalog is in PostgreSQL (docs/scale-out.md); without this table it is\n"
      << "# the SQLite file catalog.db in the data directory.\n"
      << "db = " << q(c.db) << "\n"
      << "# Several site processes may serve it; one silent this long is taken as dead and\n"
      << "# its background work and unfinished versions pass to the others.\n"
      << "lease_ttl = " << q(core::FormatDuration(c.lease_ttl)) << "\n";
  }
  if (c.is_child()) {
    o << "\n[parent]\n"
      << "# This is a child site: it pulls content and work from its parent and reports\n"
      << "# up to it (docs/hierarchy.md).\n"
      << "url = " << q(c.parent_url) << "\n"
      << "# The child's credential at the parent (relative: inside the data directory).\n"
      << "token_file = " << q(c.parent_token_file) << "\n"
      << "# A PEM CA certificate to trust for the parent; empty: the system's.\n"
      << "ca = " << q(c.parent_ca) << "\n";
  }
  return o.str();
}

}  // namespace depot::site
