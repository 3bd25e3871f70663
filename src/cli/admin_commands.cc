// The commands that talk to a site's admin API: token, package, dp, distribute,
// collection, deploy, deployment, client, messages, status.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <functional>
#include <memory>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "cli/package_upload.h"
#include "cli/programs.h"
#include "core/json_text.h"

namespace depot::cli {

using core::Status;

namespace {

std::string S(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

// Connects, runs `fn`, prints its JSON (--json) or lets `human` print it.
int WithApi(const SiteFlags& site, bool json,
            const std::function<core::Result<Json>(ApiClient&)>& fn,
            const std::function<void(const Json&)>& human) {
  auto api = ApiClient::Connect(site);
  if (!api.ok()) return ReportError(api.status(), json);
  auto r = fn(**api);
  if (!r.ok()) return ReportError(r.status(), json);
  if (json) {
    PrintJson(*r);
  } else {
    human(*r);
  }
  return kExitOk;
}

void PrintObject(const Json& j, int indent = 0) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_object() || (it->is_array() && !it->empty() && (*it)[0].is_object())) continue;
    std::printf("%*s%-14s %s\n", indent, "", it.key().c_str(),
                it->is_string() ? it->get<std::string>().c_str() : it->dump().c_str());
  }
}

struct Ctx {
  GlobalFlags* flags;
  int* exit_code;
};

// `depot status`: each DP that is not ready, with its state, since when and why.
void PrintDpsNotReady(const Json& dps) {
  if (dps.empty()) return;
  std::printf("DPs not ready:\n");
  for (const auto& d : dps) {
    std::string versions;
    std::size_t shown = 0;
    for (const auto& v : d["versions"]) {
      if (++shown > 4) {
        versions += ", ...";
        break;
      }
      versions += (versions.empty() ? "" : ", ") + S(v, "package") + " v" + S(v, "version") + " (" +
                  S(v, "state") + ")";
    }
    std::printf("  %-16s %-11s since %s%s%s\n", S(d, "name").c_str(), S(d, "state").c_str(),
                S(d, "since").c_str(), versions.empty() ? "" : (": " + versions).c_str(),
                S(d, "detail").empty()
                    ? ""
                    : ("\n  " + std::string(16, ' ') + " " + S(d, "detail")).c_str());
  }
}

CLI::App* Sub(CLI::App* parent, const char* name, const char* help, SiteFlags* site) {
  auto* cmd = parent->add_subcommand(name, help);
  AddSiteFlags(cmd, site);
  return cmd;
}

void AddTokenCommands(CLI::App* app, Ctx c) {
  auto* tok = app->add_subcommand("token", "Create, list and revoke credentials");
  tok->require_subcommand(1);
  {
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
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd = Sub(tok, "list", "List tokens (never their secrets)", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json, [](ApiClient& a) { return a.Get("/api/v1/tokens", "token list"); },
          [](const Json& j) {
            std::vector<std::vector<std::string>> rows;
            for (const auto& t : j["tokens"]) {
              rows.push_back({S(t, "id"), S(t, "role"), S(t, "name"), S(t, "state"),
                              S(t, "created"), S(t, "expires"), S(t, "uses_left"),
                              S(t, "last_used")});
            }
            PrintTable(
                {"ID", "ROLE", "NAME", "STATE", "CREATED", "EXPIRES", "USES LEFT", "LAST USED"},
                rows);
          });
    });
  }
  {
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
}

