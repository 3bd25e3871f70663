// The agent's parts wired together in-process, for their unit tests: a real
// repository in a temp dir (real signed content), the state store, content store,
// installer, downloader and driver on a ManualClock, and a source factory whose
// sources read that repository -- failing, serving bad bytes or hanging only where a
// test asks for it (fault injection; the bytes otherwise are the repository's own).
//
// Source URLs are "test://NAME"; AddSource(NAME, dir, fault) says what NAME serves.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/content.h"
#include "agent/downloader.h"
#include "agent/driver.h"
#include "agent/installer.h"
#include "agent/program.h"
#include "agent/state_store.h"
#include "core/clock.h"
#include "core/testing.h"
#include "core/time_windows.h"
#include "repo/repository.h"

namespace depot::agent::testing {

using Json = nlohmann::json;

enum class Fault {
  kNone,
  kUnavailable,    // every fetch fails (a source that is down)
  kCorruptChunks,  // every chunk's bytes are damaged
  kMissingChunks,  // every chunk is missing (the version's metadata is there)
  kHoldChunks,     // chunk fetches wait until ReleaseChunks() (a slow source)
};

class PartsFixture : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Opens (or, after Close, re-opens: a restarted agent) every part on data_dir_.
  void Open();
  void Close();

  // Adds the next version of `package` (files: relative path -> content) with one
  // program "install" running `command`; `edit` may change the program.
  repo::AddResult AddVersion(const std::string& package,
                             const std::map<std::string, std::string>& files,
                             const std::string& command = "true",
                             const std::function<void(store::Program*)>& edit = nullptr);
  // Keeps v's signed manifest where the content store looks for held ones.
  void SaveManifest(const repo::AddResult& v);
  // What source NAME serves (a repository's public tree) and how it fails.
  void AddSource(const std::string& name, const std::string& dir, Fault fault = Fault::kNone);
  void SetFault(const std::string& name, Fault fault);
  // Opens the test sources by URL.
  SourceFactory Factory();
  // How many times the factory opened source NAME.
  int Opened(const std::string& name);
  std::string RepoDir() const { return dir_.Sub("repo/repo"); }
  static std::string Url(const std::string& name) { return "test://" + name; }
  // Lets held chunk fetches (kHoldChunks) go on; waits for the first to arrive.
  void WaitForHeldChunk();
  void ReleaseChunks();

  // A policy item for version `v`: required, from source "good", no schedule;
  // `extra` replaces or adds members of the item's JSON.
  PolicyItem Item(std::int64_t id, const repo::AddResult& v, const Json& extra = Json::object());
  // Inserts `item` as a new deployment.
  void Insert(const PolicyItem& item);
  Deployment Get(std::int64_t id);
  // The undelivered messages as JSON objects (code, params, deployment...).
  std::vector<Json> Outbox();
  std::vector<Json> OutboxOf(int code);

  // Passes of the driver until nothing moves and nothing is under way: downloads
  // are awaited (they end with an event), programs polled in real time.
  void Settle();
  // One pass; fails the test on an error.
  Activity Step();
  // Waits (on the manual clock's WaitFor: no sleeping) until a download finished.
  void WaitForDownload();

  // Polls (bounded, in real time: a process's end is no event) until the attempt in
  // `run_dir` no longer runs; where it stands then.
  static RunState WaitUntilStopped(const std::string& run_dir);

  std::int64_t NowMs() { return core::UnixMillis(clock_.Now()); }

  depot::testing::TempDir dir_;
  core::Env* env_ = core::Env::Default();
  core::ManualClock clock_{std::chrono::system_clock::now()};
  std::string data_dir_ = dir_.Sub("agent");
  AgentConfig config_;
  std::unique_ptr<repo::Repository> repo_;
  std::string trusted_root_;

  std::unique_ptr<StateStore> state_;
  std::unique_ptr<ContentStore> content_;
  std::unique_ptr<Installer> installer_;
  std::unique_ptr<Downloader> downloader_;
  std::unique_ptr<core::ZoneCache> zones_;
  std::unique_ptr<Driver> driver_;

 private:
  struct SourceSpec {
    std::string dir;
    Fault fault = Fault::kNone;
  };
  friend class FaultySource;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, SourceSpec> sources_;
  std::map<std::string, int> opened_;
  bool chunk_held_ = false, released_ = false;
};

}  // namespace depot::agent::testing
