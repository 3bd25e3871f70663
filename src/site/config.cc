#include "site/config.h"

#include <map>
#include <set>
#include <sstream>
#include <toml++/toml.h>

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

std::string FormatDuration(core::Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  auto s = ms / 1000;
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

namespace {

core::Result<std::uint64_t> ParseSize(std::string_view s) {
  std::uint64_t n = 0;
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    n = n * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (n > (1ull << 50)) return Status::InvalidArgument("size too large");
    ++i;
  }
  if (i == 0) return Status::InvalidArgument("size must start with a number");
  std::string_view unit = s.substr(i);
  static const std::map<std::string_view, std::uint64_t> kUnits = {
      {"", 1}, {"B", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) return Status::InvalidArgument("size unit must be B, KiB, MiB or GiB");
  return n * it->second;
}

std::string FormatSize(std::uint64_t n) {
  if (n != 0 && n % (1ull << 30) == 0) return std::to_string(n >> 30) + "GiB";
  if (n != 0 && n % (1ull << 20) == 0) return std::to_string(n >> 20) + "MiB";
  if (n != 0 && n % (1ull << 10) == 0) return std::to_string(n >> 10) + "KiB";
  return std::to_string(n) + "B";
}

// Reads one [table], refusing unknown keys.
class TableReader {
 public:
  TableReader(const toml::table* t, std::string name, std::string path)
      : t_(t), name_(std::move(name)), path_(std::move(path)) {}

  Status String(const char* key, std::string* out) {
    Seen(key);
    if (t_ == nullptr) return Status::Ok();
    const toml::node* n = t_->get(key);
    if (n == nullptr) return Status::Ok();
    auto v = n->value<std::string>();
    if (!v) return Bad(key, "must be a string");
    *out = *v;
    return Status::Ok();
  }
  Status Int(const char* key, std::int64_t lo, std::int64_t hi, std::int64_t* out) {
    Seen(key);
    if (t_ == nullptr) return Status::Ok();
    const toml::node* n = t_->get(key);
    if (n == nullptr) return Status::Ok();
    auto v = n->value<std::int64_t>();
    if (!v || *v < lo || *v > hi) {
      return Bad(key, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    *out = *v;
    return Status::Ok();
  }
  Status Duration(const char* key, core::Duration* out) {
    std::string text;
    DEPOT_RETURN_IF_ERROR(String(key, &text));
    if (text.empty()) return Status::Ok();
    auto d = core::ParseDuration(text);
    if (!d.ok() || d->count() <= 0) return Bad(key, "must be a duration like 90s, 15m, 12h or 30d");
    *out = *d;
    return Status::Ok();
  }
  Status Bool(const char* key, bool* out) {
    Seen(key);
    if (t_ == nullptr) return Status::Ok();
    const toml::node* n = t_->get(key);
    if (n == nullptr) return Status::Ok();
    auto v = n->value<bool>();
    if (!v) return Bad(key, "must be true or false");
    *out = *v;
    return Status::Ok();
  }
  Status Size(const char* key, std::uint64_t* out) {
    std::string text;
    DEPOT_RETURN_IF_ERROR(String(key, &text));
    if (text.empty()) return Status::Ok();
    auto n = ParseSize(text);
    if (!n.ok() || *n == 0) return Bad(key, "must be a size like 64MiB");
    *out = *n;
    return Status::Ok();
  }
  Status Finish() {
    if (t_ == nullptr) return Status::Ok();
    for (auto&& [k, v] : *t_) {
      std::string key(k.str());
      if (!seen_.count(key)) {
        return Status::InvalidArgument(path_ + ": unknown key `" + key + "` in [" + name_ +
                                       "] (check the spelling; docs/site.md lists the keys)");
      }
    }
    return Status::Ok();
  }

 private:
  void Seen(const char* key) { seen_.insert(key); }
  Status Bad(const char* key, const std::string& rule) {
    return Status::InvalidArgument(path_ + ": [" + name_ + "] " + key + " " + rule);
  }
  const toml::table* t_;
  std::string name_, path_;
  std::set<std::string> seen_;
};

}  // namespace

core::Result<SiteConfig> LoadConfig(core::Env* env, const std::string& path) {
  auto text = env->ReadFile(path, 1 << 20);
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::NotFound(path + " not found: is this a site data directory? Create one with "
                              "`depot site init --data DIR --code CODE`");
    }
    return text.status();
  }
  toml::table root;
  try {
    root = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Status::InvalidArgument(path + ":" + where.str() + ": " + std::string(e.description()));
  }
  SiteConfig c;
  static const std::set<std::string> kTables = {"site",    "tls",    "packages", "distribution",
                                                "signing", "agents", "limits"};
  for (auto&& [k, v] : root) {
    std::string key(k.str());
    if (!kTables.count(key) || !v.is_table()) {
      return Status::InvalidArgument(path + ": unknown table or key `" + key +
                                     "` (expected one of [site], [tls], [packages], "
                                     "[distribution], [signing], [agents], [limits])");
    }
  }
  {
    TableReader t(root["site"].as_table(), "site", path);
    DEPOT_RETURN_IF_ERROR(t.String("code", &c.code));
    DEPOT_RETURN_IF_ERROR(t.String("listen", &c.listen));
    DEPOT_RETURN_IF_ERROR(t.String("public_url", &c.public_url));
    DEPOT_RETURN_IF_ERROR(t.String("access_log", &c.access_log));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    TableReader t(root["tls"].as_table(), "tls", path);
    DEPOT_RETURN_IF_ERROR(t.String("cert", &c.tls_cert));
    DEPOT_RETURN_IF_ERROR(t.String("key", &c.tls_key));
    DEPOT_RETURN_IF_ERROR(t.String("ca", &c.tls_ca));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    TableReader t(root["packages"].as_table(), "packages", path);
    std::int64_t keep = c.keep_versions;
    DEPOT_RETURN_IF_ERROR(t.Int("keep_versions", 1, 10000, &keep));
    c.keep_versions = static_cast<int>(keep);
    DEPOT_RETURN_IF_ERROR(t.Duration("gc_grace", &c.gc_grace));
    DEPOT_RETURN_IF_ERROR(t.Bool("verify_file_hashes", &c.verify_file_hashes));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    TableReader t(root["distribution"].as_table(), "distribution", path);
    DEPOT_RETURN_IF_ERROR(t.Duration("retry_base", &c.retry_base));
    DEPOT_RETURN_IF_ERROR(t.Duration("retry_max", &c.retry_max));
    DEPOT_RETURN_IF_ERROR(t.Duration("dp_offline_after", &c.dp_offline_after));
    DEPOT_RETURN_IF_ERROR(t.Duration("probe_base", &c.probe_base));
    DEPOT_RETURN_IF_ERROR(t.Duration("probe_max", &c.probe_max));
    DEPOT_RETURN_IF_ERROR(t.Duration("probe_timeout", &c.probe_timeout));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    TableReader t(root["signing"].as_table(), "signing", path);
    DEPOT_RETURN_IF_ERROR(t.Duration("timestamp_lifetime", &c.timestamp_lifetime));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    TableReader t(root["agents"].as_table(), "agents", path);
    DEPOT_RETURN_IF_ERROR(t.Duration("poll_interval", &c.poll_interval));
    DEPOT_RETURN_IF_ERROR(t.Duration("offline_after", &c.client_offline_after));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  {
    TableReader t(root["limits"].as_table(), "limits", path);
    std::int64_t conns = static_cast<std::int64_t>(c.max_connections);
    DEPOT_RETURN_IF_ERROR(t.Int("max_connections", 1, 1'000'000, &conns));
    c.max_connections = static_cast<std::uint64_t>(conns);
    DEPOT_RETURN_IF_ERROR(t.Size("max_upload_body", &c.max_upload_body));
    DEPOT_RETURN_IF_ERROR(t.Finish());
  }
  DEPOT_RETURN_IF_ERROR(ValidateSiteCode(c.code).WithContext(path + ": [site] code"));
  if (c.retry_max < c.retry_base || c.probe_max < c.probe_base) {
    return Status::InvalidArgument(path + ": [distribution] a *_max must not be below its *_base");
  }
  if (c.timestamp_lifetime < std::chrono::minutes(10) || c.timestamp_lifetime > std::chrono::hours(24 * 30)) {
    return Status::InvalidArgument(path + ": [signing] timestamp_lifetime must be from 10m to 30d (the snapshot's "
                                          "lifetime): agents refuse a timestamp older than this");
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return Status::InvalidArgument(path + ": [tls] needs both cert and key, or neither");
  }
  return c;
}

std::string RenderConfig(const SiteConfig& c) {
  auto q = [](const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    return out + "\"";
  };
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
    << "gc_grace = " << q(FormatDuration(c.gc_grace)) << "\n"
    << "# Chunks are verified when uploaded; this also re-hashes every multi-chunk file\n"
    << "# from its chunks before signing (agents verify every file in any case).\n"
    << "verify_file_hashes = " << (c.verify_file_hashes ? "true" : "false") << "\n\n"
    << "[distribution]\n"
    << "# Backoff of one (version, DP) record after a failed copy; other records never wait.\n"
    << "retry_base = " << q(FormatDuration(c.retry_base)) << "\n"
    << "retry_max = " << q(FormatDuration(c.retry_max)) << "\n"
    << "# A DP that has not polled for this long is probed, with per-DP backoff.\n"
    << "dp_offline_after = " << q(FormatDuration(c.dp_offline_after)) << "\n"
    << "probe_base = " << q(FormatDuration(c.probe_base)) << "\n"
    << "probe_max = " << q(FormatDuration(c.probe_max)) << "\n"
    << "# How long one probe may take to connect and answer /healthz.\n"
    << "probe_timeout = " << q(FormatDuration(c.probe_timeout)) << "\n\n"
    << "[signing]\n"
    << "# How long each signed timestamp is valid. The site re-signs it at start and every\n"
    << "# quarter of this (at least a minute apart), and whenever a version is published or\n"
    << "# retired; an agent refuses a timestamp past its expiry (a freeze attack).\n"
    << "timestamp_lifetime = " << q(FormatDuration(c.timestamp_lifetime)) << "\n\n"
    << "[agents]\n"
    << "poll_interval = " << q(FormatDuration(c.poll_interval)) << "\n"
    << "offline_after = " << q(FormatDuration(c.client_offline_after)) << "\n\n"
    << "[limits]\n"
    << "max_connections = " << c.max_connections << "\n"
    << "max_upload_body = " << q(FormatSize(c.max_upload_body)) << "\n";
  return o.str();
}

}  // namespace depot::site