void AddPackageCommands(CLI::App* app, Ctx c) {
  auto* pkg = app->add_subcommand("package", "Create, update, inspect and delete packages");
  pkg->require_subcommand(1);
  for (bool create : {true, false}) {
    auto site = std::make_shared<SiteFlags>();
    auto req = std::make_shared<UploadRequest>();
    auto pf = std::make_shared<ProgramFlags>();
    auto* cmd = Sub(pkg, create ? "create" : "update",
                    create ? "Snapshot a directory as version 1 of a new package"
                           : "Snapshot a directory as the next version",
                    site.get());
    cmd->add_option("NAME", req->package, "Package name")->required();
    cmd->add_option("--source", req->source_dir, "Source directory")->required();
    cmd->add_option("--description", req->description, "Free text shown to operators");
    cmd->add_option("--parallel", req->parallel, "Upload connections (default 2)");
    if (!create) {
      cmd->add_flag("--force", req->force,
                    "Create the version even if it lacks a program a live deployment runs");
    }
    AddProgramFlags(cmd, pf.get(), /*removable=*/!create);
    cmd->callback([=] {
      bool json = c.flags->json;
      auto api = ApiClient::Connect(*site);
      if (!api.ok()) {
        *c.exit_code = ReportError(api.status(), json);
        return;
      }
      // An update starts from the newest version's programs: a version without them
      // would fail every deployment that follows the newest version.
      std::vector<store::Program> base;
      if (!create) {
        auto latest =
            (*api)->Get("/api/v1/packages/" + Escape(req->package) + "/programs", "package update");
        if (!latest.ok() && !latest.status().IsNotFound()) {
          *c.exit_code = ReportError(latest.status(), json);
          return;
        }
        if (latest.ok()) {
          auto parsed = store::ParsePrograms(core::DumpJson((*latest)["programs"]));
          if (!parsed.ok()) {
            *c.exit_code = ReportError(
                parsed.status().WithContext("the site's programs of " + req->package), json);
            return;
          }
          base = std::move(*parsed);
        }
      }
      auto programs = BuildPrograms(*pf, std::move(base));
      if (!programs.ok()) {
        *c.exit_code = ReportError(programs.status(), json);
        return;
      }
      UploadRequest r = *req;
      r.programs = *programs;
      r.create = create;
      auto res = UploadPackage(api->get(), r);
      if (!res.ok()) {
        *c.exit_code = ReportError(
            res.status().WithContext(std::string("package ") + (create ? "create" : "update")),
            json);
        return;
      }
      if (json) {
        Json out = res->version;
        out["uploaded_chunks"] = res->missing_chunks;
        out["uploaded_bytes"] = res->uploaded_bytes;
        out["seconds"] = {
            {"snapshot", res->snapshot_s}, {"upload", res->upload_s}, {"commit", res->commit_s}};
        PrintJson(out);
      } else {
        const Json& v = res->version;
        std::printf("%s %s version %s\n", create ? "created" : "updated", S(v, "package").c_str(),
                    S(v, "version").c_str());
        std::printf("  manifest  %s\n", S(v, "manifest_id").c_str());
        std::printf("  files     %llu files, %s, %llu chunks\n",
                    static_cast<unsigned long long>(res->files), HumanBytes(res->bytes).c_str(),
                    static_cast<unsigned long long>(res->chunks));
        std::printf("  uploaded  %llu chunks the site lacked (%s compressed)\n",
                    static_cast<unsigned long long>(res->missing_chunks),
                    HumanBytes(res->uploaded_bytes).c_str());
        if (r.programs.empty())
          std::printf("  programs  none (agents cannot install it; add --program NAME=COMMAND)\n");
        for (std::size_t i = 0; i < r.programs.size(); ++i) {
          std::printf("  %-9s %s\n", i == 0 ? "programs" : "",
                      DescribeProgram(r.programs[i]).c_str());
        }
        for (const auto& o : v.value("orphaned_deployments", Json::array())) {
          std::printf(
              "  warning   deployment %s runs program `%s`, which this version lacks: its agents "
              "will "
              "fail (4009) until it is cancelled or pinned\n",
              S(o, "deployment").c_str(), S(o, "program").c_str());
        }
        std::printf("  time      snapshot+upload %.2f s, upload tail %.2f s, commit %.2f s\n",
                    res->snapshot_s, res->upload_s, res->commit_s);
      }
      *c.exit_code = kExitOk;
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd = Sub(pkg, "list", "List packages", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [](ApiClient& a) { return a.Get("/api/v1/packages", "package list"); },
          [](const Json& j) {
            std::vector<std::vector<std::string>> rows;
            for (const auto& p : j["packages"]) {
              rows.push_back({S(p, "name"), S(p, "latest_version"), S(p, "versions"),
                              HumanBytes(p.value("latest_bytes", 0ull)), S(p, "deployments"),
                              S(p, "description")});
            }
            PrintTable({"NAME", "LATEST", "VERSIONS", "SIZE", "DEPLOYMENTS", "DESCRIPTION"}, rows);
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto* cmd =
        Sub(pkg, "show", "Versions, sizes, distribution and deployments of a package", site.get());
    cmd->add_option("NAME", *name, "Package name")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Get("/api/v1/packages/" + Escape(*name), "package show"); },
          [](const Json& j) {
            PrintObject(j);
            std::printf("\nversions:\n");
            std::vector<std::vector<std::string>> rows;
            for (const auto& v : j["versions"]) {
              int ready = 0, total = 0;
              for (const auto& d : v["dps"]) {
                ++total;
                ready += d["state"] == "ready";
              }
              rows.push_back({S(v, "version"), S(v, "state"), S(v, "files"),
                              HumanBytes(v.value("bytes", 0ull)),
                              std::to_string(ready) + "/" + std::to_string(total), S(v, "created"),
                              S(v, "manifest_id").substr(0, 16)});
            }
            PrintTable({"VERSION", "STATE", "FILES", "SIZE", "DPS READY", "CREATED", "MANIFEST"},
                       rows);
            std::printf("\ndistributed to:");
            for (const auto& t : j["distributed_to"])
              std::printf(" %s:%s", S(t, "kind").c_str(), S(t, "name").c_str());
            std::printf("\ndeployments:");
            for (const auto& d : j["deployments"]) {
              std::printf(" #%s(%s %s to %s)", S(d, "id").c_str(), S(d, "state").c_str(),
                          S(d, "kind").c_str(), S(d, "collection").c_str());
            }
            std::printf("\n");
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto* cmd = Sub(pkg, "delete", "Delete a package: out of every policy and assignment at once",
                    site.get());
    cmd->add_option("NAME", *name, "Package name")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) {
            return a.SendRaw("DELETE", "/api/v1/packages/" + Escape(*name), {}, "application/json",
                             "package delete");
          },
          [](const Json& j) {
            std::printf(
                "deleted %s: %s versions retired, %s deployments cancelled; content collected "
                "after %s\n",
                S(j, "package").c_str(), S(j, "versions_retired").c_str(),
                S(j, "deployments_cancelled").c_str(), S(j, "content_collected_after").c_str());
          });
    });
  }
}

