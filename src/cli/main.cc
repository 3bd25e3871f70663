// depot: one binary, many subcommands. This file only wires the command line; the
// commands live in the cli library.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/output.h"
#include "core/log.h"

// Debian's libcurl links librtmp and libldap, which link GnuTLS, whose library
// constructor initialises it at every start of depot (~1.2 MiB of resident memory:
// its ASN.1 trees, CPU probing, p11-kit) although depot never uses it: curl is held
// to http and https, over OpenSSL. GnuTLS documents this hook for skipping that
// implicit init (the GNUTLS_SKIP_GLOBAL_INIT macro defines exactly this function);
// a library that does use GnuTLS still calls gnutls_global_init() itself. The
// executable exports the symbol (see CMakeLists.txt) so it overrides GnuTLS's weak
// default; tests/binary_test.py checks that the init is skipped.
extern "C" int _gnutls_global_init_skip(void);
extern "C" int _gnutls_global_init_skip(void) { return 1; }

int main(int argc, char** argv) {
  CLI::App app{"depot: build, sign, replicate and install software packages"};
  app.require_subcommand(1);
  // Global flags are accepted anywhere on the line (`depot package list --json`): a
  // flag a subcommand does not know falls through to its parents. Inherited by every
  // subcommand added below.
  app.fallthrough();
  app.set_version_flag("--version-info", "depot 0.1.0");
  depot::cli::GlobalFlags flags;
  std::string log_level = "warn";
  bool log_json = false;
  app.add_flag("--json", flags.json, "Print one JSON document on stdout");
  app.add_option("--log-level", log_level, "debug, info, warn, error or off (default warn)");
  app.add_flag("--log-json", log_json, "Structured logs as JSON lines on stderr");
  app.parse_complete_callback([&] {
    depot::core::LogLevel level;
    if (!depot::core::ParseLogLevel(log_level, &level)) {
      throw CLI::ValidationError("--log-level", "must be debug, info, warn, error or off");
    }
    depot::core::SetLogLevel(level);
    depot::core::SetLogJson(log_json);
  });
  int exit_code = depot::cli::kExitOk;
  depot::cli::AddRepoCommands(&app, &flags, &exit_code);
  depot::cli::AddSiteCommands(&app, &flags, &exit_code);
  depot::cli::AddAdminCommands(&app, &flags, &exit_code);
  depot::cli::AddAgentCommands(&app, &flags, &exit_code);
  depot::cli::AddUpCommand(&app, &flags, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version-info
    // CLI11 quotes unexpected arguments back, and one may be a token secret.
    std::cerr << depot::cli::RedactTokens(e.what()) << "\nRun with --help for more information.\n";
    return depot::cli::kExitUsage;
  }
  return exit_code;
}
