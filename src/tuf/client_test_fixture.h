// The ClientTest fixture shared by client_test.cc (the honest path, rotation,
// persistence) and client_attack_test.cc (the attacks the TUF spec defends from).
// Linked into tuf_test only.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/status.h"
#include "tuf/metadata.h"
#include "tuf/test_util.h"

namespace depot::tuf::testing {

// A RepoTest with checks and file names the client tests share. Not in an anonymous
// namespace: both test files register tests in the one ClientTest suite.
class ClientTest : public RepoTest {
 protected:
  // Expects `s` to satisfy `pred` and its message to contain `needle`.
  static void ExpectError(const core::Status& s, bool (core::Status::*pred)() const,
                          const std::string& needle) {
    EXPECT_TRUE((s.*pred)()) << s.ToString();
    EXPECT_NE(s.message().find(needle), std::string::npos)
        << "expected '" << needle << "' in: " << s.message();
  }
  // The versioned snapshot file name the current timestamp points to.
  std::string SnapshotName() const {
    return VersionedFileName(Role::kSnapshot, CurrentTimestamp().body.snapshot.version);
  }
  // The versioned targets file name the current snapshot points to.
  std::string TargetsName() const {
    return VersionedFileName(Role::kTargets,
                             CurrentSnapshot().body.meta.at("targets.json").version);
  }
};

}  // namespace depot::tuf::testing
