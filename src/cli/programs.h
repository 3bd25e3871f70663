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
// --retry-codes NAME=CODES.
struct ProgramFlags {
  std::vector<std::string> programs, timeouts, success, reboot, retry;
};

// Registers the flags above on `cmd`; `flags` must outlive the parse.
void AddProgramFlags(CLI::App* cmd, ProgramFlags* flags);

// Builds the programs, InvalidArgument naming the flag at fault.
core::Result<std::vector<store::Program>> BuildPrograms(const ProgramFlags& f);

// "NAME=VALUE" -> (NAME, VALUE); InvalidArgument naming the flag otherwise.
core::Result<std::pair<std::string, std::string>> SplitAssignment(const std::string& s, const char* flag);

}  // namespace depot::cli
