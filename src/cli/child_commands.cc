// depot child add | set | list | show | remove: a parent site's child sites
// (docs/hierarchy.md). The child side is `depot site init --parent`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"
#include "core/toml_config.h"

namespace depot::cli {

namespace {

// --max-rate and --window, shared by add and set.
struct ScheduleFlags {
  std::string max_rate;
  std::vector<std::string> windows;
  bool all_packages = false;
};

void AddScheduleFlags(CLI::App* cmd, ScheduleFlags* f) {
  cmd->add_option("--max-rate", f->max_rate,
                  "Bandwidth of the link, shared by all its transfers (like 10MiB; 0: none)");
  cmd->add_option("--window", f->windows,
                  "Daily window HH:MM+DURATION[@ZONE] (default UTC) outside which only metadata "
                  "and status move, like 22:00+6h@Europe/Berlin (repeatable; `none` clears them)");
}

// "22:00+6h" -> {"start": "22:00", "duration": "6h"}.
core::Result<Json> ParseWindowFlags(const std::vector<std::string>& flags) {
  Json out = Json::array();
  for (const auto& w : flags) {
    if (w == "none") continue;
    auto plus = w.find('+');
    std::string start = w.substr(0, plus);
    std::string rest = plus == std::string::npos ? "" : w.substr(plus + 1);
    std::string tz = "UTC";
    if (auto at = rest.find('@'); at != std::string::npos) {
      tz = rest.substr(at + 1);
      rest = rest.substr(0, at);
    }
    if (start.empty() || rest.empty())
      return core::Status::InvalidArgument("--window `" + w +
                                           "` must be HH:MM+DURATION like 22:00+6h");
    out.push_back({{"start", start}, {"duration", rest}, {"tz", tz}});
  }
  return out;
}

core::Status ScheduleBody(const ScheduleFlags& f, bool all_set, Json* body) {
  if (!f.max_rate.empty()) {
    auto r = core::ParseSize(f.max_rate);
    if (!r.ok())
      return core::Status::InvalidArgument("--max-rate `" + f.max_rate +
                                           "` must be a size like 10MiB");
    (*body)["max_rate"] = *r;
  }
  if (!f.windows.empty()) {
    DEPOT_ASSIGN_OR_RETURN(Json w, ParseWindowFlags(f.windows));
    (*body)["windows"] = w;
  }
  if (all_set) (*body)["all_packages"] = f.all_packages;
  return core::Status::Ok();
}

void PrintChildren(const Json& j) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : j["children"]) {
    const Json& l = c["link"];
    rows.push_back(
        {S(c, "code"), S(c, "health"), S(c, "last_feed"), S(c, "last_report"),
         l.is_object() ? S(l, "versions_behind") : "",
         l.is_object() ? HumanBytes(l.value("bytes_behind", 0ull)) : "",
         c.value("max_rate", 0) == 0 ? "-" : HumanBytes(c.value("max_rate", 0ull)) + "/s"});
  }
  PrintTable({"CODE", "HEALTH", "LAST FEED POLL", "LAST REPORT", "VERSIONS BEHIND", "BYTES BEHIND",
              "MAX RATE"},
             rows);
}

void AddChildAdd(CLI::App* child, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto code = std::make_shared<std::string>();
  auto sched = std::make_shared<ScheduleFlags>();
  auto* cmd = Sub(child, "add", "Add a child site (prints its token)", site.get());
  cmd->add_option("CODE", *code, "The child's site code")->required();
  AddScheduleFlags(cmd, sched.get());
  cmd->add_flag("--all-packages", sched->all_packages,
                "It pulls every package (else those given with distribute --to child:CODE)");
  cmd->callback([=] {
    Json body = {{"code", *code}};
    core::Status s = ScheduleBody(*sched, true, &body);
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
    sched->all_packages = *all == "yes";
    core::Status s = ScheduleBody(*sched, !all->empty(), &body);
    if (s.ok() && !sched->windows.empty() && sched->windows[0] == "none")
      body["windows"] = Json::array();
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
