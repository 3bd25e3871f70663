#include <sstream>

#include "core/path.h"
#include "core/toml_config.h"
#include "dp/dp.h"

namespace depot::dp {

using core::Status;

namespace {

constexpr char kConfigFile[] = "dp.toml";

}  // namespace

core::Result<DpConfig> LoadDpConfig(core::Env* env, const std::string& data_dir) {
  const std::string path = core::JoinPath(data_dir, kConfigFile);
  DEPOT_ASSIGN_OR_RETURN(toml::table root,
                         core::ReadTomlFile(env, path,
                                            "start the DP once with `depot dp serve --data " +
                                                data_dir + " --site URL --token TOKEN`"));
  DpConfig c;
  core::TomlTable t(&root, "", path, "docs/dp.md");
  std::uint64_t parallel = c.parallel, max_connections = c.max_connections,
                per_address = c.max_connections_per_address;
  DEPOT_RETURN_IF_ERROR(t.String("site", &c.site));
  DEPOT_RETURN_IF_ERROR(t.Strings("more_sites", &c.more_sites));
  DEPOT_RETURN_IF_ERROR(t.String("token", &c.token));
  DEPOT_RETURN_IF_ERROR(t.String("upstream", &c.upstream));
  DEPOT_RETURN_IF_ERROR(t.String("listen", &c.listen));
  DEPOT_RETURN_IF_ERROR(t.String("tls_cert", &c.tls_cert));
  DEPOT_RETURN_IF_ERROR(t.String("tls_key", &c.tls_key));
  DEPOT_RETURN_IF_ERROR(t.String("ca", &c.ca));
  DEPOT_RETURN_IF_ERROR(t.Uint("max_sync_rate", 0, UINT64_MAX, &c.max_sync_rate));
  DEPOT_RETURN_IF_ERROR(t.Uint("parallel", 1, 64, &parallel));
  DEPOT_RETURN_IF_ERROR(t.Uint("scrub_rate", 0, UINT64_MAX, &c.scrub_rate));
  DEPOT_RETURN_IF_ERROR(t.Duration("scrub_every", &c.scrub_every));
  DEPOT_RETURN_IF_ERROR(t.Duration("scrub_start", &c.scrub_start));
  DEPOT_RETURN_IF_ERROR(t.Duration("gc_grace", &c.gc_grace));
  DEPOT_RETURN_IF_ERROR(t.Duration("retry_base", &c.retry_base));
  DEPOT_RETURN_IF_ERROR(t.Duration("retry_max", &c.retry_max));
  DEPOT_RETURN_IF_ERROR(t.Duration("poll_wait", &c.poll_wait));
  DEPOT_RETURN_IF_ERROR(t.String("access_log", &c.access_log));
  DEPOT_RETURN_IF_ERROR(t.Uint("max_connections", 0, UINT64_MAX, &max_connections));
  DEPOT_RETURN_IF_ERROR(t.Uint("max_connections_per_address", 0, UINT64_MAX, &per_address));
  DEPOT_RETURN_IF_ERROR(t.Finish());
  c.parallel = static_cast<unsigned>(parallel);
  c.max_connections = max_connections;
  c.max_connections_per_address = per_address;
  if (c.site.empty() || c.token.empty()) return t.Bad("site/token", "are required");
  return c;
}

Status SaveDpConfig(core::Env* env, const std::string& data_dir, const DpConfig& c) {
  using core::FormatDuration;
  using core::TomlQuote;
  std::ostringstream o;
  o << "# depot distribution point (docs/dp.md). Holds this DP's token: keep it 0600.\n"
    << "site = " << TomlQuote(c.site) << "\n"
    << "# Other URLs of the same site (its other processes), tried in turn on failure.\n"
    << "more_sites = [" <<
      [&] {
        std::string list;
        for (const auto& u : c.more_sites) list += (list.empty() ? "" : ", ") + TomlQuote(u);
        return list;
      }()
    << "]\n"
    << "token = " << TomlQuote(c.token) << "\n"
    << "upstream = " << TomlQuote(c.upstream) << "\n"
    << "listen = " << TomlQuote(c.listen) << "\n"
    << "tls_cert = " << TomlQuote(c.tls_cert) << "\n"
    << "tls_key = " << TomlQuote(c.tls_key) << "\n"
    << "ca = " << TomlQuote(c.ca) << "\n"
    << "max_sync_rate = " << c.max_sync_rate << "\n"
    << "parallel = " << c.parallel << "\n"
    << "scrub_rate = " << c.scrub_rate << "\n"
    << "scrub_every = " << TomlQuote(FormatDuration(c.scrub_every)) << "\n"
    << "scrub_start = " << TomlQuote(FormatDuration(c.scrub_start)) << "\n"
    << "gc_grace = " << TomlQuote(FormatDuration(c.gc_grace)) << "\n"
    << "retry_base = " << TomlQuote(FormatDuration(c.retry_base)) << "\n"
    << "retry_max = " << TomlQuote(FormatDuration(c.retry_max)) << "\n"
    << "poll_wait = " << TomlQuote(FormatDuration(c.poll_wait)) << "\n"
    << "max_connections = " << c.max_connections << "\n"
    << "max_connections_per_address = " << c.max_connections_per_address << "\n"
    << "access_log = " << TomlQuote(c.access_log) << "\n";
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(data_dir, 0750));
  return env->WriteFileIfChanged(core::JoinPath(data_dir, kConfigFile), o.str(), 0600);
}

}  // namespace depot::dp
