// The TUF client against the attacks on each role the specification defends from:
// rollback, freeze, mix-and-match, untrusted keys and thresholds, endless data. Each
// attack test also shows the honest path succeeding where that is not already obvious,
// so the test can fail.
#include <gtest/gtest.h>

#include "core/sha256.h"
#include "tuf/client.h"
#include "tuf/client_test_fixture.h"
#include "tuf/test_util.h"

namespace depot::tuf {
namespace {

using testing::ClientTest;

// ----------------------------------------------------------------------------------
// Rollback attacks: an older, validly signed file after the client saw a newer one.

TEST_F(ClientTest, RollbackOfTimestampIsRefused) {
  PublishTarget("a", "a");
  const std::string old_timestamp = ReadMeta("timestamp.json");  // version 2
  PublishTarget("b", "b");                                       // version 3
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  const std::string trusted = ReadTrusted("timestamp.json");

  EXPECT_FALSE(client->refused_older());
  source->Serve("metadata/timestamp.json", old_timestamp);
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "timestamp.json: version 2 is older than the trusted version 3");
  EXPECT_TRUE(client->refused_older()) << "a stale source, not a broken one";
  EXPECT_EQ(ReadTrusted("timestamp.json"), trusted);
  EXPECT_EQ(client->timestamp_version(), 3);
  // Also across restarts: the persisted timestamp is the reference.
  auto restarted = NewClient();
  ExpectError(restarted->Refresh(), &core::Status::IsCorruption,
              "older than the trusted version 3");
  EXPECT_TRUE(restarted->refused_older());
  // The source catches up: the next Refresh clears the verdict.
  source->Serve("metadata/timestamp.json", ReadMeta("timestamp.json"));
  ASSERT_OK(restarted->Refresh());
  EXPECT_FALSE(restarted->refused_older());
}

TEST_F(ClientTest, RollbackOfSnapshotIsRefused) {
  PublishTarget("a", "a");
  const std::string old_snapshot = ReadMeta("2.snapshot.json");
  PublishTarget("b", "b");  // snapshot 3
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  // A newer timestamp (the timestamp key is online, so assume it is compromised) that
  // points back at snapshot 2.
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version += 1;
  ts.snapshot = MetaFile{2, old_snapshot.size(), core::Sha256::HashHex(old_snapshot)};
  PublishCraftedTimestamp(ts);
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "names snapshot version 2, older than version 3");
  EXPECT_TRUE(client->refused_older());
  EXPECT_EQ(client->snapshot_version(), 3);
}

TEST_F(ClientTest, RollbackOfTargetsIsRefused) {
  PublishTarget("a", "a");
  const std::string old_targets = ReadMeta("2.targets.json");
  PublishTarget("b", "b");  // targets 3
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  // A new, validly signed snapshot that names targets 2 again.
  SnapshotMetadata s = CurrentSnapshot().body;
  s.version += 1;
  s.meta["targets.json"] = MetaFile{2, old_targets.size(), core::Sha256::HashHex(old_targets)};
  PublishCraftedSnapshot(s);
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "names targets.json version 2, older than version 3 in the trusted snapshot");
  EXPECT_TRUE(client->refused_older());
  EXPECT_EQ(client->targets_version(), 3);
  // A snapshot that drops targets.json cannot be built (parser refuses it), so the
  // other half of the check is covered by the parser tests.
}

TEST_F(ClientTest, RollbackOfRootIsRefused) {
  ASSERT_OK(writer->RotateKeys({"targets"}));  // root 2, same root key
  auto client = NewClient("<default>", ReadMeta("2.root.json"));
  ASSERT_OK(client->Refresh());
  // 1.root.json is validly signed by the (unchanged) root key; served as the next root.
  source->Serve("metadata/3.root.json", ReadMeta("1.root.json"));
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "3.root.json: holds root version 1, expected exactly 3");
  EXPECT_TRUE(client->refused_older());
  EXPECT_EQ(client->root_version(), 2);
  EXPECT_EQ(ReadTrusted("root.json"), ReadMeta("2.root.json"));
}

