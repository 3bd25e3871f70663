// depot site init | serve
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "core/env.h"
#include "core/log.h"
#include "site/migrate_db.h"
#include "site/site.h"

namespace depot::cli {

using core::Status;
using Json = nlohmann::json;

namespace {

int RunSiteInit(const site::InitOptions& o, bool json) {
  auto r = site::InitSite(core::Env::Default(), core::Clock::Real(), o);
  if (!r.ok()) return ReportError(r.status().WithContext("site init"), json);
  if (json) {
    Json out = {{"data", o.data_dir}, {"config", r->config_path}, {"admin_token", r->admin_token}};
    if (!r->ca_file.empty()) out["ca"] = r->ca_file;
    PrintJson(out);
    return kExitOk;
  }
  std::printf("created site %s in %s\n", o.code.c_str(), o.data_dir.c_str());
  std::printf("  configuration  %s\n", r->config_path.c_str());
  if (!r->ca_file.empty()) {
    std::printf("  private CA     %s (give it to DPs, agents and the CLI: --ca or DEPOT_CA)\n",
                r->ca_file.c_str());
  }
  std::printf("\nFirst admin token (shown only now; only its hash is stored):\n\n  %s\n\n",
              r->admin_token.c_str());
  std::printf("Next:\n  depot site serve --data %s\n  export DEPOT_SITE=%s://%s DEPOT_TOKEN=%s\n",
              o.data_dir.c_str(), (o.make_ca || !o.tls_cert.empty()) ? "https" : "http",
              o.listen.c_str(), r->admin_token.c_str());
  return kExitOk;
}

int RunSiteServe(const std::string& data, const site::ServeOverrides& overrides, bool json) {
  StopSignals signals;  // before any thread starts
  auto site = site::Site::Open(core::Env::Default(), core::Clock::Real(), data, overrides);
  if (!site.ok()) return ReportError(site.status().WithContext("site serve"), json);
  Status s = (*site)->Start();
  if (!s.ok()) return ReportError(s.WithContext("site serve"), json);
  if (json) {
    // One line, so a supervisor can read the URL as soon as it is serving.
    std::printf("%s\n",
                Json({{"site", (*site)->config().code}, {"url", (*site)->url()}}).dump().c_str());
  } else {
    std::printf("site %s serving at %s (Ctrl-C or SIGTERM stops it)\n",
                (*site)->config().code.c_str(), (*site)->url().c_str());
  }
  std::fflush(stdout);
  int sig = signals.Wait();
  core::Log(core::LogLevel::kInfo, "site.stopping",
            {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  (*site)->Stop();
  return kExitOk;
}

int RunSiteMigrateDb(const std::string& data, const std::string& to, bool json) {
  auto r = site::MigrateCatalogToPostgres(core::Env::Default(), core::Clock::Real(), data, to);
  if (!r.ok()) return ReportError(r.status().WithContext("site migrate-db"), json);
  std::int64_t rows = 0;
  for (const auto& [table, n] : r->rows) rows += n;
  if (json) {
    PrintJson({{"from", r->from},
               {"to", r->to},
               {"tables", r->rows},
               {"rows", rows},
               {"verified", true},
               {"config", r->config_path}});
  } else {
    std::printf(
        "copied %lld rows of %zu tables from %s to %s, verified; %s now names %s\n"
        "(the SQLite file stays as the copy from before the move)\n",
        static_cast<long long>(rows), r->rows.size(), r->from.c_str(), r->to.c_str(),
        r->config_path.c_str(), r->to.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddSiteCommands(CLI::App* app, GlobalFlags* flags, int* exit_code) {
  auto* site = app->add_subcommand("site", "Run a site server");
  site->require_subcommand(1);
  {
    auto* cmd =
        site->add_subcommand("init", "Create a site data directory (config, keys, catalog)");
    auto o = std::make_shared<site::InitOptions>();
    cmd->add_option("--data", o->data_dir, "Data directory to create")->required();
    cmd->add_option("--code", o->code, "Site code: 1-8 of A-Z 0-9")->required();
    cmd->add_option("--listen", o->listen, "HOST:PORT to serve on (default 127.0.0.1:8080)");
    cmd->add_option("--public-url", o->public_url, "URL DPs and agents use to reach the site");
    cmd->add_option("--tls-cert", o->tls_cert, "PEM certificate chain for HTTPS");
    cmd->add_option("--tls-key", o->tls_key, "PEM private key for HTTPS");
    cmd->add_flag("--make-ca", o->make_ca,
                  "Make a private CA and an HTTPS certificate for the site");
    cmd->add_option("--keep-versions", o->keep_versions, "Versions kept per package (default 5)");
    cmd->add_option("--parent", o->parent_url,
                    "Make a child site of the site at this URL (docs/hierarchy.md)");
    cmd->add_option("--parent-token", o->parent_token,
                    "The token `depot child add` printed at the parent");
    cmd->add_option("--parent-ca", o->parent_ca, "PEM CA certificate to trust for the parent");
    cmd->add_option("--db", o->db,
                    "Catalog in PostgreSQL: an empty database's connection string "
                    "(postgresql://USER@HOST/DB); default: SQLite in the data directory");
    cmd->callback([=] {
      if (!o->parent_ca.empty() && o->parent_ca[0] != '/') {
        char cwd[4096];
        if (::getcwd(cwd, sizeof(cwd)) != nullptr)
          o->parent_ca = std::string(cwd) + "/" + o->parent_ca;
      }
      *exit_code = RunSiteInit(*o, flags->json);
    });
  }
  {
    auto* cmd = site->add_subcommand("serve", "Serve a site until SIGTERM");
    auto data = std::make_shared<std::string>();
    auto ov = std::make_shared<site::ServeOverrides>();
    cmd->add_option("--data", *data, "Site data directory")->required();
    cmd->add_option("--listen", ov->listen, "HOST:PORT, overriding the configuration");
    cmd->add_option("--access-log", ov->access_log,
                    "Append one JSON line per HTTP request to this file");
    cmd->callback([=] {
      site::ServeOverrides o = *ov;
      // A flag is relative to where the command runs, not to the data directory.
      if (!o.access_log.empty()) o.access_log = std::filesystem::absolute(o.access_log).string();
      *exit_code = RunSiteServe(*data, o, flags->json);
    });
  }
  {
    auto* cmd = site->add_subcommand(
        "migrate-db",
        "Move a stopped site's catalog from SQLite into an empty PostgreSQL database: copy, "
        "verify every table, switch site.toml (docs/scale-out.md)");
    auto data = std::make_shared<std::string>();
    auto to = std::make_shared<std::string>();
    cmd->add_option("--data", *data, "Site data directory")->required();
    cmd->add_option("--to", *to, "The empty database: postgresql://USER@HOST/DB")->required();
    cmd->callback([=] { *exit_code = RunSiteMigrateDb(*data, *to, flags->json); });
  }
}

}  // namespace depot::cli
