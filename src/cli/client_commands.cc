// depot client list | show: the managed clients a site knows.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

namespace {

void AddClientList(CLI::App* cl, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto* cmd = Sub(cl, "list", "List enrolled clients", site.get());
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json, [](ApiClient& a) { return a.Get("/api/v1/clients", "client list"); },
        [](const Json& j) {
          std::vector<std::vector<std::string>> rows;
          for (const auto& x : j["clients"]) {
            rows.push_back({S(x, "id"), S(x, "name"), S(x, "address"),
                            x["online"].get<bool>() ? "yes" : "no", S(x, "last_seen")});
          }
          PrintTable({"ID", "NAME", "ADDRESS", "ONLINE", "LAST SEEN"}, rows);
        });
  });
}

void AddClientShow(CLI::App* cl, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto id = std::make_shared<std::string>();
  auto* cmd = Sub(cl, "show", "A client's attributes, collections, reports and policy", site.get());
  cmd->add_option("CLIENT", *id, "Client id or name")->required();
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) { return a.Get("/api/v1/clients/" + Escape(*id), "client show"); },
        [](const Json& j) {
          PrintObject(j);
          std::printf("attributes     %s\ncollections    %s\npolicy         %zu deployments\n",
                      j["attributes"].dump().c_str(), j["collections"].dump().c_str(),
                      j["policy"]["deployments"].size());
        });
  });
}

}  // namespace

void AddClientCommands(CLI::App* app, AdminCtx c) {
  auto* cl = app->add_subcommand("client", "List and inspect managed clients");
  cl->require_subcommand(1);
  AddClientList(cl, c);
  AddClientShow(cl, c);
}

}  // namespace depot::cli