// ----------------------------------------------------------------------------------
// Freeze attacks: valid but expired metadata.

TEST_F(ClientTest, FreezeWithExpiredRootIsRefused) {
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  // The root key is offline, so the repository keeps its other roles fresh but root
  // expires.
  ASSERT_OK(env->Rename(KeyFilePath(keys_dir, Role::kRoot), tmp.Sub("offline.pem")));
  clock.Advance(expiry.root + std::chrono::hours(1));
  ASSERT_OK(writer->Refresh());
  ExpectError(client->Refresh(), &core::Status::IsPermissionDenied,
              "root.json (version 1): expired at 2027-01-01T00:00:00Z (now 2027-01-01T01:00:00Z by "
              "this machine's clock)");
  EXPECT_TRUE(client->GetTarget("x").status().IsInvalidArgument());
  // Re-signing the root fixes it.
  ASSERT_OK(env->Rename(tmp.Sub("offline.pem"), KeyFilePath(keys_dir, Role::kRoot)));
  ASSERT_OK(writer->ResignRoot());
  ASSERT_OK(client->Refresh());
}

TEST_F(ClientTest, FreezeWithExpiredTimestampIsRefused) {
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  clock.Advance(expiry.timestamp + std::chrono::seconds(1));
  // The attacker keeps serving the last timestamp: same version as the trusted one.
  ExpectError(client->Refresh(), &core::Status::IsPermissionDenied,
              "timestamp.json (version 1): expired at 2026-01-08T00:00:00Z");
  // A client seeing it for the first time refuses it too, and does not persist it.
  auto fresh = NewClient(tmp.Sub("fresh"));
  ExpectError(fresh->Refresh(), &core::Status::IsPermissionDenied, "possible freeze attack");
  EXPECT_FALSE(*env->Exists(core::JoinPath(tmp.Sub("fresh"), "timestamp.json")));
  ASSERT_OK(writer->Refresh());
  ASSERT_OK(client->Refresh());
}

// An agent whose clock runs ahead sees valid metadata as expired: the refusal stays,
// but the advice names this machine's clock, not the repository.
TEST_F(ClientTest, ExpiryRefusalSaysWhichClockIsOff) {
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  clock.Set(clock.Now() + expiry.timestamp +
            std::chrono::hours(24));  // this clock ran 8 days ahead
  client->SetReferenceClock("the site", -(expiry.timestamp + std::chrono::hours(24)));
  core::Status s = client->Refresh();
  ExpectError(s, &core::Status::IsPermissionDenied, "this machine's clock is 8d 0h ahead");
  EXPECT_EQ(s.message().find("depot repo resign"), std::string::npos) << s.message();
  // The site's clock agrees the metadata expired: then re-signing is the fix.
  client->SetReferenceClock("the site", std::chrono::seconds(3));
  s = client->Refresh();
  ExpectError(s, &core::Status::IsPermissionDenied, "the site's clock agrees");
  ExpectError(s, &core::Status::IsPermissionDenied, "depot repo resign");
  // Without a reference both causes are named.
  auto fresh = NewClient(tmp.Sub("fresh"));
  ExpectError(fresh->Refresh(), &core::Status::IsPermissionDenied,
              "unless this machine's clock is wrong");
}

TEST_F(ClientTest, FreezeWithExpiredSnapshotIsRefused) {
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  clock.Advance(expiry.snapshot + std::chrono::hours(1));
  // A fresh timestamp that still names the old, expired snapshot.
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version += 1;
  ts.expires = clock.Now() + expiry.timestamp;
  PublishCraftedTimestamp(ts);
  ExpectError(client->Refresh(), &core::Status::IsPermissionDenied,
              "1.snapshot.json (version 1): expired");
  auto fresh = NewClient(tmp.Sub("fresh"));
  ExpectError(fresh->Refresh(), &core::Status::IsPermissionDenied,
              "1.snapshot.json (version 1): expired");
  EXPECT_FALSE(*env->Exists(core::JoinPath(tmp.Sub("fresh"), "snapshot.json")));
}

