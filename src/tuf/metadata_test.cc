#include "tuf/metadata.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/sha256.h"

namespace depot::tuf {
namespace {

constexpr char kHash[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

core::TimePoint Y2030() { return *core::ParseUtc("2030-01-01T00:00:00Z"); }

std::vector<PrivateKey> MakeKeys(int n) {
  std::vector<PrivateKey> keys;
  for (int i = 0; i < n; ++i) keys.push_back(std::move(*PrivateKey::Generate()));
  return keys;
}

// A root with one key per role, all threshold 1, from keys[0..3].
RootMetadata MakeRoot(const std::vector<PrivateKey>& keys) {
  RootMetadata root;
  root.version = 1;
  root.expires = Y2030();
  int i = 0;
  for (Role role : kAllRoles) {
    const PrivateKey& k = keys[static_cast<std::size_t>(i++)];
    root.keys.emplace(k.keyid(), k.public_key());
    root.roles[role] = RoleKeys{{k.keyid()}, 1};
  }
  return root;
}

std::string Wrap(const std::string& signed_json) { return EncodeEnvelope(signed_json, {}); }

constexpr char kTargetsHead[] =
    R"("_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z")";

std::string TargetsWith(const std::string& targets_obj, const std::string& extra = "") {
  return Wrap(std::string("{") + kTargetsHead + ",\"targets\":" + targets_obj + extra + "}");
}

std::string TargetEntry(const std::string& body) {
  return std::string(R"({"dir/file.json":)") + body + "}";
}

void ExpectInvalid(const core::Status& s, const std::string& needle) {
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find(needle), std::string::npos)
      << "expected '" << needle << "' in: " << s.message();
}

TEST(MetadataTest, RoleNames) {
  EXPECT_EQ(RoleName(Role::kSnapshot), "snapshot");
  EXPECT_EQ(RoleFileName(Role::kTimestamp), "timestamp.json");
  EXPECT_EQ(VersionedFileName(Role::kTargets, 42), "42.targets.json");
  EXPECT_EQ(*ParseRole("root"), Role::kRoot);
  EXPECT_TRUE(ParseRole("mirrors").status().IsInvalidArgument());
}

TEST(MetadataTest, RootRoundTripAndSelfSignature) {
  auto keys = MakeKeys(4);
  RootMetadata root = MakeRoot(keys);
  auto canonical = EncodeSigned(root);
  ASSERT_TRUE(canonical.ok()) << canonical.status().ToString();
  auto bytes = SignEnvelope(*canonical, {&keys[0]});
  ASSERT_TRUE(bytes.ok());
  auto parsed = ParseRoot(*bytes, "1.root.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->body, root);
  EXPECT_EQ(parsed->canonical, *canonical);
  ASSERT_EQ(parsed->signatures.size(), 1u);
  EXPECT_TRUE(VerifyThreshold(parsed->body, Role::kRoot, parsed->canonical, parsed->signatures,
                              "1.root.json")
                  .ok());
  // The whole file is canonical JSON.
  EXPECT_EQ(bytes->find(' '), std::string::npos);
  EXPECT_EQ(bytes->rfind(R"({"signatures":[{"keyid":")", 0), 0u);
  EXPECT_NE(canonical->find(R"("spec_version":"1.0.31")"), std::string::npos);
  EXPECT_NE(canonical->find(R"("consistent_snapshot":true)"), std::string::npos);
}

TEST(MetadataTest, TargetsSnapshotTimestampRoundTrip) {
  TargetsMetadata t;
  t.version = 7;
  t.expires = Y2030();
  t.targets["a/b.json"] = TargetInfo{"a/b.json", 12, kHash, R"({"k":[1,"x"],"a":null})"};
  t.targets["c"] = TargetInfo{"c", 0, kHash, ""};
  auto canonical = EncodeSigned(t);
  ASSERT_TRUE(canonical.ok()) << canonical.status().ToString();
  auto parsed = ParseTargets(Wrap(*canonical), "7.targets.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->body.targets.at("a/b.json").custom_json, R"({"a":null,"k":[1,"x"]})");
  EXPECT_EQ(parsed->body.targets.at("c").custom_json, "");
  EXPECT_EQ(parsed->body.targets.at("a/b.json").length, 12u);
  EXPECT_EQ(parsed->body.version, 7);

  SnapshotMetadata s;
  s.version = 3;
  s.expires = Y2030();
  s.meta["targets.json"] = MetaFile{7, 999, kHash};
  auto sc = EncodeSigned(s);
  ASSERT_TRUE(sc.ok());
  auto sp = ParseSnapshot(Wrap(*sc), "3.snapshot.json");
  ASSERT_TRUE(sp.ok()) << sp.status().ToString();
  EXPECT_EQ(sp->body, s);

  TimestampMetadata ts;
  ts.version = 9;
  ts.expires = Y2030();
  ts.snapshot = MetaFile{3, 100, kHash};
  auto tc = EncodeSigned(ts);
  ASSERT_TRUE(tc.ok());
  EXPECT_EQ(
      *tc,
      std::string(
          R"({"_type":"timestamp","expires":"2030-01-01T00:00:00Z","meta":{"snapshot.json":{"hashes":{"sha256":")") +
          kHash + R"("},"length":100,"version":3}},"spec_version":"1.0.31","version":9})");
  auto tp = ParseTimestamp(Wrap(*tc), "timestamp.json");
  ASSERT_TRUE(tp.ok());
  EXPECT_EQ(tp->body, ts);

