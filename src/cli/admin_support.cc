// Helpers shared by the admin command files (see admin_support.h).
#include "cli/admin_support.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/json_output.h"
#include "cli/output.h"
#include "core/toml_config.h"

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

void AddScheduleFlags(CLI::App* cmd, ScheduleFlags* f) {
  cmd->add_option("--max-rate", f->max_rate,
                  "Bandwidth of the link, shared by all its transfers (like 10MiB; 0: none)");
  cmd->add_option("--window", f->windows,
                  "Daily window HH:MM+DURATION[@ZONE] (default UTC) outside which only metadata "
                  "and status move, like 22:00+6h@Europe/Berlin (repeatable; `none` clears them)");
}

namespace {

// "22:00+6h@Europe/Berlin" -> {"start": "22:00", "duration": "6h", "tz": "Europe/Berlin"}.
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

}  // namespace

core::Status ScheduleBody(const ScheduleFlags& f, Json* body) {
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
  return core::Status::Ok();
}

std::string RateText(const Json& j) {
  const std::uint64_t rate = j.value("max_rate", 0ull);
  return rate == 0 ? "-" : HumanBytes(rate) + "/s";
}

CLI::App* Sub(CLI::App* parent, const char* name, const char* help, SiteFlags* site) {
  auto* cmd = parent->add_subcommand(name, help);
  AddSiteFlags(cmd, site);
  return cmd;
}

}  // namespace depot::cli
