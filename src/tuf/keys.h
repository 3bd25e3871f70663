// Ed25519 signing keys for TUF metadata, through OpenSSL 3's EVP interface.
//
// A public key is the TUF key object
//   {"keytype":"ed25519","scheme":"ed25519","keyval":{"public":"<64 lowercase hex>"}}
// and its keyid is the lowercase hex SHA-256 of that object's canonical JSON, so the
// same key always has the same id on every machine and in every TUF implementation.
//
// Private keys live in PKCS#8 PEM files ("-----BEGIN PRIVATE KEY-----"), unencrypted,
// mode 0600: the file mode is the protection (the root key is meant to be kept
// offline). Loading refuses a key file other users can read.
//
// Thread safety: PublicKey is a value. A PrivateKey may be used for signing from
// several threads at once (each call makes its own EVP context); moving or
// destroying it needs exclusive access.
#pragma once

#include <string>
#include <string_view>

#include "core/env.h"
#include "core/status.h"

struct evp_pkey_st;

namespace depot::tuf {

inline constexpr std::string_view kKeyTypeEd25519 = "ed25519";
inline constexpr std::string_view kSchemeEd25519 = "ed25519";

// A TUF public key. depot creates and accepts only ed25519/ed25519 keys; the fields
// are kept as strings so a parser can name what it refused.
struct PublicKey {
  std::string keytype{kKeyTypeEd25519};
  std::string scheme{kSchemeEd25519};
  std::string public_hex;  // 32-byte Ed25519 public key, 64 lowercase hex characters

  friend bool operator==(const PublicKey&, const PublicKey&) = default;
};

// Returns the keyid of `key`: lowercase hex SHA-256 of the canonical JSON of its
// three-field key object. Never fails (every field is a plain string).
std::string KeyId(const PublicKey& key);

// OK when `key` is an ed25519/ed25519 key with a well-formed public value;
// InvalidArgument naming the unsupported keytype or scheme otherwise.
core::Status ValidatePublicKey(const PublicKey& key);

// Checks an Ed25519 signature (hex) over `message`. OK when valid; Corruption when
// the signature does not verify or is not 64 bytes of hex; InvalidArgument when the
// key is not a supported Ed25519 key.
core::Status VerifySignature(const PublicKey& key, std::string_view message,
                             std::string_view signature_hex);

// An Ed25519 private key. Move-only; owns its OpenSSL key object and frees it.
class PrivateKey {
 public:
  // Makes a fresh key from OpenSSL's CSPRNG. IOError if OpenSSL fails.
  static core::Result<PrivateKey> Generate();
  // Parses an unencrypted PKCS#8 PEM Ed25519 private key. `what` names the source in
  // errors. Corruption when the PEM is unreadable, encrypted, or not Ed25519.
  static core::Result<PrivateKey> FromPem(std::string_view pem, std::string_view what);
  // Reads a key file written by Save(). NotFound when absent; PermissionDenied when
  // its mode lets group or others read it (fix: chmod 600); Corruption as FromPem.
  static core::Result<PrivateKey> Load(core::Env* env, const std::string& path);

  PrivateKey(PrivateKey&& other) noexcept;
  PrivateKey& operator=(PrivateKey&& other) noexcept;
  PrivateKey(const PrivateKey&) = delete;
  PrivateKey& operator=(const PrivateKey&) = delete;
  ~PrivateKey();

  // The PKCS#8 PEM text of the key. Callers holding it should wipe it after use.
  core::Result<std::string> ToPem() const;
  // Writes the key to `path` atomically with mode 0600 (temp file, fsync, rename).
  // IOError/PermissionDenied from the disk.
  core::Status Save(core::Env* env, const std::string& path) const;

  const PublicKey& public_key() const { return public_key_; }
  const std::string& keyid() const { return keyid_; }

  // Signs `message`; returns the 64-byte signature as 128 lowercase hex characters.
  // IOError if OpenSSL fails (it does not for a valid key).
  core::Result<std::string> Sign(std::string_view message) const;

 private:
  explicit PrivateKey(evp_pkey_st* pkey);
  core::Status InitPublic(std::string_view what);

  evp_pkey_st* pkey_ = nullptr;
  PublicKey public_key_;
  std::string keyid_;
};

}  // namespace depot::tuf
