// INTERNAL to src/store: the manifest rules shared by its validator, writer and
// parser (manifest_validate.cc, manifest_write.cc, manifest_parse.cc). Only those
// files include this header; the public API is store/manifest.h.
#pragma once

#include <vector>

#include "core/status.h"
#include "store/manifest.h"

namespace depot::store::internal {

// Checks one install program: its name, command, timeout and exit codes.
core::Status ValidateProgram(const Program& p, const ManifestLimits& limits);

// Checks every program of a list and that no name is listed twice (the count limit is
// the caller's: the manifest and the standalone programs document word it apart).
core::Status ValidateProgramList(const std::vector<Program>& programs,
                                 const ManifestLimits& limits);

}  // namespace depot::store::internal
