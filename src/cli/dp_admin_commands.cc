// depot dp add | set | remove | list | show, and depot distribute: registering DPs with a
// site and assigning packages to them. (dp serve | verify live in dp_commands.cc.)
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

namespace {

void AddDpAdd(CLI::App* dp, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto url = std::make_shared<std::string>();
  auto groups = std::make_shared<std::vector<std::string>>();
  auto bounds = std::make_shared<std::vector<std::string>>();
  auto sched = std::make_shared<ScheduleFlags>();
  auto* cmd = Sub(dp, "add", "Register a DP (prints its token)", site.get());
  cmd->add_option("NAME", *name, "DP name")->required();
  cmd->add_option("--url", *url, "Base URL agents and the site use for it")->required();
  cmd->add_option("--group", *groups, "DP group (repeatable)");
  cmd->add_option("--boundary", *bounds, "CIDR of clients it serves first (repeatable)");
  AddScheduleFlags(cmd, sched.get());
  cmd->callback([=] {
    Json body = {{"name", *name}, {"url", *url}, {"groups", *groups}, {"boundaries", *bounds}};
    if (core::Status s = ScheduleBody(*sched, &body); !s.ok()) {
      *c.exit_code = ReportError(s, c.flags->json);
      return;
    }
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) { return a.Send("POST", "/api/v1/dps", body, "dp add"); },
        [](const Json& j) {
          std::printf("added DP %s at %s\n\nIts token (shown only now):\n\n  %s\n\n",
                      S(j, "name").c_str(), S(j, "url").c_str(), S(j, "token").c_str());
        });
  });
}

void AddDpSet(CLI::App* dp, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto name = std::make_shared<std::string>();
  auto sched = std::make_shared<ScheduleFlags>();
  auto* cmd = Sub(dp, "set", "Change a DP's link schedule (applies at its next poll)", site.get());
  cmd->add_option("NAME", *name, "DP name")->required();
  AddScheduleFlags(cmd, sched.get());
  cmd->callback([=] {
    Json body = Json::object();
    if (core::Status s = ScheduleBody(*sched, &body); !s.ok()) {
      *c.exit_code = ReportError(s, c.flags->json);
      return;
    }
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.Send("PATCH", "/api/v1/dps/" + Escape(*name), body, "dp set");
        },
        [](const Json& j) {
          const Json& s = j["schedule"];
          std::printf("DP %s: max rate %s, %zu window(s)\n", S(j, "name").c_str(),
                      RateText(s).c_str(), s["windows"].size());
        });
  });
}

void AddDpRemove(CLI::App* dp, AdminCtx c) {
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

void AddDpList(CLI::App* dp, AdminCtx c) {
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
                            S(v, "ready"), S(v, "syncing"), S(v, "pending"), S(v, "failed"),
                            RateText(d["schedule"])});
          }
          PrintTable({"NAME", "URL", "GROUPS", "REACHABLE", "LAST SEEN", "READY", "SYNCING",
                      "PENDING", "FAILED", "MAX RATE"},
                     rows);
        });
  });
}

void AddDpShow(CLI::App* dp, AdminCtx c) {
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
          const Json& s = j["schedule"];
          std::printf("%-14s %s\n", "max rate", RateText(s).c_str());
          for (const auto& w : s["windows"]) {
            std::printf("%-14s %s for %llds (%s)\n", "window", S(w, "start").c_str(),
                        static_cast<long long>(w.value("duration_s", 0ll)), S(w, "tz").c_str());
          }
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

}  // namespace

void AddDpCommands(CLI::App* app, AdminCtx c) {
  auto* dp = app->add_subcommand("dp", "Manage and run distribution points");
  dp->require_subcommand(1);
  AddDpServeCommands(dp, c.flags, c.exit_code);
  AddDpAdd(dp, c);
  AddDpSet(dp, c);
  AddDpRemove(dp, c);
  AddDpList(dp, c);
  AddDpShow(dp, c);
}

void AddDistributeCommand(CLI::App* app, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto package = std::make_shared<std::string>();
  auto to = std::make_shared<std::vector<std::string>>();
  auto remove = std::make_shared<bool>(false);
  auto* cmd = Sub(app, "distribute",
                  "Assign a package (current and future versions) to DPs or DP groups", site.get());
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

}  // namespace depot::cli
