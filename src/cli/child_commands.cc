// depot child add | set | list | show | remove: a parent site's child sites
// (docs/hierarchy.md). The child side is `depot site init --parent`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

namespace {

void PrintChildren(const Json& j) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : j["children"]) {
    const Json& l = c["link"];
    rows.push_back({S(c, "code"), S(c, "health"), S(c, "last_feed"), S(c, "last_report"),
                    l.is_object() ? S(l, "versions_behind") : "",
                    l.is_object() ? HumanBytes(l.value("bytes_behind", 0ull)) : "", RateText(c)});
  }
  PrintTable({"CODE", "HEALTH", "LAST FEED POLL", "LAST REPORT", "VERSIONS BEHIND", "BYTES BEHIND",
              "MAX RATE"},
             rows);
}

void AddChildAdd(CLI::App* child, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto code = std::make_shared<std::string>();
  auto sched = std::make_shared<ScheduleFlags>();
  auto all = std::make_shared<bool>(false);
  auto* cmd = Sub(child, "add", "Add a child site (prints its token)", site.get());
  cmd->add_option("CODE", *code, "The child's site code")->required();
  AddScheduleFlags(cmd, sched.get());
  cmd->add_flag("--all-packages", *all,
                "It pulls every package (else those given with distribute --to child:CODE)");
  cmd->callback([=] {
    Json body = {{"code", *code}, {"all_packages", *all}};
    core::Status s = ScheduleBody(*sched, &body);
    if (!s.ok()) {
      *c.exit_code = ReportError(s, c.flags->json);
      return;
    }
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) { return a.Send("POST", "/api/v1/children", body, "child add"); },
        [](const Json& j) {
          std::printf(
              "added child site %s\n\nIts token (shown only now):\n\n  %s\n\n"
              "Create the child with:\n  depot site init --data DIR --code %s "
              "--parent URL-OF-THIS-SITE --parent-token TOKEN\n",
              S(j, "code").c_str(), S(j, "token").c_str(), S(j, "code").c_str());
        });
  });
}

void AddChildSet(CLI::App* child, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto code = std::make_shared<std::string>();
  auto sched = std::make_shared<ScheduleFlags>();
  auto all = std::make_shared<std::string>();
  auto* cmd =
      Sub(child, "set", "Change a child's link schedule (applies without restart)", site.get());
  cmd->add_option("CODE", *code, "The child's site code")->required();
  AddScheduleFlags(cmd, sched.get());
  cmd->add_option("--all-packages", *all, "yes: it pulls every package; no: only those assigned");
  cmd->callback([=] {
    Json body = Json::object();
    if (!all->empty()) body["all_packages"] = *all == "yes";
    core::Status s = ScheduleBody(*sched, &body);
    if (s.ok() && !all->empty() && *all != "yes" && *all != "no")
      s = core::Status::InvalidArgument("--all-packages `" + *all + "` must be yes or no");
    if (!s.ok()) {
      *c.exit_code = ReportError(s, c.flags->json);
      return;
    }
    *c.exit_code = WithApi(
        *site, c.flags->json,
        [&](ApiClient& a) {
          return a.Send("PATCH", "/api/v1/children/" + Escape(*code), body, "child set");
        },
        [](const Json& j) { PrintObject(j); });
  });
}

}  // namespace

void AddChildCommands(CLI::App* app, AdminCtx c) {
  auto* child = app->add_subcommand("child", "Manage the child sites of this site");
  child->require_subcommand(1);
  AddChildAdd(child, c);
  AddChildSet(child, c);
  {
    auto site = std::make_shared<SiteFlags>();
    auto* cmd = Sub(child, "list", "Child sites with their link health", site.get());
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [](ApiClient& a) { return a.Get("/api/v1/children", "child list"); }, PrintChildren);
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto code = std::make_shared<std::string>();
    auto* cmd = Sub(child, "show", "A child site: its link, packages and subtree", site.get());
    cmd->add_option("CODE", *code, "The child's site code")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) { return a.Get("/api/v1/children/" + Escape(*code), "child show"); },
          [](const Json& j) { PrintObject(j); });
    });
  }
  {
    auto site = std::make_shared<SiteFlags>();
    auto code = std::make_shared<std::string>();
    auto* cmd =
        Sub(child, "remove", "Remove a child site: its token stops working at once", site.get());
    cmd->add_option("CODE", *code, "The child's site code")->required();
    cmd->callback([=] {
      *c.exit_code = WithApi(
          *site, c.flags->json,
          [&](ApiClient& a) {
            return a.SendRaw("DELETE", "/api/v1/children/" + Escape(*code), {}, "application/json",
                             "child remove");
          },
          [](const Json& j) { std::printf("removed child site %s\n", S(j, "code").c_str()); });
    });
  }
}

}  // namespace depot::cli
