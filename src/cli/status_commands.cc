// depot messages and depot status: what the site, its DPs and agents report.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/output.h"

namespace depot::cli {

namespace {

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

void AddMessages(CLI::App* app, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto since = std::make_shared<std::string>();
  auto severity = std::make_shared<std::string>();
  auto package = std::make_shared<std::string>();
  auto dpname = std::make_shared<std::string>();
  auto client = std::make_shared<std::string>();
  auto site_path = std::make_shared<std::string>();
  auto deployment = std::make_shared<long long>(0);
  auto code = std::make_shared<long long>(0);
  auto limit = std::make_shared<long long>(200);
  auto* cmd = Sub(app, "messages", "Status messages from the site, DPs and agents", site.get());
  cmd->add_option("--since", *since, "A UTC time, or a duration meaning that long ago (15m)");
  cmd->add_option("--severity", *severity, "Minimum severity: info, warning, error");
  cmd->add_option("--package", *package, "Only this package");
  cmd->add_option("--dp", *dpname, "Only this DP");
  cmd->add_option("--client", *client, "Only this client id");
  cmd->add_option("--from-site", *site_path,
                  "Only this site of the tree and its subtree (B, B/D; `.` this site's own)");
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
    add("site", *site_path);
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
            std::string where = S(m, "site").empty() ? "" : "[" + S(m, "site") + "] ";
            std::printf("%s %-7s %s %s%-10s %s%s\n", S(m, "time").c_str(), S(m, "severity").c_str(),
                        S(m, "code").c_str(), where.c_str(), S(m, "source").c_str(),
                        S(m, "text").c_str(), count.c_str());
          }
          if (j["messages"].empty()) std::printf("(no messages)\n");
        });
  });
}

// The human text of `depot status`.
void PrintStatus(const Json& j) {
  std::printf("site %s at %s\n\n", S(j["site"], "code").c_str(), S(j["site"], "url").c_str());
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : j["packages"]) {
    const Json& d = p["dps"];
    rows.push_back({S(p, "package"), S(p, "version"), HumanBytes(p.value("bytes", 0ull)),
                    S(d, "ready") + "/" + S(d, "assigned"), S(d, "failed")});
  }
  PrintTable({"PACKAGE", "VERSION", "SIZE", "DPS READY", "DPS FAILED"}, rows);
  const Json& q = j["distribution_queue"];
  std::printf("\ndistribution: %s pending, %s syncing, %s ready, %s failed, %s withheld\n",
              S(q, "pending").c_str(), S(q, "syncing").c_str(), S(q, "ready").c_str(),
              S(q, "failed").c_str(), S(q, "verifying").c_str());
  PrintDpsNotReady(j.value("dps_not_ready", Json::array()));
  rows.clear();
  for (const auto& d : j["deployments"]) {
    const Json& n = d["clients"];
    rows.push_back({S(d, "id"), S(d, "package"), S(d, "collection"), S(d, "kind"), S(n, "targeted"),
                    S(n, "waiting"), S(n, "downloading"), S(n, "installing"), S(n, "succeeded"),
                    S(n, "failed")});
  }
  std::printf("\n");
  PrintTable({"DEPLOYMENT", "PACKAGE", "COLLECTION", "KIND", "TARGETED", "WAITING", "DOWNLOADING",
              "INSTALLING", "SUCCEEDED", "FAILED"},
             rows);
  const Json& cl2 = j["clients"];
  std::printf("\nclients: %s enrolled, %s not seen recently\n", S(cl2, "total").c_str(),
              S(cl2, "offline").c_str());
  for (const auto& x : cl2["offline_list"]) {
    std::printf("  %s %s last seen %s\n", S(x, "id").c_str(), S(x, "name").c_str(),
                S(x, "last_seen").empty() ? "never" : S(x, "last_seen").c_str());
  }
  // The site lists at most 100, those silent longest; the count is exact.
  const auto unlisted =
      cl2.value("offline", std::int64_t{0}) - static_cast<std::int64_t>(cl2["offline_list"].size());
  if (unlisted > 0) {
    std::printf(
        "  ... %lld more (those listed are the ones silent longest; "
        "`depot client list` shows every client)\n",
        static_cast<long long>(unlisted));
  }
}

void AddStatus(CLI::App* app, AdminCtx c) {
  auto site = std::make_shared<SiteFlags>();
  auto* cmd =
      Sub(app, "status", "Overview: packages, DP coverage, deployments, clients", site.get());
  cmd->callback([=] {
    *c.exit_code = WithApi(
        *site, c.flags->json, [](ApiClient& a) { return a.Get("/api/v1/status", "status"); },
        PrintStatus);
  });
}

}  // namespace

void AddStatusCommands(CLI::App* app, AdminCtx c) {
  AddMessages(app, c);
  AddStatus(app, c);
}

}  // namespace depot::cli
