// The TUF client against a real repository written by RepositoryWriter: the honest
// path, root rotation, fast-forward recovery, persistence and target files. The
// attacks on each role (rollback, freeze, mix-and-match, keys, endless data) are in
// client_attack_test.cc.
#include "tuf/client.h"

#include <gtest/gtest.h>

#include "core/sha256.h"
#include "tuf/client_test_fixture.h"
#include "tuf/test_util.h"

namespace depot::tuf {
namespace {

using testing::ClientTest;

// ----------------------------------------------------------------------------------
// The honest path.

TEST_F(ClientTest, RefreshAndFetchTargets) {
  const TargetInfo a = PublishTarget("pkg/a.json", "alpha", R"({"version": 3, "name": "a"})");
  const std::string b_bytes = depot::testing::RandomData(100000, 7);
  const TargetInfo b = PublishTarget("pkg/sub/b.bin", b_bytes);
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  EXPECT_EQ(client->root_version(), 1);
  EXPECT_EQ(client->timestamp_version(), 3);
  EXPECT_EQ(client->snapshot_version(), 3);
  EXPECT_EQ(client->targets_version(), 3);

  auto got = client->GetTarget("pkg/a.json");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->sha256, a.sha256);
  EXPECT_EQ(got->length, 5u);
  EXPECT_EQ(got->custom_json, R"({"name":"a","version":3})");
  EXPECT_TRUE(client->GetTarget("pkg/nope.json").status().IsNotFound());
  const auto all = client->Targets();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].path, "pkg/a.json");
  EXPECT_EQ(all[1].path, "pkg/sub/b.bin");

  auto fetched = client->FetchTarget(*got);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(*fetched, "alpha");
  auto fetched_b = client->FetchTarget(*client->GetTarget("pkg/sub/b.bin"));
  ASSERT_TRUE(fetched_b.ok());
  EXPECT_EQ(*fetched_b, b_bytes);

  // Every download was capped as the specification says.
  EXPECT_EQ(source->CapFor("metadata/2.root.json"), kMaxRootBytes);
  EXPECT_EQ(source->CapFor("metadata/timestamp.json"), kMaxTimestampBytes);
  EXPECT_EQ(source->CapFor("metadata/3.snapshot.json"), CurrentTimestamp().body.snapshot.length);
  EXPECT_EQ(source->CapFor("metadata/3.targets.json"),
            CurrentSnapshot().body.meta.at("targets.json").length);
  EXPECT_EQ(source->CapFor("targets/pkg/sub/" + b.sha256 + ".b.bin"), b.length);

  // Trusted metadata was persisted byte for byte.
  EXPECT_EQ(ReadTrusted("root.json"), ReadMeta("1.root.json"));
  EXPECT_EQ(ReadTrusted("timestamp.json"), ReadMeta("timestamp.json"));
  EXPECT_EQ(ReadTrusted("snapshot.json"), ReadMeta("3.snapshot.json"));
  EXPECT_EQ(ReadTrusted("targets.json"), ReadMeta("3.targets.json"));
}

TEST_F(ClientTest, NothingIsTrustedWithoutASuccessfulRefresh) {
  PublishTarget("a", "a");
  auto client = NewClient();
  ExpectError(client->GetTarget("a").status(), &core::Status::IsInvalidArgument, "Refresh()");
  EXPECT_TRUE(client->Targets().empty());
  ASSERT_OK(client->Refresh());
  EXPECT_TRUE(client->GetTarget("a").ok());
  // A failed refresh (the source is down) withdraws trust; the source's code passes through.
  source->Fail("metadata/2.root.json", core::Status::Unavailable("dp1: connection refused"));
  core::Status s = client->Refresh();
  EXPECT_TRUE(s.IsUnavailable()) << s.ToString();
  EXPECT_TRUE(client->GetTarget("a").status().IsInvalidArgument());
  EXPECT_TRUE(client->Targets().empty());

  Client uninitialized(env, &clock, source.get(), "");
  EXPECT_TRUE(uninitialized.Refresh().IsInvalidArgument());
}

