// depot token create | list | revoke: the site's credentials.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

namespace {

void AddTokenCreate(CLI::App* tok, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto role = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto uses = std::make_shared<long long>(0);
  auto expires = std::make_shared<std::string>();
  auto* cmd = Sub(tok, "create", "Create a token (printed once)", site.get());
  cmd->add_option("--role", *role, "admin, operator, read-only or enroll")->required();
  cmd->add_option("--name", *name, "A label for listings and messages");
  cmd->add_option("--uses", *uses, "Enroll tokens: how many agents may use it");
  cmd->add_option("--expires", *expires, "A UTC time (2026-12-01T00:00:00Z) or a duration (7d)");
  cmd->callback([=] {
    Json body = {{"role", *role}};
    if (!name->empty()) body["name"] = *name;
    if (*uses > 0) body["uses"] = *uses;
    if (!expires->empty()) body["expires"] = *expires;
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) { return a.Send("POST", "/api/v1/tokens", body, "token create"); },
        [](const Json& j) {
          std::printf("created %s token %s (id %s)%s\n\n  %s\n\n", S(j, "role").c_str(),
                      S(j, "name").c_str(), S(j, "id").c_str(),
                      j.contains("expires") ? (", expires " + S(j, "expires")).c_str() : "",
                      S(j, "token").c_str());
          std::printf("It is shown only now; only its hash is stored.\n");
        });
  });
}

void AddTokenList(CLI::App* tok, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto* cmd = Sub(tok, "list", "List tokens (never their secrets)", site.get());
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json, [](ApiClient& a) { return a.Get("/api/v1/tokens", "token list"); },
        [](const Json& j) {
          std::vector<std::vector<std::string>> rows;
          for (const auto& t : j["tokens"]) {
            rows.push_back({S(t, "id"), S(t, "role"), S(t, "name"), S(t, "state"), S(t, "created"),
                            S(t, "expires"), S(t, "uses_left"), S(t, "last_used")});
          }
          PrintTable(
              {"ID", "ROLE", "NAME", "STATE", "CREATED", "EXPIRES", "USES LEFT", "LAST USED"},
              rows);
        });
  });
}

void AddTokenRevoke(CLI::App* tok, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto id = std::make_shared<long long>(0);
  auto* cmd = Sub(tok, "revoke", "Revoke a token at once", site.get());
  cmd->add_option("ID", *id, "Token id (see token list)")->required();
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.SendRaw("DELETE", "/api/v1/tokens/" + std::to_string(*id), {},
                           "application/json", "token revoke");
        },
        [&](const Json&) { std::printf("revoked token %lld\n", *id); });
  });
}

}  // namespace

void AddTokenCommands(CLI::App* app, AdminCtx c) {
  auto* tok = app->add_subcommand("token", "Create, list and revoke credentials");
  tok->require_subcommand(1);
  AddTokenCreate(tok, c);
  AddTokenList(tok, c);
  AddTokenRevoke(tok, c);
}

}  // namespace depot::cli
