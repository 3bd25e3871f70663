// An in-process agent against a real site on loopback, for the agent's unit tests:
// the site is real (SQLite, content library, HTTP), packages are uploaded with the
// CLI's upload protocol, and the agent runs on a ManualClock with a source factory
// that can fail on purpose (fault injection only; the bytes otherwise come from the
// real site).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/agent.h"
#include "cli/api_client.h"
#include "core/clock.h"
#include "core/testing.h"
#include "site/site.h"

namespace depot::agent::testing {

using Json = nlohmann::json;

// DEPOT_TEST_LOG=1 in the environment logs everything (site and agent) at debug level.
class AgentFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Uploads `src` as a new package (or its next version) with program
  // install=<command>; returns the site's answer.
  Json Publish(const std::string& name, const std::string& src, bool create,
               const std::string& command = "true");
  // An admin API call; fails the test on an error.
  Json Api(const std::string& method, const std::string& target, const Json& body = nullptr);
  // Opens (or re-opens) the agent on `clock_`, enrolled on first use.
  std::unique_ptr<Agent> OpenAgent(AgentOverrides overrides = {});
  // The site's messages of `code` about the test's client.
  Json Messages(int code);

  depot::testing::TempDir dir_;
  core::ManualClock clock_{std::chrono::system_clock::now()};
  std::unique_ptr<site::Site> site_;
  std::unique_ptr<cli::ApiClient> api_;
  std::string agent_dir_;
  std::string enroll_token_;
  std::string client_;
  // While set, every source the agent opens fails its fetches (Unavailable).
  std::atomic<bool> sources_fail_{false};
};

}  // namespace depot::agent::testing
