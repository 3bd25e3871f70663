// depot collection create | list | show | delete | add | remove | set-rule.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

namespace {

void AddCollectionCreate(CLI::App* col, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto rule = std::make_shared<std::string>();
  auto members = std::make_shared<std::vector<std::string>>();
  auto desc = std::make_shared<std::string>();
  auto* cmd = Sub(col, "create", "Create a static or rule collection", site.get());
  cmd->add_option("NAME", *name, "Collection name")->required();
  cmd->add_option("--rule", *rule, "Membership rule, e.g. 'os == \"linux\" and ips in 10.0.0.0/8'");
  cmd->add_option("--member", *members, "Client id or name (repeatable; static collections)");
  cmd->add_option("--description", *desc, "Free text");
  cmd->callback([=] {
    Json body = {{"name", *name}, {"members", *members}, {"description", *desc}};
    if (!rule->empty()) body["rule"] = *rule;
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.Send("POST", "/api/v1/collections", body, "collection create");
        },
        [](const Json& j) {
          std::printf("created %s collection %s with %s members\n", S(j, "kind").c_str(),
                      S(j, "name").c_str(), S(j, "members").c_str());
        });
  });
}

void AddCollectionList(CLI::App* col, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto* cmd = Sub(col, "list", "List collections", site.get());
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [](ApiClient& a) { return a.Get("/api/v1/collections", "collection list"); },
        [](const Json& j) {
          std::vector<std::vector<std::string>> rows;
          for (const auto& x : j["collections"]) {
            rows.push_back(
                {S(x, "name"), S(x, "kind"), S(x, "members"), S(x, "deployments"), S(x, "rule")});
          }
          PrintTable({"NAME", "KIND", "MEMBERS", "DEPLOYMENTS", "RULE"}, rows);
        });
  });
}

void AddCollectionShow(CLI::App* col, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto* cmd = Sub(col, "show", "A collection and its members", site.get());
  cmd->add_option("NAME", *name, "Collection name")->required();
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.Get("/api/v1/collections/" + Escape(*name), "collection show");
        },
        [](const Json& j) {
          PrintObject(j);
          std::vector<std::vector<std::string>> rows;
          for (const auto& m : j["members"]) rows.push_back({S(m, "id"), S(m, "name")});
          std::printf("\n");
          PrintTable({"CLIENT", "NAME"}, rows);
        });
  });
}

void AddCollectionDelete(CLI::App* col, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto* cmd = Sub(col, "delete", "Delete a collection no deployment uses", site.get());
  cmd->add_option("NAME", *name, "Collection name")->required();
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.SendRaw("DELETE", "/api/v1/collections/" + Escape(*name), {}, "application/json",
                           "collection delete");
        },
        [&](const Json&) { std::printf("deleted collection %s\n", name->c_str()); });
  });
}

// collection add | remove: `verb` is the command and the PATCH body's key.
void AddCollectionMembers(CLI::App* col, AdminCtx c, const char* verb) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto clients = std::make_shared<std::vector<std::string>>();
  std::string v = verb;
  auto* cmd = Sub(
      col, verb,
      v == "add" ? "Add clients to a static collection" : "Remove clients from a static collection",
      site.get());
  cmd->add_option("NAME", *name, "Collection name")->required();
  cmd->add_option("CLIENT", *clients, "Client ids or names")->required();
  cmd->callback([=] {
    Json body = {{v, *clients}};
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.Send("PATCH", "/api/v1/collections/" + Escape(*name), body, "collection " + v);
        },
        [](const Json& j) {
          std::printf("collection %s now has %s members\n", S(j, "name").c_str(),
                      S(j, "members").c_str());
        });
  });
}

void AddCollectionSetRule(CLI::App* col, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto rule = std::make_shared<std::string>();
  auto* cmd =
      Sub(col, "set-rule", "Replace a collection's rule (members are recomputed)", site.get());
  cmd->add_option("NAME", *name, "Collection name")->required();
  cmd->add_option("RULE", *rule, "The new rule")->required();
  cmd->callback([=] {
    Json body = {{"rule", *rule}};
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.Send("PATCH", "/api/v1/collections/" + Escape(*name), body,
                        "collection set-rule");
        },
        [](const Json& j) {
          std::printf("collection %s now has %s members\n", S(j, "name").c_str(),
                      S(j, "members").c_str());
        });
  });
}

}  // namespace

void AddCollectionCommands(CLI::App* app, AdminCtx c) {
  auto* col = app->add_subcommand("collection", "Manage collections of clients");
  col->require_subcommand(1);
  AddCollectionCreate(col, c);
  AddCollectionList(col, c);
  AddCollectionShow(col, c);
  AddCollectionDelete(col, c);
  for (const char* verb : {"add", "remove"}) AddCollectionMembers(col, c, verb);
  AddCollectionSetRule(col, c);
}

}  // namespace depot::cli
