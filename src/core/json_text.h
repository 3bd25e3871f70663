// nlohmann JSON as the compact text depot sends and stores. Kept out of widely
// included headers: include it only where JSON is built.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace depot::core {

// Compact text; invalid UTF-8 in strings is replaced rather than thrown on (JSON can
// carry nothing else, and no depot code path may throw).
std::string DumpJson(const nlohmann::json& j);

}  // namespace depot::core