TEST_F(ClientTest, FreezeWithExpiredTargetsIsRefused) {
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  clock.Advance(expiry.targets + std::chrono::hours(1));
  // Re-signing root re-signs snapshot and timestamp but leaves targets as it was.
  ASSERT_OK(writer->ResignRoot());
  EXPECT_EQ(CurrentTargets().body.version, 1);
  ExpectError(client->Refresh(), &core::Status::IsPermissionDenied,
              "1.targets.json (version 1): expired");
  auto fresh = NewClient(tmp.Sub("fresh"));
  ExpectError(fresh->Refresh(), &core::Status::IsPermissionDenied,
              "1.targets.json (version 1): expired");
  EXPECT_FALSE(*env->Exists(core::JoinPath(tmp.Sub("fresh"), "targets.json")));
  ASSERT_OK(writer->Refresh());  // targets overdue: re-signed
  ASSERT_OK(client->Refresh());
}

// ----------------------------------------------------------------------------------
// Mix-and-match: files that do not match what their referrer signed.

TEST_F(ClientTest, SnapshotNotMatchingTimestampIsRefused) {
  PublishTarget("a", "a");
  // Validly signed by the snapshot key, right version, different content.
  SnapshotMetadata s = CurrentSnapshot().body;
  s.expires += std::chrono::hours(1);
  PrivateKey key = LoadKey(Role::kSnapshot);
  source->Serve("metadata/" + SnapshotName(), SignWith(s, {&key}));
  ExpectError(NewClient()->Refresh(), &core::Status::IsCorruption, "2.snapshot.json: sha256 ");
  auto client = NewClient();
  EXPECT_NE(client->Refresh().message().find("does not match timestamp.json"), std::string::npos);
  EXPECT_FALSE(client->refused_older()) << "bad bytes are not a stale source";
}

TEST_F(ClientTest, TargetsNotMatchingSnapshotIsRefused) {
  PublishTarget("a", "a");
  // Validly signed by the targets key, right version and length, but "a" now points
  // at other bytes.
  TargetsMetadata t = CurrentTargets().body;
  t.targets["a"].sha256 = core::Sha256::HashHex("b");
  PrivateKey key = LoadKey(Role::kTargets);
  const std::string forged = SignWith(t, {&key});
  ASSERT_EQ(forged.size(), ReadMeta(TargetsName()).size());
  source->Serve("metadata/" + TargetsName(), forged);
  auto client = NewClient();
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "2.targets.json: sha256 " + core::Sha256::HashHex(forged) +
                  " does not match 2.snapshot.json");
  EXPECT_TRUE(client->GetTarget("a").status().IsInvalidArgument());
  // A longer forgery is cut off by the length snapshot signed.
  t.targets["evil"] = TargetInfo{"evil", 4, core::Sha256::HashHex("evil"), ""};
  source->Serve("metadata/" + TargetsName(), SignWith(t, {&key}));
  EXPECT_TRUE(client->Refresh().IsCorruption());
  EXPECT_EQ(source->CapFor("metadata/" + TargetsName()),
            CurrentSnapshot().body.meta.at("targets.json").length);
  source->Reset();
  ASSERT_OK(client->Refresh());
}

TEST_F(ClientTest, WrongVersionUnderTheExpectedNameIsRefused) {
  // Without hashes in the referring metadata, only the version binds the file.
  PublishTarget("a", "a");  // targets 2
  PublishTarget("b", "b");  // targets 3
  SnapshotMetadata s = CurrentSnapshot().body;
  s.version += 1;
  s.meta["targets.json"] = MetaFile{3, std::nullopt, ""};
  PublishCraftedSnapshot(s, /*describe=*/false);
  source->Serve("metadata/3.targets.json", ReadMeta("2.targets.json"));
  ExpectError(NewClient()->Refresh(), &core::Status::IsCorruption,
              "3.targets.json: holds targets version 2, but 4.snapshot.json names 3");
  // The snapshot the timestamp names, swapped for another valid one.
  source->Reset();
  source->Serve("metadata/4.snapshot.json", ReadMeta("3.snapshot.json"));
  ExpectError(NewClient(tmp.Sub("t2"))->Refresh(), &core::Status::IsCorruption,
              "4.snapshot.json: holds snapshot version 3, but timestamp.json names 4");
  source->Reset();
  ASSERT_OK(NewClient(tmp.Sub("t3"))->Refresh());  // the honest files pass
}