TEST_F(ClientTest, SecondRunUsesPersistedMetadata) {
  PublishTarget("a", "a");
  ASSERT_OK(NewClient()->Refresh());

  // A new process: no bootstrap needed, the stored root is used.
  Client second(env, &clock, source.get(), trusted_dir);
  ASSERT_OK(second.Initialize(""));
  EXPECT_EQ(second.timestamp_version(), 2);  // trusted state loaded for rollback checks
  source->requests.clear();
  ASSERT_OK(second.Refresh());
  EXPECT_TRUE(second.GetTarget("a").ok());
  // Unchanged snapshot and targets are not downloaded again.
  EXPECT_FALSE(source->Requested("metadata/2.snapshot.json"));
  EXPECT_FALSE(source->Requested("metadata/2.targets.json"));

  PublishTarget("b", "b");
  ASSERT_OK(second.Refresh());
  EXPECT_TRUE(second.GetTarget("b").ok());
  EXPECT_EQ(second.targets_version(), 3);

  // Without a stored root, a bootstrap root is required.
  Client fresh(env, &clock, source.get(), tmp.Sub("empty-trust"));
  ExpectError(fresh.Initialize(""), &core::Status::IsInvalidArgument, "no trusted root");
  Client memory_only(env, &clock, source.get(), "");
  ASSERT_OK(memory_only.Initialize(ReadMeta("root.json")));
  ASSERT_OK(memory_only.Refresh());
  EXPECT_TRUE(memory_only.GetTarget("b").ok());
}

TEST_F(ClientTest, TamperedTrustedRootIsRefusedWithAFix) {
  ASSERT_OK(NewClient()->Refresh());
  std::string root = ReadTrusted("root.json");
  root.replace(root.find("\"version\":1"), 11, "\"version\":9");
  ASSERT_OK(env->WriteFileAtomic(core::JoinPath(trusted_dir, "root.json"), root));
  Client client(env, &clock, source.get(), trusted_dir);
  core::Status s = client.Initialize(ReadMeta("1.root.json"));
  ExpectError(s, &core::Status::IsCorruption, "to start over from the pinned bootstrap root");
}

// ----------------------------------------------------------------------------------
// Root rotation.

TEST_F(ClientTest, FollowsRootRotationChain) {
  PublishTarget("a", "a");
  const std::string root1 = ReadMeta("1.root.json");
  ASSERT_OK(writer->RotateKeys({"root", "targets"}));
  ASSERT_OK(writer->RotateKeys({"root", "snapshot", "timestamp"}));
  const TargetInfo b = PublishTarget("b", "bravo");
  auto client = NewClient("<default>", root1);
  ASSERT_OK(client->Refresh());
  EXPECT_EQ(client->root_version(), 3);
  EXPECT_TRUE(source->Requested("metadata/4.root.json"));  // looked for more, got NotFound
  EXPECT_EQ(ReadTrusted("root.json"), ReadMeta("3.root.json"));
  EXPECT_TRUE(client->GetTarget("a").ok());
  auto fetched = client->FetchTarget(b);
  ASSERT_TRUE(fetched.ok()) << fetched.status().ToString();
  EXPECT_EQ(*fetched, "bravo");
}

TEST_F(ClientTest, RootNotSignedByPreviousRootKeysIsRefused) {
  PrivateKey new_root_key = std::move(*PrivateKey::Generate());
  RootMetadata r = CurrentRoot().body;
  r.version = 2;
  r.keys.emplace(new_root_key.keyid(), new_root_key.public_key());
  const std::string old_id = r.roles[Role::kRoot].keyids[0];
  r.roles[Role::kRoot] = RoleKeys{{new_root_key.keyid()}, 1};
  r.keys.erase(old_id);
  WriteMeta("2.root.json", SignWith(r, {&new_root_key}));  // only the new key signed
  auto client = NewClient();
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "checking against the trusted root (version 1): 2.root.json: 0 valid signature(s)");
  EXPECT_EQ(client->root_version(), 1);
  EXPECT_EQ(ReadTrusted("root.json"), ReadMeta("1.root.json"));

  // Signed by the old key only: the new root's own threshold is not met.
  PrivateKey old_root_key = LoadKey(Role::kRoot);
  WriteMeta("2.root.json", SignWith(r, {&old_root_key}));
  ExpectError(client->Refresh(), &core::Status::IsCorruption, "checking against its own root keys");

  // Signed by both: accepted.
  WriteMeta("2.root.json", SignWith(r, {&old_root_key, &new_root_key}));
  ASSERT_OK(client->Refresh());
  EXPECT_EQ(client->root_version(), 2);
}

