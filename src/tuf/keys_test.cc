#include "tuf/keys.h"

#include <gtest/gtest.h>

#include "core/hex.h"
#include "core/testing.h"

namespace depot::tuf {
namespace {

// RFC 8032 section 7.1, test 1.
constexpr char kRfcPem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kRfcPublic[] = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr char kRfcSignature[] =
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6"
    "bd25bf5f0595bbe24655141438e7a100b";
// sha256('{"keytype":"ed25519","keyval":{"public":"d75a...511a"},"scheme":"ed25519"}'),
// computed independently with Python's hashlib.
constexpr char kRfcKeyId[] = "74c181c7ad8a0855d4b55e44d2ba87aabdddb196832571f15f92fece332e4916";

PublicKey RfcPublic() { return PublicKey{"ed25519", "ed25519", kRfcPublic}; }

TEST(KeysTest, Rfc8032VectorSignsAndVerifies) {
  auto key = PrivateKey::FromPem(kRfcPem, "rfc");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->public_key().public_hex, kRfcPublic);
  auto sig = key->Sign("");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(*sig, kRfcSignature);  // Ed25519 is deterministic
  EXPECT_TRUE(VerifySignature(RfcPublic(), "", kRfcSignature).ok());
}

TEST(KeysTest, KeyIdIsStable) {
  EXPECT_EQ(KeyId(RfcPublic()), kRfcKeyId);
  auto key = PrivateKey::FromPem(kRfcPem, "rfc");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->keyid(), kRfcKeyId);
}

TEST(KeysTest, GenerateSignVerifyAndTamper) {
  auto key = PrivateKey::Generate();
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(core::IsLowerHex(key->public_key().public_hex, 64));
  EXPECT_EQ(key->keyid(), KeyId(key->public_key()));
  auto sig = key->Sign("signed bytes");
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(sig->size(), 128u);
  EXPECT_TRUE(VerifySignature(key->public_key(), "signed bytes", *sig).ok());

  // Tampered message.
  core::Status s = VerifySignature(key->public_key(), "signed bytez", *sig);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  // Tampered signature (one bit).
  std::string bad = *sig;
  bad[10] = bad[10] == '0' ? '1' : '0';
  EXPECT_TRUE(VerifySignature(key->public_key(), "signed bytes", bad).IsCorruption());
  // Wrong key.
  auto other = PrivateKey::Generate();
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(VerifySignature(other->public_key(), "signed bytes", *sig).IsCorruption());
  // Malformed signatures.
  EXPECT_TRUE(VerifySignature(key->public_key(), "signed bytes", "").IsCorruption());
  EXPECT_TRUE(VerifySignature(key->public_key(), "signed bytes", sig->substr(2)).IsCorruption());
  EXPECT_TRUE(
      VerifySignature(key->public_key(), "signed bytes", std::string(128, 'z')).IsCorruption());
}

TEST(KeysTest, RejectsOtherKeyTypes) {
  PublicKey rsa{"rsa", "rsassa-pss-sha256", kRfcPublic};
  core::Status s = VerifySignature(rsa, "", kRfcSignature);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find("not supported"), std::string::npos);
  EXPECT_TRUE(ValidatePublicKey(PublicKey{"ed25519", "ecdsa", kRfcPublic}).IsInvalidArgument());
  EXPECT_TRUE(ValidatePublicKey(PublicKey{"ed25519", "ed25519", "ABCD"}).IsInvalidArgument());
  EXPECT_TRUE(ValidatePublicKey(RfcPublic()).ok());
}

TEST(KeysTest, SaveAndLoadWithStrictPermissions) {
  depot::testing::TempDir tmp;
  core::Env* env = core::Env::Default();
  auto key = PrivateKey::Generate();
  ASSERT_TRUE(key.ok());
  const std::string path = tmp.Sub("k.pem");
  ASSERT_TRUE(key->Save(env, path).ok());
  auto info = env->Stat(path);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->mode, 0600u);
  std::string pem = depot::testing::ReadFileOrDie(path);
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);

  auto loaded = PrivateKey::Load(env, path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->keyid(), key->keyid());
  auto sig = loaded->Sign("m");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(VerifySignature(key->public_key(), "m", *sig).ok());

  ASSERT_TRUE(env->Chmod(path, 0644).ok());
  auto open = PrivateKey::Load(env, path);
  EXPECT_TRUE(open.status().IsPermissionDenied()) << open.status().ToString();
  EXPECT_NE(open.status().message().find("chmod 600"), std::string::npos);

  EXPECT_TRUE(PrivateKey::Load(env, tmp.Sub("absent.pem")).status().IsNotFound());
}

TEST(KeysTest, RejectsGarbageAndNonEd25519Pem) {
  EXPECT_TRUE(PrivateKey::FromPem("not a key", "x").status().IsCorruption());
  // An EC P-256 key (valid PKCS#8, wrong algorithm).
  constexpr char kEcPem[] =
      "-----BEGIN PRIVATE KEY-----\n"
      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgiqrtw2t4kob6xKck\n"
      "CfCVj6fJzFsBx2gtB7xNkrit8kShRANCAATPZe6OydAmq+zV6v1coNGcwleQUkZb\n"
      "F6/yy4iVJMBg2d1Ys7BaaIinyF6Jl31qJ47G1SpWFNwY/GYrlRZZpFK2\n"
      "-----END PRIVATE KEY-----\n";
  auto ec = PrivateKey::FromPem(kEcPem, "ec.pem");
  EXPECT_TRUE(ec.status().IsCorruption()) << ec.status().ToString();
  EXPECT_NE(ec.status().message().find("not an Ed25519"), std::string::npos)
      << ec.status().ToString();
}

TEST(KeysTest, MoveKeepsKeyUsable) {
  auto key = PrivateKey::Generate();
  ASSERT_TRUE(key.ok());
  const std::string id = key->keyid();
  PrivateKey moved = std::move(key).value();
  PrivateKey assigned = std::move(*PrivateKey::Generate());
  assigned = std::move(moved);
  EXPECT_EQ(assigned.keyid(), id);
  EXPECT_TRUE(assigned.Sign("x").ok());
}

}  // namespace
}  // namespace depot::tuf