// ----------------------------------------------------------------------------------
// Keys: signatures by keys root does not trust; thresholds.

TEST_F(ClientTest, RoleSignedByUntrustedKeyIsRefused) {
  auto rogue = std::move(*PrivateKey::Generate());
  TargetsMetadata t = CurrentTargets().body;
  t.version = 2;
  t.targets["evil"] = TargetInfo{"evil", 4, core::Sha256::HashHex("evil"), ""};
  PublishCraftedTargets(2, SignWith(t, {&rogue}));
  ExpectError(NewClient()->Refresh(), &core::Status::IsCorruption,
              "2.targets.json: 0 valid signature(s) by targets keys, 1 required by root.json "
              "version 1 (0 invalid, 1 by keys not trusted for the targets role)");

  // A timestamp signed by the snapshot key (trusted, but for another role).
  TimestampMetadata ts = CurrentTimestamp().body;
  ts.version += 1;
  PrivateKey snapshot_key = LoadKey(Role::kSnapshot);
  PublishCraftedTimestamp(ts, &snapshot_key);
  ExpectError(NewClient(tmp.Sub("t2"))->Refresh(), &core::Status::IsCorruption,
              "timestamp.json: 0 valid signature(s) by timestamp keys");
}

TEST_F(ClientTest, ThresholdNotMetIsRefused) {
  // Root 2 requires 2 of {k1, k2} for targets.
  PrivateKey root_key = LoadKey(Role::kRoot);
  PrivateKey k1 = LoadKey(Role::kTargets);
  PrivateKey k2 = std::move(*PrivateKey::Generate());
  RootMetadata r = CurrentRoot().body;
  r.version = 2;
  r.keys.emplace(k2.keyid(), k2.public_key());
  r.roles[Role::kTargets] = RoleKeys{{k1.keyid(), k2.keyid()}, 2};
  const std::string root2 = SignWith(r, {&root_key});
  WriteMeta("2.root.json", root2);
  WriteMeta("root.json", root2);

  TargetsMetadata t = CurrentTargets().body;
  t.version = 2;
  t.targets["x"] = TargetInfo{"x", 1, core::Sha256::HashHex("x"), ""};
  auto client = NewClient();

  // One valid signature of the two required.
  PublishCraftedTargets(2, SignWith(t, {&k1}));
  ExpectError(client->Refresh(), &core::Status::IsCorruption,
              "2.targets.json: 1 valid signature(s) by targets keys, 2 required");
  EXPECT_EQ(client->root_version(), 2);

  // The same signature twice: refused, never counted as two.
  const std::string canonical = *EncodeSigned(t);
  const Signature sig{k1.keyid(), *k1.Sign(canonical)};
  PublishCraftedTargets(2, EncodeEnvelope(canonical, {sig, sig}));
  core::Status dup = client->Refresh();
  EXPECT_FALSE(dup.ok());
  EXPECT_NE(dup.message().find("a second signature by key " + k1.keyid()), std::string::npos)
      << dup.ToString();
  EXPECT_TRUE(VerifyThreshold(r, Role::kTargets, canonical, {sig, sig}, "t").IsCorruption());

  // Both keys: accepted.
  PublishCraftedTargets(2, SignWith(t, {&k1, &k2}));
  ASSERT_OK(client->Refresh());
  EXPECT_TRUE(client->GetTarget("x").ok());
}