TEST_F(ClientTest, RootVersionSkipIsRefused) {
  PrivateKey root_key = LoadKey(Role::kRoot);
  RootMetadata r = CurrentRoot().body;
  r.version = 3;
  WriteMeta("2.root.json", SignWith(r, {&root_key}));
  auto client = NewClient();
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "2.root.json: holds root version 3, expected exactly 2");
  EXPECT_FALSE(client->refused_older()) << "a broken chain, not an older root";
  EXPECT_EQ(client->root_version(), 1);
  EXPECT_EQ(ReadTrusted("root.json"), ReadMeta("1.root.json"));

  // A gap in the chain: without 2.root.json the client never looks at 3.root.json.
  ASSERT_OK(env->Remove(MetaPath("2.root.json")));
  WriteMeta("3.root.json", SignWith(r, {&root_key}));
  source->requests.clear();
  ASSERT_OK(client->Refresh());
  EXPECT_EQ(client->root_version(), 1);
  EXPECT_FALSE(source->Requested("metadata/3.root.json"));
}

// ----------------------------------------------------------------------------------
// Fast-forward recovery: rotating timestamp/snapshot keys discards trusted versions.

TEST_F(ClientTest, TimestampKeyRotationRecoversFromFastForward) {
  PublishTarget("a", "a");
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  // An attacker holding the online timestamp key pushes the version far ahead.
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version = 1000;
  PublishCraftedTimestamp(ts);
  ASSERT_OK(client->Refresh());
  EXPECT_EQ(client->timestamp_version(), 1000);
  // The repository's honest timestamp (version 3) now looks like a rollback...
  ASSERT_OK(writer->Refresh());
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "older than the trusted version 1000");
  // ...until the compromised key is replaced.
  ASSERT_OK(writer->RotateKeys({"timestamp"}));
  ASSERT_OK(client->Refresh());
  EXPECT_EQ(client->root_version(), 2);
  EXPECT_EQ(client->timestamp_version(), writer->timestamp_version());
  EXPECT_LT(client->timestamp_version(), 1000);
  EXPECT_EQ(ReadTrusted("timestamp.json"), ReadMeta("timestamp.json"));
}

TEST_F(ClientTest, SnapshotKeyRotationDiscardsTrustedTimestampAndSnapshot) {
  PublishTarget("a", "a");
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  ASSERT_FALSE(ReadTrusted("snapshot.json").empty());
  ASSERT_OK(writer->RotateKeys({"snapshot"}));
  // Stop the update right after the root step to observe the discard.
  source->Fail("metadata/timestamp.json", core::Status::Unavailable("down"));
  EXPECT_TRUE(client->Refresh().IsUnavailable());
  EXPECT_EQ(client->root_version(), 2);
  EXPECT_EQ(client->timestamp_version(), 0);
  EXPECT_EQ(client->snapshot_version(), 0);
  EXPECT_FALSE(*env->Exists(core::JoinPath(trusted_dir, "timestamp.json")));
  EXPECT_FALSE(*env->Exists(core::JoinPath(trusted_dir, "snapshot.json")));
  EXPECT_TRUE(*env->Exists(core::JoinPath(trusted_dir, "targets.json")));  // still signed
  source->Reset();
  ASSERT_OK(client->Refresh());
  EXPECT_TRUE(client->GetTarget("a").ok());
}

TEST_F(ClientTest, RotationIsHonouredEvenWhenALaterRootFails) {
  PublishTarget("a", "a");
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  ASSERT_OK(writer->RotateKeys({"timestamp"}));  // root 2
  WriteMeta("3.root.json", "{}");                // a broken next root
  EXPECT_TRUE(client->Refresh().IsInvalidArgument());
  EXPECT_EQ(client->root_version(), 2);
  EXPECT_EQ(client->timestamp_version(), 0);  // discarded with root 2, despite the error
  ASSERT_OK(env->Remove(MetaPath("3.root.json")));
  ASSERT_OK(client->Refresh());
}

