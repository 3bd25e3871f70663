// JSON output for commands (internal to the cli component; pulls in nlohmann-json,
// so only command implementations include it).
#pragma once

#include <nlohmann/json.hpp>

namespace depot::cli {

// Prints `j` indented on stdout: the one JSON document of a --json command.
void PrintJson(const nlohmann::json& j);

}  // namespace depot::cli