  // Length and hashes are optional in meta entries.
  s.meta["targets.json"] = MetaFile{7, std::nullopt, ""};
  auto bare = ParseSnapshot(Wrap(*EncodeSigned(s)), "s");
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE(bare->body.meta.at("targets.json").length.has_value());
}

TEST(MetadataTest, TargetsParsingIsStrict) {
  const std::string good = std::string(R"({"length":3,"hashes":{"sha256":")") + kHash + "\"}}";
  EXPECT_TRUE(ParseTargets(TargetsWith(TargetEntry(good)), "t").ok());
  EXPECT_TRUE(ParseTargets(TargetsWith("{}"), "t").ok());

  ExpectInvalid(ParseSnapshot(TargetsWith("{}"), "2.targets.json").status(),
                "2.targets.json: signed: _type is 'targets', expected 'snapshot'");
  ExpectInvalid(
      ParseTargets(
          Wrap(
              R"({"_type":"targets","spec_version":"1.0.31","expires":"2030-01-01T00:00:00Z","targets":{}})"),
          "t")
          .status(),
      "missing field 'version'");
  ExpectInvalid(
      ParseTargets(
          Wrap(
              R"({"_type":"targets","spec_version":"1.0.31","version":0,"expires":"2030-01-01T00:00:00Z","targets":{}})"),
          "t")
          .status(),
      "outside 1..");
  ExpectInvalid(
      ParseTargets(
          Wrap(
              R"({"_type":"targets","spec_version":"1.0.31","version":"1","expires":"2030-01-01T00:00:00Z","targets":{}})"),
          "t")
          .status(),
      "not a non-negative integer");
  ExpectInvalid(
      ParseTargets(
          Wrap(
              R"({"_type":"targets","spec_version":"1.0.31","version":1.0,"expires":"2030-01-01T00:00:00Z","targets":{}})"),
          "t")
          .status(),
      "floating-point");
  ExpectInvalid(
      ParseTargets(
          Wrap(
              R"({"_type":"targets","spec_version":"1.0.31","version":1,"expires":"2030-01-01","targets":{}})"),
          "t")
          .status(),
      "signed.expires");
  ExpectInvalid(
      ParseTargets(
          Wrap(
              R"({"_type":"targets","spec_version":"2.0.0","version":1,"expires":"2030-01-01T00:00:00Z","targets":{}})"),
          "t")
          .status(),
      "spec_version '2.0.0' is not supported");
  ExpectInvalid(ParseTargets(Wrap(std::string("{") + kTargetsHead + "}"), "t").status(),
                "missing field 'targets'");

  ExpectInvalid(ParseTargets(TargetsWith(TargetEntry(R"({"length":3})")), "t").status(),
                "missing field 'hashes'");
  ExpectInvalid(
      ParseTargets(TargetsWith(TargetEntry(R"({"length":3,"hashes":{"sha512":"aa"}})")), "t")
          .status(),
      "no sha256");
  ExpectInvalid(
      ParseTargets(TargetsWith(TargetEntry(R"({"length":3,"hashes":{"sha256":"ABCDEF"}})")), "t")
          .status(),
      "64 lowercase hex");
  ExpectInvalid(
      ParseTargets(TargetsWith(TargetEntry(std::string(R"({"length":-3,"hashes":{"sha256":")") +
                                           kHash + "\"}}")),
                   "t")
          .status(),
      "negative");
  ExpectInvalid(
      ParseTargets(
          TargetsWith(TargetEntry(std::string(R"({"length":3,"custom":[],"hashes":{"sha256":")") +
                                  kHash + "\"}}")),
          "t")
          .status(),
      "'custom' is not an object");
  ExpectInvalid(ParseTargets(TargetsWith(std::string(R"({"../x":)") + good + "}"), "t").status(),
                "'..' component");
  ExpectInvalid(ParseTargets(TargetsWith(std::string(R"({"/abs":)") + good + "}"), "t").status(),
                "absolute");

  // Delegations: empty is fine, anything else is refused.
  EXPECT_TRUE(
      ParseTargets(TargetsWith("{}", R"(,"delegations":{"keys":{},"roles":[]})"), "t").ok());
  ExpectInvalid(
      ParseTargets(TargetsWith("{}", R"(,"delegations":{"keys":{},"roles":[{"name":"x"}]})"), "t")
          .status(),
      "delegated targets roles are not supported");
}

TEST(MetadataTest, SnapshotAndTimestampParsingIsStrict) {
  const std::string head =
      R"("spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z")";
  ExpectInvalid(
      ParseSnapshot(
          Wrap("{\"_type\":\"snapshot\"," + head + R"(,"meta":{"other.json":{"version":1}}})"), "s")
          .status(),
      "does not list targets.json");
  ExpectInvalid(ParseSnapshot(Wrap("{\"_type\":\"snapshot\"," + head +
                                   R"(,"meta":{"targets.json":{"version":0}}})"),
                              "s")
                    .status(),
                "outside 1..");
  ExpectInvalid(ParseSnapshot(Wrap("{\"_type\":\"snapshot\"," + head +
                                   R"(,"meta":{"targets.json":{"version":1,"length":0}}})"),
                              "s")
                    .status(),
                "'length' is 0");
  ExpectInvalid(
      ParseTimestamp(Wrap("{\"_type\":\"timestamp\"," + head +
                          R"(,"meta":{"snapshot.json":{"version":1},"x.json":{"version":1}}})"),
                     "ts")
          .status(),
      "exactly one file, snapshot.json");
  ExpectInvalid(ParseTimestamp(Wrap("{\"_type\":\"timestamp\"," + head +
                                    R"(,"meta":{"targets.json":{"version":1}}})"),
                               "ts")
                    .status(),
                "exactly one file, snapshot.json");
}

TEST(MetadataTest, RootParsingIsStrict) {
  auto keys = MakeKeys(4);
  const RootMetadata root = MakeRoot(keys);
  const std::string canonical = *EncodeSigned(root);
  auto parse = [&](const std::string& signed_json) {
    return ParseRoot(Wrap(signed_json), "2.root.json").status();
  };
  ASSERT_TRUE(parse(canonical).ok());

  const std::string& id0 = keys[0].keyid();
  // Unknown role and missing role.
  std::string s = canonical;
  const std::string ts_role = "\"timestamp\":{";
  s.replace(s.find(ts_role), ts_role.size(), "\"mirrors\":{");
  ExpectInvalid(parse(s), "unknown TUF role 'mirrors'");
  RootMetadata r2 = root;
  // A keyid that is not the hash of its key.
  std::string t = canonical;
  const std::string pub = keys[0].public_key().public_hex;
  t.replace(t.find(pub), pub.size(), keys[1].public_key().public_hex);
  ExpectInvalid(parse(t), "keyid is not the SHA-256");
  // Unsupported key type (keyid recomputed, so only the type is wrong).
  {
    std::string u = canonical;
    const std::string from = "\"keytype\":\"ed25519\"";
    u.replace(u.find(from), from.size(), "\"keytype\":\"rsa\"");
    ExpectInvalid(parse(u), "'rsa'");
  }
  // Threshold 0, unknown keyid in a role, duplicate keyid in a role.
  {
    std::string u = canonical;
    const std::string from = "\"threshold\":1";
    u.replace(u.find(from), from.size(), "\"threshold\":0");
    ExpectInvalid(parse(u), "'threshold' is 0");
  }
  {
    RootMetadata bad = root;
    bad.roles[Role::kTargets].keyids.push_back(std::string(64, 'a'));
    EXPECT_TRUE(EncodeSigned(bad).status().IsInvalidArgument());
    std::string u = canonical;
    const std::string from = "\"keyids\":[\"" + id0 + "\"]";
    ASSERT_NE(u.find(from), std::string::npos);
    u.replace(u.find(from), from.size(), "\"keyids\":[\"" + id0 + "\",\"" + id0 + "\"]");
    ExpectInvalid(parse(u), "listed twice");
    u = canonical;
    u.replace(u.find(from), from.size(), "\"keyids\":[\"" + std::string(64, 'b') + "\"]");
    ExpectInvalid(parse(u), "is not in signed.keys");
  }
  // Missing role.
  r2.roles.erase(Role::kSnapshot);
  EXPECT_TRUE(EncodeSigned(r2).status().IsInvalidArgument());
  std::string m = canonical;
  const auto pos = m.find(",\"snapshot\":{");
  const auto end = m.find('}', pos) + 1;
  m.erase(pos, end - pos);
  ExpectInvalid(parse(m), "the 'snapshot' role is missing");
}

TEST(MetadataTest, EnvelopeParsingIsStrict) {
  TimestampMetadata ts;
  ts.expires = Y2030();
  ts.snapshot = MetaFile{1, 10, kHash};
  const std::string canonical = *EncodeSigned(ts);
  auto key = std::move(*PrivateKey::Generate());
  const std::string sig = *key.Sign(canonical);

  ExpectInvalid(ParseTimestamp("[]", "ts").status(), "not a JSON object");
  ExpectInvalid(ParseTimestamp(R"({"signatures":[]})", "ts").status(), "missing field 'signed'");
  ExpectInvalid(ParseTimestamp("{\"signatures\":{},\"signed\":" + canonical + "}", "ts").status(),
                "'signatures' is not an array");
  ExpectInvalid(
      ParseTimestamp(EncodeEnvelope(canonical, {{key.keyid(), sig}, {key.keyid(), sig}}), "ts")
          .status(),
      "a second signature by key");
  ExpectInvalid(ParseTimestamp(EncodeEnvelope(canonical, {{key.keyid(), "xyz"}}), "ts").status(),
                "sig is not lowercase hex");
  ExpectInvalid(ParseTimestamp(EncodeEnvelope(canonical, {{"KEY", sig}}), "ts").status(),
                "keyid is not 64 lowercase hex");
  std::vector<Signature> many;
  for (int i = 0; i < 65; ++i) {
    std::string id = core::Sha256::HashHex(std::to_string(i));
    many.push_back({id, sig});
  }
  ExpectInvalid(ParseTimestamp(EncodeEnvelope(canonical, many), "ts").status(),
                "65 signatures, more than the 64 allowed");
  // Non-canonical but valid JSON parses; signatures cover the canonical form.
  auto spaced = ParseTimestamp(" { \"signed\" : " + canonical + " , \"signatures\" : [ ] } ", "ts");
  ASSERT_TRUE(spaced.ok()) << spaced.status().ToString();
  EXPECT_EQ(spaced->canonical, canonical);
}

TEST(MetadataTest, UnknownFieldsAreAcceptedAndCoveredBySignatures) {
  auto keys = MakeKeys(4);
  const RootMetadata root = MakeRoot(keys);
  const PrivateKey& ts_key = keys[3];
  TimestampMetadata ts;
  ts.expires = Y2030();
  ts.snapshot = MetaFile{1, 10, kHash};
  std::string canonical = *EncodeSigned(ts);
  canonical.insert(canonical.size() - 1, R"(,"x_extra":"hello")");
  const std::string bytes = *SignEnvelope(canonical, {&ts_key});
  auto parsed = ParseTimestamp(bytes, "timestamp.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_TRUE(VerifyThreshold(root, Role::kTimestamp, parsed->canonical, parsed->signatures,
                              "timestamp.json")
                  .ok());
  std::string altered = bytes;
  altered.replace(altered.find("hello"), 5, "HELLO");
  auto reparsed = ParseTimestamp(altered, "timestamp.json");
  ASSERT_TRUE(reparsed.ok());
  EXPECT_TRUE(VerifyThreshold(root, Role::kTimestamp, reparsed->canonical, reparsed->signatures,
                              "timestamp.json")
                  .IsCorruption());
}