TEST_F(ClientTest, UnsupportedKeyTypesAndSettingsAreRefused) {
  // A root that lists an RSA key (keyid correct, signature valid) is refused.
  PrivateKey root_key = LoadKey(Role::kRoot);
  std::string canonical = *EncodeSigned(CurrentRoot().body);
  const std::string rsa_key =
      R"({"keytype":"rsa","keyval":{"public":"-----BEGIN PUBLIC KEY-----"},"scheme":"rsassa-pss-sha256"})";
  const std::string rsa_id = core::Sha256::HashHex(rsa_key);
  canonical.insert(canonical.find("\"keys\":{") + 8, "\"" + rsa_id + "\":" + rsa_key + ",");
  Client client(env, &clock, source.get(), "");
  ExpectError(client.Initialize(*SignEnvelope(canonical, {&root_key})),
              &core::Status::IsInvalidArgument,
              "key type 'rsa' with scheme 'rsassa-pss-sha256' is not supported");

  // A new root without consistent snapshots.
  RootMetadata r = CurrentRoot().body;
  r.version = 2;
  r.consistent_snapshot = false;
  WriteMeta("2.root.json", SignWith(r, {&root_key}));
  ExpectError(NewClient()->Refresh(), &core::Status::IsInvalidArgument,
              "consistent_snapshot is false");
}

// ----------------------------------------------------------------------------------
// Endless data: every download is capped, and the cap is what refuses the attack.

TEST_F(ClientTest, EndlessTimestampIsCutAtItsCap) {
  source->Endless("metadata/timestamp.json");
  EXPECT_TRUE(NewClient()->Refresh().IsCorruption());
  EXPECT_EQ(source->CapFor("metadata/timestamp.json"), kMaxTimestampBytes);
  EXPECT_EQ(source->endless_bytes_sent, kMaxTimestampBytes + 1);
}

TEST_F(ClientTest, EndlessRootIsCutAtItsCap) {
  source->Endless("metadata/2.root.json");
  EXPECT_TRUE(NewClient()->Refresh().IsCorruption());
  EXPECT_EQ(source->CapFor("metadata/2.root.json"), kMaxRootBytes);
}

TEST_F(ClientTest, EndlessSnapshotIsCutAtTheLengthTimestampSigned) {
  PublishTarget("a", "a");
  const std::string name = "metadata/" + SnapshotName();
  const std::uint64_t length = *CurrentTimestamp().body.snapshot.length;
  source->Endless(name);
  EXPECT_TRUE(NewClient()->Refresh().IsCorruption());
  EXPECT_EQ(source->CapFor(name), length);
  EXPECT_EQ(source->endless_bytes_sent, length + 1);
}

TEST_F(ClientTest, EndlessTargetsIsCutAtTheLengthSnapshotSigned) {
  PublishTarget("a", "a");
  const std::string name = "metadata/" + TargetsName();
  const std::uint64_t length = *CurrentSnapshot().body.meta.at("targets.json").length;
  source->Endless(name);
  EXPECT_TRUE(NewClient()->Refresh().IsCorruption());
  EXPECT_EQ(source->CapFor(name), length);
  EXPECT_EQ(source->endless_bytes_sent, length + 1);
}

TEST_F(ClientTest, EndlessTargetFileIsCutAtItsLength) {
  const TargetInfo a = PublishTarget("pkg/a.bin", depot::testing::RandomData(4096, 1));
  auto client = NewClient();
  ASSERT_OK(client->Refresh());
  const std::string path = "targets/pkg/" + a.sha256 + ".a.bin";
  source->Endless(path);
  EXPECT_TRUE(client->FetchTarget(a).status().IsCorruption());
  EXPECT_EQ(source->CapFor(path), 4096u);
  EXPECT_EQ(source->endless_bytes_sent, 4097u);
}

TEST_F(ClientTest, SourceIgnoringTheCapIsStillRefused) {
  PublishTarget("a", "a");
  const std::string big(kMaxTimestampBytes + 10, ' ');
  source->ServeIgnoringCap("metadata/timestamp.json", ReadMeta("timestamp.json") + big);
  ExpectError(NewClient()->Refresh(), &core::Status::IsCorruption, "endless data");
  source->Reset();
  auto client = NewClient(tmp.Sub("t2"));
  ASSERT_OK(client->Refresh());
  const TargetInfo a = *client->GetTarget("a");
  source->ServeIgnoringCap("targets/" + a.sha256 + ".a", "aa");
  ExpectError(client->FetchTarget(a).status(), &core::Status::IsCorruption, "endless data");
}

}  // namespace
}  // namespace depot::tuf
