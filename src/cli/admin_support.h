// Internal to the cli component: what the admin command files (token, package, dp,
// collection, deployment, client and status commands) share -- connecting and
// printing the site's answers -- and the registration function of each area, which
// AddAdminCommands calls in the order the commands appear in --help.
#pragma once

#include <functional>

#include "cli/api_client.h"
#include "cli/commands.h"

namespace CLI {
class App;
}

namespace depot::cli {

// What every admin command's callback needs: the global flags and where the exit
// code goes.
struct AdminCtx {
  GlobalFlags* flags;
  int* exit_code;
};

// j[key] as text for tables: "" when missing or null, a string as is, else its JSON.
std::string S(const Json& j, const char* key);

// Connects, runs `fn`, prints its JSON (--json) or lets `human` print it.
int WithApi(const SiteFlags& site, bool json,
            const std::function<core::Result<Json>(ApiClient&)>& fn,
            const std::function<void(const Json&)>& human);

// Prints an object's scalar members as "key  value" lines (nested objects and arrays
// of objects are left to the caller).
void PrintObject(const Json& j, int indent = 0);

// Adds subcommand `name` to `parent` with the --site, --token and --ca flags.
CLI::App* Sub(CLI::App* parent, const char* name, const char* help, SiteFlags* site);

// A link's bandwidth schedule flags (--max-rate, --window), shared by `child add|set`
// and `dp add|set`.
struct ScheduleFlags {
  std::string max_rate;
  std::vector<std::string> windows;
};
void AddScheduleFlags(CLI::App* cmd, ScheduleFlags* f);
// Adds "max_rate" and "windows" to `body` for the flags given (`--window none`: no
// windows). InvalidArgument naming the flag at fault.
core::Status ScheduleBody(const ScheduleFlags& f, Json* body);
// "10 MiB/s" for a rate, "-" for none.
std::string RateText(const Json& schedule_or_row);

// depot token create | list | revoke.
void AddTokenCommands(CLI::App* app, AdminCtx c);
// depot package create | update | list | show | delete.
void AddPackageCommands(CLI::App* app, AdminCtx c);
// The `dp` group: serve | verify (dp_commands.cc) and add | remove | list | show.
void AddDpCommands(CLI::App* app, AdminCtx c);
// depot distribute: assigns a package to DPs or DP groups.
void AddDistributeCommand(CLI::App* app, AdminCtx c);
// depot child add | set | list | show | remove (child_commands.cc).
void AddChildCommands(CLI::App* app, AdminCtx c);
// depot collection create | list | show | delete | add | remove | set-rule.
void AddCollectionCommands(CLI::App* app, AdminCtx c);
// depot deploy, and depot deployment list | show | cancel.
void AddDeploymentCommands(CLI::App* app, AdminCtx c);
// depot client list | show.
void AddClientCommands(CLI::App* app, AdminCtx c);
// depot messages and depot status.
void AddStatusCommands(CLI::App* app, AdminCtx c);

}  // namespace depot::cli
