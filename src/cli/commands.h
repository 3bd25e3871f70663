// Registers depot's subcommands on a CLI11 app. Each command runs in the callback
// and stores its exit code in *exit_code. Kept out of main.cc so tests and future
// entry points (depot up) share them.
#pragma once

namespace CLI {
class App;
}

namespace depot::cli {

struct GlobalFlags {
  bool json = false;
};

void AddRepoCommands(CLI::App* app, GlobalFlags* flags, int* exit_code);
// depot site init | serve
void AddSiteCommands(CLI::App* app, GlobalFlags* flags, int* exit_code);
// The admin commands that talk to a site: token, package, dp, distribute,
// collection, deploy, deployment, client, messages, status.
void AddAdminCommands(CLI::App* app, GlobalFlags* flags, int* exit_code);
// depot dp serve | verify, added to the `dp` command group.
void AddDpServeCommands(CLI::App* dp, GlobalFlags* flags, int* exit_code);
// depot agent run | status | install.
void AddAgentCommands(CLI::App* app, GlobalFlags* flags, int* exit_code);
// depot up: site + DP + agent in one process on embedded defaults (--demo).
void AddUpCommand(CLI::App* app, GlobalFlags* flags, int* exit_code);

}  // namespace depot::cli
