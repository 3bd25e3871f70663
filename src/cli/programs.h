// Shared by the commands that build package versions (`repo add`, `package
// create|update`): the program flags, and JSON output.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "store/manifest.h"

namespace CLI {
class App;
}

namespace depot::cli {

// --program NAME=COMMAND, --timeout NAME=DUR, --success-codes/--reboot-codes/
// --retry-codes NAME=CODES, and (with `removable`) --remove-program NAME.
struct ProgramFlags {
  std::vector<std::string> programs, timeouts, success, reboot, retry, remove;
};

// Registers the flags above on `cmd`; `flags` must outlive the parse. `removable`:
// the command starts from an earlier version's programs (`package update`), so
// --remove-program is offered.
void AddProgramFlags(CLI::App* cmd, ProgramFlags* flags, bool removable = false);

// Builds the programs from `base` (an earlier version's, or none) changed by the
// flags: --program replaces a program's command (its timeout and exit codes stay) or
// adds one with the defaults; --remove-program drops one; --timeout and the code
// flags change any program of the result. InvalidArgument naming the flag at fault.
core::Result<std::vector<store::Program>> BuildPrograms(const ProgramFlags& f,
                                                        std::vector<store::Program> base = {});

// "install: sh install.sh (timeout 1h, success 0, reboot 3010)" -- one line per
// program, for the CLI's summaries.
std::string DescribeProgram(const store::Program& p);

// "NAME=VALUE" -> (NAME, VALUE); InvalidArgument naming the flag otherwise.
core::Result<std::pair<std::string, std::string>> SplitAssignment(const std::string& s,
                                                                  const char* flag);

}  // namespace depot::cli