void AddDpCommands(CLI::App* app, Ctx c) {
  auto* dp = app->add_subcommand("dp", "Manage and run distribution points");
  dp->require_subcommand(1);
  AddDpServeCommands(dp, c.flags, c.exit_code);
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto url = std::make_shared<std::string>();
    auto groups = std::make_shared<std::vector<std::string>>();
    auto bounds = std::make_shared<std::vector<std::string>>();
    auto* cmd = Sub(dp, "add", "Register a DP (prints its token)", site.get());
    cmd->add_option("NAME", *name, "DP name")->required();
    cmd->add_option("--url", *url, "Base URL agents and the site use for it")->required();
    cmd->add_option("--group", *groups, "DP group (repeatable)");
    cmd->add_option("--boundary", *bounds, "CIDR of clients it serves first (repeatable)");
    cmd->callback([=] {
      Json body = {{"name", *name}, {"url", *url}, {"groups", *groups}, {"boundaries", *bounds}};
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Send("POST", "/api/v1/dps", body, "dp add"); },
          [](const Json& j) {
            std::printf("added DP %s at %s\n\nIts token (shown only now):\n\n  %s\n\n",
                        S(j, "name").c_str(), S(j, "url").c_str(), S(j, "token").c_str());
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto* cmd = Sub(dp, "remove", "Remove a DP and cancel its work at once", site.get());
    cmd->add_option("NAME", *name, "DP name")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) {
            return a.SendRaw("DELETE", "/api/v1/dps/" + Escape(*name), {}, "application/json",
                             "dp remove");
          },
          [](const Json& j) {
            std::printf("removed DP %s (%s records cancelled)\n", S(j, "name").c_str(),
                        S(j, "records_cancelled").c_str());
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd = Sub(dp, "list", "List DPs with their version states", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json, [](ApiClient& a) { return a.Get("/api/v1/dps", "dp list"); },
          [](const Json& j) {
            std::vector<std::vector<std::string>> rows;
            for (const auto& d : j["dps"]) {
              std::string groups;
              for (const auto& g : d["groups"])
                groups += (groups.empty() ? "" : ",") + g.get<std::string>();
              const Json& v = d["versions"];
              rows.push_back({S(d, "name"), S(d, "url"), groups,
                              d["reachable"].get<bool>() ? "yes" : "NO", S(d, "last_seen"),
                              S(v, "ready"), S(v, "syncing"), S(v, "pending"), S(v, "failed")});
            }
            PrintTable({"NAME", "URL", "GROUPS", "REACHABLE", "LAST SEEN", "READY", "SYNCING",
                        "PENDING", "FAILED"},
                       rows);
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto* cmd = Sub(dp, "show", "A DP's settings and every version record", site.get());
    cmd->add_option("NAME", *name, "DP name")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Get("/api/v1/dps/" + Escape(*name), "dp show"); },
          [](const Json& j) {
            PrintObject(j);
            std::vector<std::vector<std::string>> rows;
            for (const auto& v : j["versions"]) {
              rows.push_back({S(v, "package"), S(v, "version"), S(v, "state"), S(v, "attempts"),
                              HumanBytes(v.value("bytes_done", 0ull)) + "/" +
                                  HumanBytes(v.value("bytes_total", 0ull)),
                              S(v, "next_retry"), S(v, "last_error")});
            }
            std::printf("\n");
            PrintTable(
                {"PACKAGE", "VERSION", "STATE", "ATTEMPTS", "BYTES", "NEXT RETRY", "LAST ERROR"},
                rows);
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto package = std::make_shared<std::string>();
    auto to = std::make_shared<std::vector<std::string>>();
    auto remove = std::make_shared<bool>(false);
    auto* cmd =
        Sub(app, "distribute", "Assign a package (current and future versions) to DPs or DP groups",
            site.get());
    cmd->add_option("PACKAGE", *package, "Package name")->required();
    cmd->add_option("--to", *to, "DP or group names (dp:NAME, group:NAME to be explicit)")
        ->required();
    cmd->add_flag("--remove", *remove, "Remove the assignment instead");
    cmd->callback([=] {
      Json body = {{"package", *package}, {"to", *to}, {"remove", *remove}};
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Send("POST", "/api/v1/distributions", body, "distribute"); },
          [=](const Json& j) {
            std::string targets;
            for (const auto& t : j[*remove ? "removed" : "assigned"])
              targets += " " + t.get<std::string>();
            std::printf("%s %s%s\n", *remove ? "unassigned" : "assigned", package->c_str(),
                        targets.c_str());
          });
    });
  }
}

void AddCollectionCommands(CLI::App* app, Ctx c) {
  auto* col = app->add_subcommand("collection", "Manage collections of clients");
  col->require_subcommand(1);
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto rule = std::make_shared<std::string>();
    auto members = std::make_shared<std::vector<std::string>>();
    auto desc = std::make_shared<std::string>();
    auto* cmd = Sub(col, "create", "Create a static or rule collection", site.get());
    cmd->add_option("NAME", *name, "Collection name")->required();
    cmd->add_option("--rule", *rule,
                    "Membership rule, e.g. 'os == \"linux\" and ips in 10.0.0.0/8'");
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
  {
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
  {
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
  {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto* cmd = Sub(col, "delete", "Delete a collection no deployment uses", site.get());
    cmd->add_option("NAME", *name, "Collection name")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) {
            return a.SendRaw("DELETE", "/api/v1/collections/" + Escape(*name), {},
                             "application/json", "collection delete");
          },
          [&](const Json&) { std::printf("deleted collection %s\n", name->c_str()); });
    });
  }
  for (const char* verb : {"add", "remove"}) {
    auto site = std::make_shared<SiteFlags>();
    auto name = std::make_shared<std::string>();
    auto clients = std::make_shared<std::vector<std::string>>();
    std::string v = verb;
    auto* cmd = Sub(col, verb,
                    v == "add" ? "Add clients to a static collection"
                               : "Remove clients from a static collection",
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
  {
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
}

void PrintDeployment(const Json& d) {
  PrintObject(d);
  const Json& n = d["clients"];
  std::printf(
      "clients        %s targeted: %s waiting, %s downloading, %s downloaded, %s installing, %s "
      "succeeded, %s failed\n",
      S(n, "targeted").c_str(), S(n, "waiting").c_str(), S(n, "downloading").c_str(),
      S(n, "downloaded").c_str(), S(n, "installing").c_str(), S(n, "succeeded").c_str(),
      S(n, "failed").c_str());
}

core::Result<Json> ParseWindow(const std::string& w) {
  // HH:MM+DURATION[@TZ]
  auto plus = w.find('+');
  if (plus == std::string::npos) {
    return Status::InvalidArgument("--window `" + w +
                                   "` must look like 22:00+4h or 22:00+4h@Europe/Berlin");
  }
  std::string rest = w.substr(plus + 1);
  std::string tz = "UTC";
  auto at = rest.find('@');
  if (at != std::string::npos) {
    tz = rest.substr(at + 1);
    rest = rest.substr(0, at);
  }
  return Json{{"start", w.substr(0, plus)}, {"duration", rest}, {"tz", tz}};
}

void AddDeploymentCommands(CLI::App* app, Ctx c) {
  {
    auto site = std::make_shared<SiteFlags>();
    auto package = std::make_shared<std::string>();
    auto program = std::make_shared<std::string>();
    auto to = std::make_shared<std::string>();
    auto required = std::make_shared<bool>(false);
    auto start = std::make_shared<std::string>();
    auto deadline = std::make_shared<std::string>();
    auto windows = std::make_shared<std::vector<std::string>>();
    auto version = std::make_shared<long long>(0);
    auto* cmd = Sub(app, "deploy", "Deploy a package's program to a collection", site.get());
    cmd->add_option("PACKAGE", *package, "Package name")->required();
    cmd->add_option("--program", *program, "Program from the package's manifest")->required();
    cmd->add_option("--to", *to, "Collection name")->required();
    cmd->add_flag("--required", *required,
                  "Required (installed by the deadline), else available on request");
    cmd->add_option("--start", *start, "now, a UTC time, or +DURATION (default now)");
    cmd->add_option("--deadline", *deadline, "A UTC time or +DURATION");
    cmd->add_option("--window", *windows,
                    "Daily maintenance window HH:MM+DURATION[@TZ] (repeatable)");
    cmd->add_option("--version", *version, "Pin a version (default: always the newest)");
    cmd->callback([=] {
      Json body = {{"package", *package},
                   {"program", *program},
                   {"collection", *to},
                   {"kind", *required ? "required" : "available"}};
      if (!start->empty()) body["start"] = *start;
      if (!deadline->empty()) body["deadline"] = *deadline;
      if (*version > 0) body["version"] = *version;
      Json ws = Json::array();
      for (const auto& w : *windows) {
        auto j = ParseWindow(w);
        if (!j.ok()) {
          *c.exit_code = ReportError(j.status(), c.flags->json);
          return;
        }
        ws.push_back(*j);
      }
      body["windows"] = ws;
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Send("POST", "/api/v1/deployments", body, "deploy"); },
          [](const Json& j) {
            std::printf("created deployment %s\n", S(j, "id").c_str());
            PrintDeployment(j);
          });
    });
  }
  auto* dep = app->add_subcommand("deployment", "List, inspect and cancel deployments");
  dep->require_subcommand(1);
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd = Sub(dep, "list", "List deployments with client counts", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [](ApiClient& a) { return a.Get("/api/v1/deployments", "deployment list"); },
          [](const Json& j) {
            std::vector<std::vector<std::string>> rows;
            for (const auto& d : j["deployments"]) {
              const Json& n = d["clients"];
              rows.push_back({S(d, "id"), S(d, "package"), S(d, "program"), S(d, "collection"),
                              S(d, "kind"), S(d, "state"), S(n, "targeted"), S(n, "succeeded"),
                              S(n, "failed"), S(d, "deadline")});
            }
            PrintTable({"ID", "PACKAGE", "PROGRAM", "COLLECTION", "KIND", "STATE", "TARGETED",
                        "SUCCEEDED", "FAILED", "DEADLINE"},
                       rows);
          });
    });
  }
  for (const char* verb : {"show", "cancel"}) {
    auto site = std::make_shared<SiteFlags>();
    auto id = std::make_shared<long long>(0);
    std::string v = verb;
    auto* cmd =
        Sub(dep, verb, v == "show" ? "A deployment and its client reports" : "Cancel a deployment",
            site.get());
    cmd->add_option("ID", *id, "Deployment id")->required();
    cmd->callback([=] {
      std::string target = "/api/v1/deployments/" + std::to_string(*id);
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) {
            return v == "show"
                       ? a.Get(target, "deployment show")
                       : a.Send("POST", target + "/cancel", Json::object(), "deployment cancel");
          },
          [=](const Json& j) {
            PrintDeployment(j);
            if (v != "show") return;
            std::vector<std::vector<std::string>> rows;
            for (const auto& r : j["reports"]) {
              rows.push_back({S(r, "client"), S(r, "name"), S(r, "state"), S(r, "version"),
                              S(r, "exit_code"), S(r, "updated"), S(r, "detail")});
            }
            std::printf("\n");
            PrintTable({"CLIENT", "NAME", "STATE", "VERSION", "EXIT", "UPDATED", "DETAIL"}, rows);
          });
    });
  }
}

