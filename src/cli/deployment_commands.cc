// depot deploy, and depot deployment list | show | cancel.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

using core::Status;

namespace {

// A deployment's fields, then its client counts by state.
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

// --window HH:MM+DURATION[@TZ] as the site's window object.
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

void AddDeploy(CLI::App* app, AdminCtx c) {
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

void AddDeploymentList(CLI::App* dep, AdminCtx c) {
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

// deployment show | cancel: both print the deployment; show adds its reports.
void AddDeploymentShowOrCancel(CLI::App* dep, AdminCtx c, const char* verb) {
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

}  // namespace

void AddDeploymentCommands(CLI::App* app, AdminCtx c) {
  AddDeploy(app, c);
  auto* dep = app->add_subcommand("deployment", "List, inspect and cancel deployments");
  dep->require_subcommand(1);
  AddDeploymentList(dep, c);
  for (const char* verb : {"show", "cancel"}) AddDeploymentShowOrCancel(dep, c, verb);
}

}  // namespace depot::cli
