#include "tuf/repository.h"

#include <gtest/gtest.h>

#include "core/sha256.h"
#include "tuf/canonical_json.h"
#include "tuf/test_util.h"

namespace depot::tuf {
namespace {

using testing::RepoTest;
using testing::T0;

class RepositoryTest : public RepoTest {};

TEST_F(RepositoryTest, InitCreatesLayoutKeysAndVersionOne) {
  for (const char* name :
       {"1.root.json", "root.json", "1.targets.json", "1.snapshot.json", "timestamp.json"}) {
    const std::string bytes = ReadMeta(name);
    EXPECT_TRUE(ValidateCanonicalJson(bytes, name).ok()) << name;
  }
  EXPECT_EQ(ReadMeta("1.root.json"), ReadMeta("root.json"));
  auto dir = env->Stat(keys_dir);
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir->mode, 0700u);
  for (Role role : kAllRoles) {
    auto info = env->Stat(KeyFilePath(keys_dir, role));
    ASSERT_TRUE(info.ok()) << RoleName(role);
    EXPECT_EQ(info->mode, 0600u);
  }
  const auto root = CurrentRoot();
  EXPECT_EQ(root.body.version, 1);
  EXPECT_TRUE(root.body.consistent_snapshot);
  EXPECT_EQ(root.body.expires, T0() + expiry.root);
  for (Role role : kAllRoles) {
    EXPECT_EQ(root.body.roles.at(role).keyids, std::vector<std::string>{LoadKey(role).keyid()});
  }
  EXPECT_TRUE(CurrentTargets().body.targets.empty());
  EXPECT_EQ(CurrentTimestamp().body.expires, T0() + expiry.timestamp);
  EXPECT_EQ(writer->root_json(), ReadMeta("root.json"));
  EXPECT_EQ(writer->timestamp_version(), 1);