void AddStatusCommands(CLI::App* app, Ctx c) {
  auto* cl = app->add_subcommand("client", "List and inspect managed clients");
  cl->require_subcommand(1);
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd = Sub(cl, "list", "List enrolled clients", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [](ApiClient& a) { return a.Get("/api/v1/clients", "client list"); },
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
  {
    auto site = std::make_shared<SiteFlags>();
    auto id = std::make_shared<std::string>();
    auto* cmd =
        Sub(cl, "show", "A client's attributes, collections, reports and policy", site.get());
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
  {
    auto site = std::make_shared<SiteFlags>();
    auto since = std::make_shared<std::string>();
    auto severity = std::make_shared<std::string>();
    auto package = std::make_shared<std::string>();
    auto dpname = std::make_shared<std::string>();
    auto client = std::make_shared<std::string>();
    auto deployment = std::make_shared<long long>(0);
    auto code = std::make_shared<long long>(0);
    auto limit = std::make_shared<long long>(200);
    auto* cmd = Sub(app, "messages", "Status messages from the site, DPs and agents", site.get());
    cmd->add_option("--since", *since, "A UTC time, or a duration meaning that long ago (15m)");
    cmd->add_option("--severity", *severity, "Minimum severity: info, warning, error");
    cmd->add_option("--package", *package, "Only this package");
    cmd->add_option("--dp", *dpname, "Only this DP");
    cmd->add_option("--client", *client, "Only this client id");
    cmd->add_option("--deployment", *deployment, "Only this deployment");
    cmd->add_option("--code", *code, "Only this message id");
    cmd->add_option("--limit", *limit, "At most this many, newest (default 200)");
    cmd->callback([=] {
      std::string q = "?limit=" + std::to_string(*limit);
      auto add = [&](const char* k, const std::string& v) {
        if (!v.empty()) q += std::string("&") + k + "=" + Escape(v);
      };
      add("since", *since);
      add("severity", *severity);
      add("package", *package);
      add("dp", *dpname);
      add("client", *client);
      if (*deployment > 0) add("deployment", std::to_string(*deployment));
      if (*code > 0) add("code", std::to_string(*code));
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Get("/api/v1/messages" + q, "messages"); },
          [](const Json& j) {
            for (const auto& m : j["messages"]) {
              std::string count = m.value("count", 1) > 1
                                      ? " (x" + S(m, "count") + ", last " + S(m, "last_time") + ")"
                                      : "";
              std::printf("%s %-7s %s %-10s %s%s\n", S(m, "time").c_str(), S(m, "severity").c_str(),
                          S(m, "code").c_str(), S(m, "source").c_str(), S(m, "text").c_str(),
                          count.c_str());
            }
            if (j["messages"].empty()) std::printf("(no messages)\n");
          });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd =
        Sub(app, "status", "Overview: packages, DP coverage, deployments, clients", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json, [](ApiClient& a) { return a.Get("/api/v1/status", "status"); },
          [](const Json& j) {
            std::printf("site %s at %s\n\n", S(j["site"], "code").c_str(),
                        S(j["site"], "url").c_str());
            std::vector<std::vector<std::string>> rows;
            for (const auto& p : j["packages"]) {
              const Json& d = p["dps"];
              rows.push_back({S(p, "package"), S(p, "version"), HumanBytes(p.value("bytes", 0ull)),
                              S(d, "ready") + "/" + S(d, "assigned"), S(d, "failed")});
            }
            PrintTable({"PACKAGE", "VERSION", "SIZE", "DPS READY", "DPS FAILED"}, rows);
            const Json& q = j["distribution_queue"];
            std::printf(
                "\ndistribution: %s pending, %s syncing, %s ready, %s failed, %s withheld\n",
                S(q, "pending").c_str(), S(q, "syncing").c_str(), S(q, "ready").c_str(),
                S(q, "failed").c_str(), S(q, "verifying").c_str());
            PrintDpsNotReady(j.value("dps_not_ready", Json::array()));
            rows.clear();
            for (const auto& d : j["deployments"]) {
              const Json& n = d["clients"];
              rows.push_back({S(d, "id"), S(d, "package"), S(d, "collection"), S(d, "kind"),
                              S(n, "targeted"), S(n, "waiting"), S(n, "downloading"),
                              S(n, "installing"), S(n, "succeeded"), S(n, "failed")});
            }
            std::printf("\n");
            PrintTable({"DEPLOYMENT", "PACKAGE", "COLLECTION", "KIND", "TARGETED", "WAITING",
                        "DOWNLOADING", "INSTALLING", "SUCCEEDED", "FAILED"},
                       rows);
            const Json& cl2 = j["clients"];
            std::printf("\nclients: %s enrolled, %s not seen recently\n", S(cl2, "total").c_str(),
                        S(cl2, "offline").c_str());
            for (const auto& x : cl2["offline_list"]) {
              std::printf("  %s %s last seen %s\n", S(x, "id").c_str(), S(x, "name").c_str(),
                          S(x, "last_seen").empty() ? "never" : S(x, "last_seen").c_str());
            }
            // The site lists at most 100, those silent longest; the count is exact.
            const auto unlisted = cl2.value("offline", std::int64_t{0}) -
                                  static_cast<std::int64_t>(cl2["offline_list"].size());
            if (unlisted > 0) {
              std::printf(
                  "  ... %lld more (those listed are the ones silent longest; "
                  "`depot client list` shows every client)\n",
                  static_cast<long long>(unlisted));
            }
          });
    });
  }
}

}  // namespace

void AddAdminCommands(CLI::App* app, GlobalFlags* flags, int* exit_code) {
  Ctx c{flags, exit_code};
  AddTokenCommands(app, c);
  AddPackageCommands(app, c);
  AddDpCommands(app, c);
  AddCollectionCommands(app, c);
  AddDeploymentCommands(app, c);
  AddStatusCommands(app, c);
}

}  // namespace depot::cli
