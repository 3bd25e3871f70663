// Test helpers for the tuf component (linked into tuf_test only).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/source.h"
#include "core/testing.h"
#include "tuf/client.h"
#include "tuf/keys.h"
#include "tuf/metadata.h"
#include "tuf/repository.h"

namespace depot::tuf::testing {

// A RepoSource that forwards to another and can tamper with answers. Records every
// request with the cap it was made with.
class FaultySource final : public core::RepoSource {
 public:
  explicit FaultySource(core::RepoSource* base) : base_(base) {}
  std::string Describe() const override { return "faulty(" + base_->Describe() + ")"; }
  core::Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override;

  // Serves `bytes` for `path`, honouring the cap like a real transport.
  void Serve(const std::string& path, std::string bytes) {
    overrides_[path] = {std::move(bytes), false};
  }
  // Serves `bytes` for `path` even when longer than the cap (a broken transport).
  void ServeIgnoringCap(const std::string& path, std::string bytes) {
    overrides_[path] = {std::move(bytes), true};
  }
  // Answers `path` with an endless stream: the download stops one byte past the cap
  // and fails with Corruption, as core::RepoSource requires.
  void Endless(const std::string& path) { endless_.insert(path); }
  // Answers `path` with this error.
  void Fail(const std::string& path, core::Status s) {
    failures_.insert_or_assign(path, std::move(s));
  }
  void Reset() {
    overrides_.clear();
    endless_.clear();
    failures_.clear();
    requests.clear();
  }

  // The cap of the last request for `path`, if it was requested.
  std::optional<std::uint64_t> CapFor(const std::string& path) const;
  bool Requested(const std::string& path) const { return CapFor(path).has_value(); }

  std::vector<core::FetchRequest> requests;
  std::uint64_t endless_bytes_sent = 0;

 private:
  struct Override {
    std::string bytes;
    bool ignore_cap;
  };
  core::RepoSource* base_;
  std::map<std::string, Override> overrides_;
  std::set<std::string> endless_;
  std::map<std::string, core::Status> failures_;
};

core::TimePoint T0();  // 2026-01-01T00:00:00Z

// A repository on disk (keys, metadata, targets), its writer, a faulty source over
// it, and helpers to craft validly signed -- or deliberately bad -- metadata.
class RepoTest : public ::testing::Test {
 protected:
  RepoTest();
  void SetUp() override;

  // Writes `bytes` as target `path` (at its consistent path) and returns its info.
  TargetInfo WriteTarget(const std::string& path, const std::string& bytes,
                         const std::string& custom_json = "");
  // WriteTarget + Publish.
  TargetInfo PublishTarget(const std::string& path, const std::string& bytes,
                           const std::string& custom_json = "");
  // A client over `source`, persisting to `trusted_dir` ("" for memory only),
  // initialized with `bootstrap` (default: the repository's current root.json).
  std::unique_ptr<Client> NewClient(const std::string& trusted = "<default>",
                                    std::optional<std::string> bootstrap = std::nullopt);

  std::string MetaPath(const std::string& name) const { return core::JoinPath(metadata_dir, name); }
  std::string ReadMeta(const std::string& name) const;
  void WriteMeta(const std::string& name, const std::string& bytes) const;
  std::string ReadTrusted(const std::string& name) const;
  PrivateKey LoadKey(Role role) const;

  // Current metadata as the writer sees it on disk.
  Signed<RootMetadata> CurrentRoot() const;
  Signed<TimestampMetadata> CurrentTimestamp() const;
  Signed<SnapshotMetadata> CurrentSnapshot() const;
  Signed<TargetsMetadata> CurrentTargets() const;

  // Signs `body` with `keys` and returns the file bytes.
  template <typename T>
  static std::string SignWith(const T& body, const std::vector<const PrivateKey*>& keys) {
    auto canonical = EncodeSigned(body);
    EXPECT_TRUE(canonical.ok()) << canonical.status().ToString();
    auto bytes = SignEnvelope(*canonical, keys);
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    return *bytes;
  }

  // Publishes a hand-made chain: writes `targets_bytes` as N.targets.json, then a snapshot naming
  // it and a timestamp naming that, both signed with the repository's keys (or the given ones) and
  // fresh expiry. Returns the bytes of timestamp.json. `describe` adds length and hashes to the
  // meta entries.
  std::string PublishCraftedTargets(std::int64_t version, const std::string& targets_bytes,
                                    bool describe = true);
  std::string PublishCraftedSnapshot(const SnapshotMetadata& snapshot, bool describe = true,
                                     const PrivateKey* snapshot_key = nullptr);
  std::string PublishCraftedTimestamp(const TimestampMetadata& timestamp,
                                      const PrivateKey* timestamp_key = nullptr);

  core::Env* env = core::Env::Default();
  depot::testing::TempDir tmp;
  core::ManualClock clock;
  std::string keys_dir, remote_dir, metadata_dir, targets_dir, trusted_dir;
  Expiry expiry;
  std::optional<RepositoryWriter> writer;
  std::unique_ptr<core::DirSource> dir_source;
  std::unique_ptr<FaultySource> source;
};

// Shortcuts for assertions on Status/Result.
#define ASSERT_OK(expr)                                        \
  do {                                                         \
    const ::depot::core::Status assert_ok_s_ = (expr);         \
    ASSERT_TRUE(assert_ok_s_.ok()) << assert_ok_s_.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                        \
  do {                                                         \
    const ::depot::core::Status expect_ok_s_ = (expr);         \
    EXPECT_TRUE(expect_ok_s_.ok()) << expect_ok_s_.ToString(); \
  } while (0)

}  // namespace depot::tuf::testing