  // Never overwrites a repository or a key.
  core::Status again = RepositoryWriter::Init(env, &clock, keys_dir, metadata_dir, expiry);
  EXPECT_TRUE(again.IsInvalidArgument()) << again.ToString();
  EXPECT_NE(again.message().find("already"), std::string::npos);
  core::Status keys_exist =
      RepositoryWriter::Init(env, &clock, keys_dir, tmp.Sub("other-meta"), expiry);
  EXPECT_TRUE(keys_exist.IsInvalidArgument()) << keys_exist.ToString();
  EXPECT_NE(keys_exist.message().find("root.pem already exists"), std::string::npos);
}

TEST_F(RepositoryTest, PublishWritesNewVersionsAndKeepsOldOnes) {
  const std::string v1_targets = ReadMeta("1.targets.json");
  const std::string v1_snapshot = ReadMeta("1.snapshot.json");
  TargetInfo a = PublishTarget("pkg/a.json", "alpha", R"({"z":1, "a":"x"})");
  EXPECT_EQ(writer->targets_version(), 2);
  EXPECT_EQ(writer->snapshot_version(), 2);
  EXPECT_EQ(writer->timestamp_version(), 2);
  EXPECT_EQ(ReadMeta("1.targets.json"), v1_targets);  // never rewritten
  EXPECT_EQ(ReadMeta("1.snapshot.json"), v1_snapshot);

  const auto targets = CurrentTargets();
  EXPECT_EQ(targets.body.version, 2);
  ASSERT_EQ(targets.body.targets.count("pkg/a.json"), 1u);
  const TargetInfo& signed_a = targets.body.targets.at("pkg/a.json");
  EXPECT_EQ(signed_a.sha256, core::Sha256::HashHex("alpha"));
  EXPECT_EQ(signed_a.length, 5u);
  EXPECT_EQ(signed_a.custom_json, R"({"a":"x","z":1})");  // canonicalized
  EXPECT_EQ(writer->targets().at("pkg/a.json"), signed_a);

  // Snapshot and timestamp bind the files by version, length and hash.
  const auto snap = CurrentSnapshot();
  const std::string t2 = ReadMeta("2.targets.json");
  EXPECT_EQ(snap.body.meta.at("targets.json"), (MetaFile{2, t2.size(), core::Sha256::HashHex(t2)}));
  const std::string s2 = ReadMeta("2.snapshot.json");
  EXPECT_EQ(CurrentTimestamp().body.snapshot, (MetaFile{2, s2.size(), core::Sha256::HashHex(s2)}));

  // Replace and remove.
  TargetInfo a2 = WriteTarget("pkg/a.json", "alpha v2");
  TargetInfo b = WriteTarget("pkg/b.json", "beta");
  ASSERT_OK(writer->Publish({a2, b}, {}));
  ASSERT_OK(writer->Publish({}, {"pkg/b.json"}));
  EXPECT_EQ(writer->targets().size(), 1u);
  EXPECT_EQ(writer->targets().at("pkg/a.json").sha256, a2.sha256);
  EXPECT_EQ(CurrentTargets().body.version, 4);
  (void)a;
}

TEST_F(RepositoryTest, PublishValidatesInput) {
  const std::int64_t version = writer->targets_version();
  TargetInfo ok = WriteTarget("ok.json", "ok");
  auto expect = [&](const core::Status& s, bool (core::Status::*pred)() const,
                    const std::string& needle) {
    EXPECT_TRUE((s.*pred)()) << s.ToString();
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  expect(writer->Publish({TargetInfo{"../x", 1, ok.sha256, ""}}, {}),
         &core::Status::IsInvalidArgument, "'..'");
  expect(writer->Publish({TargetInfo{"x", 1, "ABC", ""}}, {}), &core::Status::IsInvalidArgument,
         "sha256");
  expect(writer->Publish({TargetInfo{"x", 1, ok.sha256, "[1]"}}, {}),
         &core::Status::IsInvalidArgument, "not a JSON object");
  expect(writer->Publish({TargetInfo{"x", 1, ok.sha256, "{\"a\":1.5}"}}, {}),
         &core::Status::IsInvalidArgument, "floating-point");
  expect(writer->Publish({ok, ok}, {}), &core::Status::IsInvalidArgument, "listed twice");
  expect(writer->Publish({ok}, {"ok.json"}), &core::Status::IsInvalidArgument, "listed twice");
  expect(writer->Publish({}, {"absent.json"}), &core::Status::IsNotFound, "not a current target");
  EXPECT_EQ(writer->targets_version(), version);
  EXPECT_EQ(CurrentTargets().body.version, version);
}

TEST_F(RepositoryTest, OfflineRootKeyOnlyBlocksRootOperations) {
  const std::string root_pem = KeyFilePath(keys_dir, Role::kRoot);
  ASSERT_OK(env->Rename(root_pem, tmp.Sub("offline-root.pem")));
  PublishTarget("a", "a");
  ASSERT_OK(writer->Refresh());
  core::Status s = writer->RotateKeys({"targets"});
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find(root_pem), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("offline"), std::string::npos) << s.message();
  EXPECT_TRUE(writer->ResignRoot().IsNotFound());
  // Nothing was staged for the failed rotation.
  EXPECT_FALSE(*env->Exists(KeyFilePath(keys_dir, Role::kTargets) + ".new"));
  // Put it back: root operations work again.
  ASSERT_OK(env->Rename(tmp.Sub("offline-root.pem"), root_pem));
  ASSERT_OK(writer->RotateKeys({"targets"}));
  EXPECT_EQ(writer->root_version(), 2);
}

TEST_F(RepositoryTest, MissingOnlineKeyNamesTheFile) {
  ASSERT_OK(env->Remove(KeyFilePath(keys_dir, Role::kSnapshot)));
  core::Status s = writer->Publish({WriteTarget("a", "a")}, {});
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("snapshot.pem"), std::string::npos);
  EXPECT_EQ(CurrentTargets().body.version, 1);  // nothing signed, nothing written
  EXPECT_FALSE(*env->Exists(MetaPath("2.targets.json")));
}

TEST_F(RepositoryTest, ForeignOrWorldReadableKeyIsRefused) {
  auto foreign = PrivateKey::Generate();
  ASSERT_TRUE(foreign.ok());
  ASSERT_OK(foreign->Save(env, KeyFilePath(keys_dir, Role::kTargets)));
  core::Status s = writer->Publish({WriteTarget("a", "a")}, {});
  EXPECT_TRUE(s.IsPermissionDenied()) << s.ToString();
  EXPECT_NE(s.message().find("does not belong to this repository"), std::string::npos);

  ASSERT_OK(env->Chmod(KeyFilePath(keys_dir, Role::kTimestamp), 0644));
  s = writer->Refresh();
  EXPECT_TRUE(s.IsPermissionDenied()) << s.ToString();
  EXPECT_NE(s.message().find("chmod 600"), std::string::npos);
}

