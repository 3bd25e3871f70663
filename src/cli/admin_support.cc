// Helpers shared by the admin command files (see admin_support.h).
#include "cli/admin_support.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/json_output.h"
#include "cli/output.h"

namespace depot::cli {

std::string S(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

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

void PrintObject(const Json& j, int indent) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_object() || (it->is_array() && !it->empty() && (*it)[0].is_object())) continue;
    std::printf("%*s%-14s %s\n", indent, "", it.key().c_str(),
                it->is_string() ? it->get<std::string>().c_str() : it->dump().c_str());
  }
}

CLI::App* Sub(CLI::App* parent, const char* name, const char* help, SiteFlags* site) {
  auto* cmd = parent->add_subcommand(name, help);
  AddSiteFlags(cmd, site);
  return cmd;
}

}  // namespace depot::cli