// ----------------------------------------------------------------------------------
// Persistence happens only after every check on the role passed.

TEST_F(ClientTest, RoleIsNotPersistedWhenALaterCheckFails) {
  PublishTarget("a", "a");
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  const std::string trusted_root = ReadTrusted("root.json");
  const std::string trusted_ts = ReadTrusted("timestamp.json");
  const std::string trusted_snap = ReadTrusted("snapshot.json");
  const std::string trusted_targets = ReadTrusted("targets.json");

  // Root: valid signatures, wrong version.
  PrivateKey root_key = LoadKey(Role::kRoot);
  RootMetadata r = CurrentRoot().body;
  r.version = 5;
  WriteMeta("2.root.json", SignWith(r, {&root_key}));
  EXPECT_TRUE(client->Refresh().IsCorruption());
  EXPECT_EQ(ReadTrusted("root.json"), trusted_root);
  ASSERT_OK(env->Remove(MetaPath("2.root.json")));

  // Timestamp: valid signature and versions, expired.
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version += 1;
  ts.expires = clock.Now() - std::chrono::hours(1);
  PublishCraftedTimestamp(ts);
  EXPECT_TRUE(client->Refresh().IsPermissionDenied());
  EXPECT_EQ(ReadTrusted("timestamp.json"), trusted_ts);
  EXPECT_EQ(client->timestamp_version(), 2);

  // Snapshot: matches the (new, valid) timestamp and is signed, but expired. The
  // timestamp passed all its checks and is persisted; the snapshot is not.
  SnapshotMetadata s = CurrentSnapshot().body;
  s.version += 1;
  s.expires = clock.Now() - std::chrono::hours(1);
  const std::string new_ts = PublishCraftedSnapshot(s);
  EXPECT_TRUE(client->Refresh().IsPermissionDenied());
  EXPECT_EQ(ReadTrusted("timestamp.json"), new_ts);
  EXPECT_EQ(ReadTrusted("snapshot.json"), trusted_snap);

  // Targets: matches the snapshot and is signed, but expired.
  PrivateKey targets_key = LoadKey(Role::kTargets);
  TargetsMetadata t = CurrentTargets().body;
  t.version += 1;
  t.expires = clock.Now() - std::chrono::hours(1);
  PublishCraftedTargets(t.version, SignWith(t, {&targets_key}));
  EXPECT_TRUE(client->Refresh().IsPermissionDenied());
  EXPECT_NE(ReadTrusted("snapshot.json"), trusted_snap);  // snapshot passed this time
  EXPECT_EQ(ReadTrusted("targets.json"), trusted_targets);
}

// ----------------------------------------------------------------------------------
// Target files.

TEST_F(ClientTest, TamperedTargetBytesAreRefused) {
  const TargetInfo a = PublishTarget("pkg/a.json", "original");
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  const std::string file = core::JoinPath(targets_dir, ConsistentTargetPath(a.path, a.sha256));
  depot::testing::WriteFileOrDie(file, "tampered");  // same length
  ExpectError(client->FetchTarget(a).status(), &core::Status::IsCorruption,
              "does not match targets.json");
  depot::testing::WriteFileOrDie(file, "short");
  ExpectError(client->FetchTarget(a).status(), &core::Status::IsCorruption, "5 bytes from");
  depot::testing::WriteFileOrDie(file, "much longer than expected");
  EXPECT_TRUE(client->FetchTarget(a).status().IsCorruption());
  depot::testing::WriteFileOrDie(file, "original");
  ASSERT_TRUE(client->FetchTarget(a).ok());

  // Info that is not what the trusted metadata says is refused before any download.
  TargetInfo forged = a;
  forged.sha256 = core::Sha256::HashHex("something else");
  EXPECT_TRUE(client->FetchTarget(forged).status().IsInvalidArgument());
  TargetInfo unknown = a;
  unknown.path = "pkg/unknown.json";
  EXPECT_TRUE(client->FetchTarget(unknown).status().IsNotFound());
}

}  // namespace
}  // namespace depot::tuf
