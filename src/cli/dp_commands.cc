// depot dp serve | verify: running a distribution point.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "core/env.h"
#include "core/log.h"
#include "dp/dp.h"

namespace depot::cli {

using core::Status;
using Json = nlohmann::json;

namespace {

struct ServeFlags {
  std::vector<std::string> sites;
  std::string data, token, upstream, listen, tls_cert, tls_key, ca, scrub_every, scrub_start,
      gc_grace, retry_base, access_log, poll_wait;
  long long max_sync_rate = -1;
  int parallel = 0;
};

// dp.toml when present, overridden by flags; saved back so a restart needs only --data.
core::Result<dp::DpConfig> ResolveConfig(const ServeFlags& f) {
  core::Env* env = core::Env::Default();
  dp::DpConfig c;
  auto loaded = dp::LoadDpConfig(env, f.data);
  if (loaded.ok()) {
    c = *loaded;
  } else if (!loaded.status().IsNotFound()) {
    return loaded.status();
  }
  if (!f.sites.empty()) {
    // Given again, the list replaces the saved one.
    c.site = f.sites.front();
    c.more_sites.assign(f.sites.begin() + 1, f.sites.end());
  }
  if (!f.token.empty()) c.token = f.token;
  if (!f.upstream.empty()) c.upstream = f.upstream;
  if (!f.listen.empty()) c.listen = f.listen;
  // Saved in dp.toml: relative paths would name other files once started elsewhere.
  if (!f.tls_cert.empty()) c.tls_cert = std::filesystem::absolute(f.tls_cert).string();
  if (!f.tls_key.empty()) c.tls_key = std::filesystem::absolute(f.tls_key).string();
  if (!f.ca.empty()) c.ca = std::filesystem::absolute(f.ca).string();
  if (!f.access_log.empty()) c.access_log = std::filesystem::absolute(f.access_log).string();
  if (f.max_sync_rate >= 0) c.max_sync_rate = static_cast<std::uint64_t>(f.max_sync_rate);
  if (f.parallel > 0) c.parallel = static_cast<unsigned>(f.parallel);
  for (auto [text, out] :
       {std::pair{&f.scrub_every, &c.scrub_every}, std::pair{&f.scrub_start, &c.scrub_start},
        std::pair{&f.gc_grace, &c.gc_grace}, std::pair{&f.retry_base, &c.retry_base},
        std::pair{&f.poll_wait, &c.poll_wait}}) {
    if (text->empty()) continue;
    auto d = core::ParseDuration(*text);
    if (!d.ok()) return d.status();
    *out = *d;
  }
  if (c.site.empty() || c.token.empty()) {
    return Status::InvalidArgument(
        "the first start needs --site URL and --token TOKEN (printed by `depot dp add`)");
  }
  if (c.tls_cert.empty() != c.tls_key.empty())
    return Status::InvalidArgument("--tls-cert and --tls-key go together");
  DEPOT_RETURN_IF_ERROR(dp::SaveDpConfig(env, f.data, c));
  return c;
}

int RunServe(const ServeFlags& f, bool json) {
  StopSignals signals;  // before any thread starts
  auto cfg = ResolveConfig(f);
  if (!cfg.ok()) return ReportError(cfg.status().WithContext("dp serve"), json);
  auto point = dp::DistributionPoint::Open(core::Env::Default(), core::Clock::Real(), f.data, *cfg);
  if (!point.ok()) return ReportError(point.status().WithContext("dp serve"), json);
  Status s = (*point)->Start();
  if (!s.ok()) return ReportError(s.WithContext("dp serve"), json);
  if (json) {
    std::printf("%s\n", Json({{"url", (*point)->url()}, {"site", cfg->site}}).dump().c_str());
  } else {
    std::printf("DP serving %s/repo/ at %s, syncing from %s\n", f.data.c_str(),
                (*point)->url().c_str(),
                (cfg->upstream.empty() ? cfg->site : cfg->upstream).c_str());
  }
  std::fflush(stdout);
  signals.Wait();
  (*point)->Stop();
  return kExitOk;
}

int RunVerify(const std::string& data, bool repair, bool json) {
  core::Env* env = core::Env::Default();
  auto cfg = dp::LoadDpConfig(env, data);
  if (!cfg.ok()) return ReportError(cfg.status().WithContext("dp verify"), json);
  auto point = dp::DistributionPoint::Open(env, core::Clock::Real(), data, *cfg);
  if (!point.ok()) return ReportError(point.status().WithContext("dp verify"), json);
  auto r = (*point)->Verify(repair);
  if (!r.ok()) return ReportError(r.status().WithContext("dp verify"), json);
  if (json) {
    Json findings = Json::array();
    for (const auto& f : r->findings) {
      findings.push_back({{"object", f.object}, {"problem", f.problem}, {"repaired", f.repaired}});
    }
    PrintJson({{"ok", r->findings.empty()},
               {"chunks", r->chunks},
               {"bytes", r->bytes},
               {"manifests", r->manifests},
               {"damage", findings}});
  } else {
    for (const auto& f : r->findings) {
      std::printf("DAMAGED %s: %s%s\n", f.object.c_str(), f.problem.c_str(),
                  f.repaired ? " (repaired)" : "");
    }
    std::printf("%s: %llu chunks (%s) and %llu manifests checked, %zu damaged\n",
                r->findings.empty() ? "ok" : "DAMAGE FOUND",
                static_cast<unsigned long long>(r->chunks), HumanBytes(r->bytes).c_str(),
                static_cast<unsigned long long>(r->manifests), r->findings.size());
  }
  return r->findings.empty() ? kExitOk : kExitDamage;
}

}  // namespace

void AddDpServeCommands(CLI::App* dp, GlobalFlags* flags, int* exit_code) {
  {
    auto f = std::make_shared<ServeFlags>();
    auto* cmd = dp->add_subcommand("serve", "Run a distribution point until SIGTERM");
    cmd->add_option("--data", f->data, "DP data directory (created on first start)")->required();
    cmd->add_option("--site", f->sites,
                    "Site URL (first start; then kept in DIR/dp.toml); repeat it for each "
                    "process of a site on several machines, tried in turn on failure");
    cmd->add_option("--token", f->token, "This DP's token from `depot dp add` (first start)");
    cmd->add_option("--upstream", f->upstream,
                    "Copy from this site or parent DP instead of the site");
    cmd->add_option("--listen", f->listen, "HOST:PORT to serve on (default 0.0.0.0:8081)");
    cmd->add_option("--tls-cert", f->tls_cert, "PEM certificate chain for HTTPS");
    cmd->add_option("--tls-key", f->tls_key, "PEM private key for HTTPS");
    cmd->add_option("--ca", f->ca, "CA certificate to trust for the site and upstream");
    cmd->add_option("--access-log", f->access_log,
                    "Append one JSON line per HTTP request to this file");
    cmd->add_option("--max-sync-rate", f->max_sync_rate,
                    "Sync bandwidth limit in bytes/s (0: none)");
    cmd->add_option("--parallel", f->parallel, "Concurrent chunk downloads (default 8)");
    cmd->add_option("--scrub-every", f->scrub_every, "Full scrub at most this often (default 24h)");
    cmd->add_option("--scrub-start", f->scrub_start,
                    "The first scrub this long after start (default 1m)");
    cmd->add_option("--gc-grace", f->gc_grace, "Keep unassigned content this long (default 1h)");
    cmd->add_option("--retry-base", f->retry_base,
                    "First local retry delay when the site or upstream fails (10s)");
    cmd->add_option("--poll-wait", f->poll_wait,
                    "How long one assignment long-poll waits for a change (60s)");
    cmd->callback([=] { *exit_code = RunServe(*f, flags->json); });
  }
  {
    auto data = std::make_shared<std::string>();
    auto repair = std::make_shared<bool>(false);
    auto* cmd =
        dp->add_subcommand("verify", "Re-hash every stored chunk and manifest; exit 3 on damage");
    cmd->add_option("--data", *data, "DP data directory")->required();
    cmd->add_flag("--repair", *repair, "Refetch damaged objects from upstream");
    cmd->callback([=] { *exit_code = RunVerify(*data, *repair, flags->json); });
  }
}

}  // namespace depot::cli
