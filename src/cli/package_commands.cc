// depot package create | update | list | show | delete.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/admin_support.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "cli/package_upload.h"
#include "cli/programs.h"
#include "core/json_text.h"

namespace depot::cli {

namespace {

// An update starts from the newest version's programs: a version without them
// would fail every deployment that follows the newest version. None when the site
// has no version of `package` yet.
core::Result<std::vector<store::Program>> LatestPrograms(ApiClient& api,
                                                         const std::string& package) {
  std::vector<store::Program> base;
  auto latest = api.Get("/api/v1/packages/" + Escape(package) + "/programs", "package update");
  if (!latest.ok() && !latest.status().IsNotFound()) return latest.status();
  if (latest.ok()) {
    auto parsed = store::ParsePrograms(core::DumpJson((*latest)["programs"]));
    if (!parsed.ok()) return parsed.status().WithContext("the site's programs of " + package);
    base = std::move(*parsed);
  }
  return base;
}

// The human summary of a finished `package create|update`.
void PrintUploadSummary(const UploadResult& res, const UploadRequest& r, bool create) {
  const Json& v = res.version;
  std::printf("%s %s version %s\n", create ? "created" : "updated", S(v, "package").c_str(),
              S(v, "version").c_str());
  std::printf("  manifest  %s\n", S(v, "manifest_id").c_str());
  std::printf("  files     %llu files, %s, %llu chunks\n",
              static_cast<unsigned long long>(res.files), HumanBytes(res.bytes).c_str(),
              static_cast<unsigned long long>(res.chunks));
  std::printf("  uploaded  %llu chunks the site lacked (%s compressed)\n",
              static_cast<unsigned long long>(res.missing_chunks),
              HumanBytes(res.uploaded_bytes).c_str());
  if (r.programs.empty())
    std::printf("  programs  none (agents cannot install it; add --program NAME=COMMAND)\n");
  for (std::size_t i = 0; i < r.programs.size(); ++i) {
    std::printf("  %-9s %s\n", i == 0 ? "programs" : "", DescribeProgram(r.programs[i]).c_str());
  }
  for (const auto& o : v.value("orphaned_deployments", Json::array())) {
    std::printf(
        "  warning   deployment %s runs program `%s`, which this version lacks: its agents "
        "will "
        "fail (4009) until it is cancelled or pinned\n",
        S(o, "deployment").c_str(), S(o, "program").c_str());
  }
  std::printf("  time      snapshot+upload %.2f s, upload tail %.2f s, commit %.2f s\n",
              res.snapshot_s, res.upload_s, res.commit_s);
}

// Runs `package create` (`create`) or `package update`; returns the exit code.
int RunPackageSnapshot(const SiteFlags& site, const UploadRequest& req, const ProgramFlags& pf,
                       bool create, bool json) {
  auto api = ApiClient::Connect(site);
  if (!api.ok()) return ReportError(api.status(), json);
  std::vector<store::Program> base;
  if (!create) {
    auto latest = LatestPrograms(**api, req.package);
    if (!latest.ok()) return ReportError(latest.status(), json);
    base = std::move(*latest);
  }
  auto programs = BuildPrograms(pf, std::move(base));
  if (!programs.ok()) return ReportError(programs.status(), json);
  UploadRequest r = req;
  r.programs = *programs;
  r.create = create;
  auto res = UploadPackage(api->get(), r);
  if (!res.ok()) {
    return ReportError(
        res.status().WithContext(std::string("package ") + (create ? "create" : "update")), json);
  }
  if (json) {
    Json out = res->version;
    out["uploaded_chunks"] = res->missing_chunks;
    out["uploaded_bytes"] = res->uploaded_bytes;
    out["seconds"] = {
        {"snapshot", res->snapshot_s}, {"upload", res->upload_s}, {"commit", res->commit_s}};
    PrintJson(out);
  } else {
    PrintUploadSummary(*res, r, create);
  }
  return kExitOk;
}

// package create | update: `create` picks which.
void AddPackageSnapshot(CLI::App* pkg, AdminCtx c, bool create) {
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
  cmd->callback(
      [=] { *c.exit_code = RunPackageSnapshot(*site, *req, *pf, create, c.flags->json); });
}

void AddPackageList(CLI::App* pkg, AdminCtx c) {
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

void AddPackageShow(CLI::App* pkg, AdminCtx c) {
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

void AddPackageDelete(CLI::App* pkg, AdminCtx c) {
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

}  // namespace

void AddPackageCommands(CLI::App* app, AdminCtx c) {
  auto* pkg = app->add_subcommand("package", "Create, update, inspect and delete packages");
  pkg->require_subcommand(1);
  for (bool create : {true, false}) AddPackageSnapshot(pkg, c, create);
  AddPackageList(pkg, c);
  AddPackageShow(pkg, c);
  AddPackageDelete(pkg, c);
}

}  // namespace depot::cli