TEST(MetadataTest, ThresholdCountsDistinctValidAuthorizedKeys) {
  auto keys = MakeKeys(6);
  RootMetadata root = MakeRoot(keys);
  // targets: keys[1] and keys[4], threshold 2.
  root.keys.emplace(keys[4].keyid(), keys[4].public_key());
  root.roles[Role::kTargets] = RoleKeys{{keys[1].keyid(), keys[4].keyid()}, 2};
  const std::string msg = "the signed bytes";
  auto sig = [&](const PrivateKey& k) { return Signature{k.keyid(), *k.Sign(msg)}; };
  auto verify = [&](const std::vector<Signature>& sigs) {
    return VerifyThreshold(root, Role::kTargets, msg, sigs, "9.targets.json");
  };

  EXPECT_TRUE(verify({sig(keys[1]), sig(keys[4])}).ok());
  core::Status one = verify({sig(keys[1])});
  EXPECT_TRUE(one.IsCorruption());
  EXPECT_NE(one.message().find("9.targets.json: 1 valid signature(s) by targets keys, 2 required"),
            std::string::npos)
      << one.message();
  // The same signature twice counts once.
  EXPECT_TRUE(verify({sig(keys[1]), sig(keys[1])}).IsCorruption());
  // A valid signature by a key not trusted for the role does not count.
  EXPECT_TRUE(verify({sig(keys[1]), sig(keys[5])}).IsCorruption());
  // Nor does the root key (trusted for another role).
  EXPECT_TRUE(verify({sig(keys[1]), sig(keys[0])}).IsCorruption());
  // An invalid signature by a trusted key does not count.
  Signature bad = sig(keys[4]);
  bad.sig[0] = bad.sig[0] == 'a' ? 'b' : 'a';
  EXPECT_TRUE(verify({sig(keys[1]), bad}).IsCorruption());
  // One key listed under two keyids counts once.
  RootMetadata twin = root;
  const std::string alias(64, 'f');
  twin.keys.emplace(alias, keys[1].public_key());
  twin.roles[Role::kTargets] = RoleKeys{{keys[1].keyid(), alias}, 2};
  Signature aliased{alias, *keys[1].Sign(msg)};
  EXPECT_TRUE(
      VerifyThreshold(twin, Role::kTargets, msg, {sig(keys[1]), aliased}, "t").IsCorruption());
}

