#include "tuf/test_util.h"

#include "core/sha256.h"

namespace depot::tuf::testing {

using core::Result;
using core::Status;

Result<std::string> FaultySource::Fetch(const std::string& path, std::uint64_t max_bytes) {
  requests.push_back(core::FetchRequest{path, max_bytes});
  if (auto f = failures_.find(path); f != failures_.end()) return f->second;
  if (endless_.count(path)) {
    // A real transport reads up to max_bytes + 1 and gives up.
    endless_bytes_sent += max_bytes + 1;
    CountBytes(max_bytes + 1);
    return Status::Corruption(path + ": more than the " + std::to_string(max_bytes) +
                              " bytes expected (endless stream)");
  }
  if (auto o = overrides_.find(path); o != overrides_.end()) {
    if (!o->second.ignore_cap && o->second.bytes.size() > max_bytes) {
      CountBytes(max_bytes + 1);
      return Status::Corruption(path + ": " + std::to_string(o->second.bytes.size()) +
                                " bytes, more than the " + std::to_string(max_bytes) + " expected");
    }
    CountBytes(o->second.bytes.size());
    return o->second.bytes;
  }
  return base_->Fetch(path, max_bytes);
}

std::optional<std::uint64_t> FaultySource::CapFor(const std::string& path) const {
  std::optional<std::uint64_t> cap;
  for (const auto& r : requests) {
    if (r.path == path) cap = r.max_bytes;
  }
  return cap;
}

core::TimePoint T0() { return *core::ParseUtc("2026-01-01T00:00:00Z"); }

RepoTest::RepoTest() : clock(T0()) {}

void RepoTest::SetUp() {
  keys_dir = tmp.Sub("keys");
  remote_dir = tmp.Sub("remote");
  metadata_dir = core::JoinPath(remote_dir, "metadata");
  targets_dir = core::JoinPath(remote_dir, "targets");
  trusted_dir = tmp.Sub("trusted");
  ASSERT_OK(env->CreateDirs(targets_dir));
  ASSERT_OK(RepositoryWriter::Init(env, &clock, keys_dir, metadata_dir, expiry));
  auto w = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  writer.emplace(std::move(w).value());
  dir_source = std::make_unique<core::DirSource>(env, remote_dir);
  source = std::make_unique<FaultySource>(dir_source.get());
}

TargetInfo RepoTest::WriteTarget(const std::string& path, const std::string& bytes,
                                 const std::string& custom_json) {
  TargetInfo info{path, bytes.size(), core::Sha256::HashHex(bytes), custom_json};
  depot::testing::WriteFileOrDie(
      core::JoinPath(targets_dir, ConsistentTargetPath(path, info.sha256)), bytes);
  return info;
}

TargetInfo RepoTest::PublishTarget(const std::string& path, const std::string& bytes,
                                   const std::string& custom_json) {
  TargetInfo info = WriteTarget(path, bytes, custom_json);
  Status s = writer->Publish({info}, {});
  EXPECT_TRUE(s.ok()) << s.ToString();
  return info;
}

std::unique_ptr<Client> RepoTest::NewClient(const std::string& trusted,
                                            std::optional<std::string> bootstrap) {
  auto client = std::make_unique<Client>(env, &clock, source.get(),
                                         trusted == "<default>" ? trusted_dir : trusted);
  Status s = client->Initialize(bootstrap ? *bootstrap : ReadMeta("1.root.json"));
  EXPECT_TRUE(s.ok()) << s.ToString();
  return client;
}

std::string RepoTest::ReadMeta(const std::string& name) const {
  return depot::testing::ReadFileOrDie(MetaPath(name));
}

void RepoTest::WriteMeta(const std::string& name, const std::string& bytes) const {
  EXPECT_OK(env->WriteFileAtomic(MetaPath(name), bytes));
}

std::string RepoTest::ReadTrusted(const std::string& name) const {
  auto r = env->ReadFile(core::JoinPath(trusted_dir, name), 1 << 30);
  return r.ok() ? *r : std::string();
}

PrivateKey RepoTest::LoadKey(Role role) const {
  auto k = PrivateKey::Load(env, KeyFilePath(keys_dir, role));
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return std::move(k).value();
}

Signed<RootMetadata> RepoTest::CurrentRoot() const {
  return *ParseRoot(ReadMeta("root.json"), "root.json");
}
Signed<TimestampMetadata> RepoTest::CurrentTimestamp() const {
  return *ParseTimestamp(ReadMeta("timestamp.json"), "timestamp.json");
}
Signed<SnapshotMetadata> RepoTest::CurrentSnapshot() const {
  const auto ts = CurrentTimestamp();
  const std::string name = VersionedFileName(Role::kSnapshot, ts.body.snapshot.version);
  return *ParseSnapshot(ReadMeta(name), name);
}
Signed<TargetsMetadata> RepoTest::CurrentTargets() const {
  const auto snap = CurrentSnapshot();
  const std::string name =
      VersionedFileName(Role::kTargets, snap.body.meta.at("targets.json").version);
  return *ParseTargets(ReadMeta(name), name);
}

std::string RepoTest::PublishCraftedTargets(std::int64_t version, const std::string& targets_bytes,
                                            bool describe) {
  WriteMeta(VersionedFileName(Role::kTargets, version), targets_bytes);
  SnapshotMetadata snap = CurrentSnapshot().body;
  snap.version += 1;
  snap.expires = clock.Now() + expiry.snapshot;
  snap.meta["targets.json"] =
      describe ? MetaFile{version, targets_bytes.size(), core::Sha256::HashHex(targets_bytes)}
               : MetaFile{version, std::nullopt, ""};
  return PublishCraftedSnapshot(snap, describe);
}

std::string RepoTest::PublishCraftedSnapshot(const SnapshotMetadata& snapshot, bool describe,
                                             const PrivateKey* snapshot_key) {
  PrivateKey own = LoadKey(Role::kSnapshot);
  const std::string bytes = SignWith(snapshot, {snapshot_key ? snapshot_key : &own});
  WriteMeta(VersionedFileName(Role::kSnapshot, snapshot.version), bytes);
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version += 1;
  ts.expires = clock.Now() + expiry.timestamp;
  ts.snapshot = describe ? MetaFile{snapshot.version, bytes.size(), core::Sha256::HashHex(bytes)}
                         : MetaFile{snapshot.version, std::nullopt, ""};
  return PublishCraftedTimestamp(ts);
}

std::string RepoTest::PublishCraftedTimestamp(const TimestampMetadata& timestamp,
                                              const PrivateKey* timestamp_key) {
  PrivateKey own = LoadKey(Role::kTimestamp);
  const std::string bytes = SignWith(timestamp, {timestamp_key ? timestamp_key : &own});
  WriteMeta("timestamp.json", bytes);
  return bytes;
}

}  // namespace depot::tuf::testing