TEST_F(RepositoryTest, RefreshResignsSnapshotTimestampAndTargetsWhenDue) {
  PublishTarget("a", "a");
  const std::int64_t targets_version = writer->targets_version();
  clock.Advance(std::chrono::hours(24 * 6));
  ASSERT_OK(writer->Refresh());
  EXPECT_EQ(writer->targets_version(), targets_version);  // far from expiry: untouched
  EXPECT_EQ(writer->timestamp_expires(), T0() + std::chrono::hours(24 * 6) + expiry.timestamp);
  EXPECT_EQ(CurrentSnapshot().body.expires, T0() + std::chrono::hours(24 * 6) + expiry.snapshot);

  // Within a quarter of its lifetime of expiring, targets is re-signed too.
  clock.Advance(expiry.targets - expiry.targets / 5);
  ASSERT_OK(writer->Refresh());
  EXPECT_EQ(writer->targets_version(), targets_version + 1);
  EXPECT_EQ(CurrentTargets().body.targets, writer->targets());
  EXPECT_EQ(writer->targets_expires(),
            std::chrono::floor<std::chrono::seconds>(clock.Now() + expiry.targets));
}

TEST_F(RepositoryTest, RefreshResignsRootWhenDueAndKeyPresent) {
  clock.Advance(expiry.root - expiry.root / 5);
  const std::string root_pem = KeyFilePath(keys_dir, Role::kRoot);
  ASSERT_OK(env->Rename(root_pem, tmp.Sub("offline.pem")));
  ASSERT_OK(writer->Refresh());  // root key offline: root left alone, no error
  EXPECT_EQ(writer->root_version(), 1);
  ASSERT_OK(env->Rename(tmp.Sub("offline.pem"), root_pem));
  ASSERT_OK(writer->Refresh());
  EXPECT_EQ(writer->root_version(), 2);
  EXPECT_GT(writer->root_expires(), clock.Now() + expiry.root / 2);
  EXPECT_EQ(ReadMeta("2.root.json"), ReadMeta("root.json"));
}

TEST_F(RepositoryTest, OpenRoundTripsState) {
  PublishTarget("x/y.bin", "payload", R"({"kind":"manifest"})");
  auto reopened = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(reopened->targets(), writer->targets());
  EXPECT_EQ(reopened->targets_version(), writer->targets_version());
  EXPECT_EQ(reopened->snapshot_version(), writer->snapshot_version());
  EXPECT_EQ(reopened->timestamp_version(), writer->timestamp_version());
  EXPECT_EQ(reopened->root_json(), writer->root_json());
  EXPECT_TRUE(RepositoryWriter::Open(env, &clock, keys_dir, tmp.Sub("nothing"), expiry)
                  .status()
                  .IsNotFound());
}

TEST_F(RepositoryTest, OpenDetectsTamperedMetadata) {
  PublishTarget("a", "a");
  // Alter the current targets file: its hash no longer matches the snapshot.
  std::string t = ReadMeta("2.targets.json");
  t.replace(t.find("\"a\""), 3, "\"b\"");
  WriteMeta("2.targets.json", t);
  auto w = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  EXPECT_TRUE(w.status().IsCorruption()) << w.status().ToString();
  EXPECT_NE(w.status().message().find("2.targets.json"), std::string::npos);

  // A consistent chain signed by a foreign key is refused too.
  auto rogue = PrivateKey::Generate();
  ASSERT_TRUE(rogue.ok());
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version += 1;
  PublishCraftedTimestamp(ts, &*rogue);
  w = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  EXPECT_TRUE(w.status().IsCorruption()) << w.status().ToString();
}

TEST_F(RepositoryTest, FailedWriteLeavesStateAndNeverReusesVersions) {
  depot::testing::FaultyEnv faulty(env);
  auto w = RepositoryWriter::Open(&faulty, &clock, keys_dir, metadata_dir, expiry);
  ASSERT_TRUE(w.ok());
  TargetInfo a = WriteTarget("a", "a");
  faulty.write_budget = 0;  // the disk is full
  core::Status s = w->Publish({a}, {});
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  EXPECT_TRUE(w->targets().empty());
  EXPECT_EQ(w->targets_version(), 1);
  EXPECT_EQ(CurrentTargets().body.version, 1);  // clients still see version 1
  faulty.write_budget = -1;

  // Leftovers of a write that failed half-way (or crashed) are never overwritten:
  // their version numbers are skipped.
  WriteMeta("2.targets.json", "leftover targets");
  WriteMeta("2.snapshot.json", "leftover snapshot");
  ASSERT_OK(w->Publish({a}, {}));
  EXPECT_EQ(w->targets_version(), 3);
  EXPECT_EQ(w->snapshot_version(), 3);
  EXPECT_EQ(ReadMeta("2.targets.json"), "leftover targets");
  EXPECT_EQ(ReadMeta("2.snapshot.json"), "leftover snapshot");
  EXPECT_EQ(CurrentTargets().body.targets.count("a"), 1u);
  auto reopened = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(reopened->targets_version(), 3);
}