TEST(MetadataTest, EncodeRefusesUnpublishableContent) {
  TargetsMetadata t;
  t.expires = Y2030();
  t.targets["a"] = TargetInfo{"a", 1, kHash, R"({"s":"bell\u0007"})"};
  ExpectInvalid(EncodeSigned(t).status(), "control character");
  t.targets["a"] = TargetInfo{"a", 1, kHash, R"([1])"};
  ExpectInvalid(EncodeSigned(t).status(), "not a JSON object");
  t.targets["a"] = TargetInfo{"a", 1, kHash, R"({"f":1.5})"};
  ExpectInvalid(EncodeSigned(t).status(), "floating-point");
  t.targets["a"] = TargetInfo{"a", 1, "abc", ""};
  ExpectInvalid(EncodeSigned(t).status(), "sha256");
  t.targets["a"] = TargetInfo{"b", 1, kHash, ""};
  ExpectInvalid(EncodeSigned(t).status(), "holds info for path");
  t.targets.clear();
  t.targets["a//b"] = TargetInfo{"a//b", 1, kHash, ""};
  ExpectInvalid(EncodeSigned(t).status(), "empty component");
  t.targets.clear();
  t.version = 0;
  ExpectInvalid(EncodeSigned(t).status(), "version 0");
}

TEST(MetadataTest, TargetPaths) {
  EXPECT_EQ(ConsistentTargetPath("a/b/c.json", kHash), std::string("a/b/") + kHash + ".c.json");
  EXPECT_EQ(ConsistentTargetPath("c.json", kHash), std::string(kHash) + ".c.json");
  EXPECT_TRUE(ValidateTargetPath("pkg/tools/3.manifest.json").ok());
  EXPECT_TRUE(ValidateTargetPath("d/\xc3\xa9t\xc3\xa9").ok());
  EXPECT_TRUE(ValidateTargetPath(std::string(190, 'n')).ok());
  ExpectInvalid(ValidateTargetPath(std::string(191, 'n')), "hash prefix");
  ExpectInvalid(ValidateTargetPath("bad\xff"), "UTF-8");
  ExpectInvalid(ValidateTargetPath("\xc0\xaf"), "UTF-8");  // overlong '/'
  ExpectInvalid(ValidateTargetPath("a/../b"), "'..'");
  ExpectInvalid(ValidateTargetPath(""), "empty path");
}

}  // namespace
}  // namespace depot::tuf