TEST_F(RepositoryTest, RotateKeysPublishesLinkedRoot) {
  const std::string old_root_id = LoadKey(Role::kRoot).keyid();
  const std::string old_targets_id = LoadKey(Role::kTargets).keyid();
  PublishTarget("a", "a");
  ASSERT_OK(writer->RotateKeys({"root", "targets"}));
  EXPECT_EQ(writer->root_version(), 2);
  const auto root2 = ParseRoot(ReadMeta("2.root.json"), "2.root.json");
  ASSERT_TRUE(root2.ok());
  EXPECT_EQ(ReadMeta("root.json"), ReadMeta("2.root.json"));
  const auto root1 = ParseRoot(ReadMeta("1.root.json"), "1.root.json");
  ASSERT_TRUE(root1.ok());
  // Signed by the old root key and the new one.
  EXPECT_OK(VerifyThreshold(root1->body, Role::kRoot, root2->canonical, root2->signatures, "2"));
  EXPECT_OK(VerifyThreshold(root2->body, Role::kRoot, root2->canonical, root2->signatures, "2"));
  const std::string new_root_id = LoadKey(Role::kRoot).keyid();
  const std::string new_targets_id = LoadKey(Role::kTargets).keyid();
  EXPECT_NE(new_root_id, old_root_id);
  EXPECT_NE(new_targets_id, old_targets_id);
  EXPECT_EQ(root2->body.roles.at(Role::kTargets).keyids, std::vector<std::string>{new_targets_id});
  EXPECT_EQ(root2->body.keys.count(old_targets_id), 0u);  // unused keys dropped
  EXPECT_EQ(root2->body.keys.size(), 4u);
  EXPECT_FALSE(*env->Exists(KeyFilePath(keys_dir, Role::kRoot) + ".new"));
  // Targets was re-signed with the new key; its content is unchanged.
  const auto targets = CurrentTargets();
  EXPECT_EQ(targets.signatures.at(0).keyid, new_targets_id);
  EXPECT_EQ(targets.body.targets.count("a"), 1u);
  EXPECT_OK(VerifyThreshold(root2->body, Role::kTargets, targets.canonical, targets.signatures,
                            "targets"));
  EXPECT_TRUE(writer->RotateKeys({}).IsInvalidArgument());
  EXPECT_TRUE(writer->RotateKeys({"mirrors"}).IsInvalidArgument());
  auto trusted_root = ReadTrustedRoot(env, metadata_dir);
  ASSERT_TRUE(trusted_root.ok());
  EXPECT_EQ(*trusted_root, ReadMeta("2.root.json"));
}

TEST_F(RepositoryTest, RecoversFromRotationInterruptedBeforeKeyRename) {
  PublishTarget("a", "a");
  const std::string targets_pem = KeyFilePath(keys_dir, Role::kTargets);
  const std::string old_pem = depot::testing::ReadFileOrDie(targets_pem);
  ASSERT_OK(writer->RotateKeys({"targets"}));
  // Recreate the crash window: root 2 published, new key still staged, old key in place,
  // current targets still signed by the old key.
  ASSERT_OK(env->Rename(targets_pem, targets_pem + ".new"));
  depot::testing::WriteFileOrDie(targets_pem, old_pem, 0600);
  const auto snap = CurrentSnapshot();
  SnapshotMetadata s = snap.body;
  s.version += 1;
  s.meta["targets.json"] = MetaFile{2, std::nullopt, ""};
  PublishCraftedSnapshot(s, /*describe=*/true);

  auto w = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_OK(w->Refresh());  // re-signs the stale targets with the staged, trusted key
  EXPECT_FALSE(*env->Exists(targets_pem + ".new"));
  const auto targets = CurrentTargets();
  EXPECT_OK(VerifyThreshold(CurrentRoot().body, Role::kTargets, targets.canonical,
                            targets.signatures, "targets"));
  EXPECT_EQ(targets.body.targets.count("a"), 1u);
}

TEST_F(RepositoryTest, OpenRepairsLaggingRootCopy) {
  ASSERT_OK(writer->RotateKeys({"snapshot"}));
  const std::string v2 = ReadMeta("2.root.json");
  WriteMeta("root.json", ReadMeta("1.root.json"));  // crash between the two writes
  auto trusted = ReadTrustedRoot(env, metadata_dir);
  ASSERT_TRUE(trusted.ok());
  EXPECT_EQ(*trusted, v2);
  auto w = RepositoryWriter::Open(env, &clock, keys_dir, metadata_dir, expiry);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->root_version(), 2);
  EXPECT_EQ(ReadMeta("root.json"), v2);
}

}  // namespace
}  // namespace depot::tuf
