#include "tuf/keys.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <utility>

#include "core/errors.h"
#include "core/hex.h"
#include "core/sha256.h"
#include "tuf/json_internal.h"

namespace depot::tuf {
namespace {

using core::Result;
using core::Status;

constexpr std::size_t kEd25519PublicBytes = 32;
constexpr std::size_t kEd25519SignatureBytes = 64;
// A PKCS#8 Ed25519 PEM is ~120 bytes; anything near this bound is not a key file.
constexpr std::uint64_t kMaxKeyFileBytes = 64 * 1024;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

// Wipes key material held in a std::string before it is freed.
void Wipe(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

// Never prompts on a terminal for a passphrase: depot key files are unencrypted, and
// an encrypted one must fail instead of blocking a daemon.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return 0; }

std::string OctalMode(std::uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

std::string KeyId(const PublicKey& key) {
  internal::Json obj = {
      {"keytype", key.keytype}, {"scheme", key.scheme}, {"keyval", {{"public", key.public_hex}}}};
  // Only strings are involved, so encoding cannot fail.
  auto canonical = internal::EncodeCanonical(obj, "key");
  return canonical.ok() ? core::Sha256::HashHex(*canonical) : std::string();
}

Status ValidatePublicKey(const PublicKey& key) {
  if (key.keytype != kKeyTypeEd25519 || key.scheme != kSchemeEd25519) {
    std::string kt = key.keytype.substr(0, 40), sc = key.scheme.substr(0, 40);
    return Status::InvalidArgument("key type '" + kt + "' with scheme '" + sc +
                                   "' is not supported (depot accepts only ed25519/ed25519)");
  }
  if (!core::IsLowerHex(key.public_hex, 2 * kEd25519PublicBytes)) {
    return Status::InvalidArgument(
        "ed25519 public key is not 64 lowercase hex characters (32 bytes)");
  }
  return Status::Ok();
}

Status VerifySignature(const PublicKey& key, std::string_view message,
                       std::string_view signature_hex) {
  DEPOT_RETURN_IF_ERROR(ValidatePublicKey(key));
  DEPOT_ASSIGN_OR_RETURN(std::string raw_key, core::FromHex(key.public_hex));
  if (signature_hex.size() != 2 * kEd25519SignatureBytes) {
    return Status::Corruption("signature is " + std::to_string(signature_hex.size() / 2) +
                              " bytes, an Ed25519 signature is 64");
  }
  auto raw_sig = core::FromHex(signature_hex);
  if (!raw_sig.ok()) return Status::Corruption("signature is not hex");

  PkeyPtr pkey(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(raw_key.data()),
                                           raw_key.size()));
  if (!pkey) return core::OpenSslStatus(core::Code::kCorruption, "invalid Ed25519 public key");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return core::OpenSslStatus(core::Code::kIOError, "EVP_MD_CTX_new");
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, pkey.get()) != 1) {
    return core::OpenSslStatus(core::Code::kIOError, "EVP_DigestVerifyInit");
  }
  const int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(raw_sig->data()), raw_sig->size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  if (rc != 1) {
    return core::OpenSslStatus(core::Code::kCorruption,
                               "Ed25519 signature by key " + KeyId(key) + " does not verify");
  }
  return Status::Ok();
}

PrivateKey::PrivateKey(evp_pkey_st* pkey) : pkey_(pkey) {}

PrivateKey::PrivateKey(PrivateKey&& other) noexcept
    : pkey_(std::exchange(other.pkey_, nullptr)),
      public_key_(std::move(other.public_key_)),
      keyid_(std::move(other.keyid_)) {}

PrivateKey& PrivateKey::operator=(PrivateKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(other.pkey_, nullptr);
    public_key_ = std::move(other.public_key_);
    keyid_ = std::move(other.keyid_);
  }
  return *this;
}

PrivateKey::~PrivateKey() { EVP_PKEY_free(pkey_); }

Status PrivateKey::InitPublic(std::string_view what) {
  if (EVP_PKEY_get_base_id(pkey_) != EVP_PKEY_ED25519) {
    return Status::Corruption(std::string(what) + ": not an Ed25519 private key");
  }
  unsigned char raw[kEd25519PublicBytes];
  std::size_t len = sizeof(raw);
  if (EVP_PKEY_get_raw_public_key(pkey_, raw, &len) != 1 || len != sizeof(raw)) {
    return core::OpenSslStatus(core::Code::kCorruption,
                               std::string(what) + ": cannot extract the Ed25519 public key");
  }
  public_key_ =
      PublicKey{std::string(kKeyTypeEd25519), std::string(kSchemeEd25519), core::ToHex(raw, len)};
  keyid_ = KeyId(public_key_);
  return Status::Ok();
}

Result<PrivateKey> PrivateKey::Generate() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (raw == nullptr) {
    return core::OpenSslStatus(core::Code::kIOError, "generating an Ed25519 key");
  }
  PrivateKey key(raw);
  DEPOT_RETURN_IF_ERROR(key.InitPublic("generated key"));
  return key;
}

Result<PrivateKey> PrivateKey::FromPem(std::string_view pem, std::string_view what) {
  if (pem.size() > INT_MAX) return Status::Corruption(std::string(what) + ": too large");
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return core::OpenSslStatus(core::Code::kIOError, "BIO_new_mem_buf");
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr);
  if (raw == nullptr) {
    return core::OpenSslStatus(core::Code::kCorruption,
                               std::string(what) + ": not an unencrypted PKCS#8 PEM private key");
  }
  PrivateKey key(raw);
  DEPOT_RETURN_IF_ERROR(key.InitPublic(what));
  return key;
}

Result<PrivateKey> PrivateKey::Load(core::Env* env, const std::string& path) {
  DEPOT_ASSIGN_OR_RETURN(core::FileInfo info, env->Stat(path));
  if ((info.mode & 077) != 0) {
    return Status::PermissionDenied(path + ": mode " + OctalMode(info.mode) +
                                    " lets other users read this private key; run 'chmod 600 " +
                                    path + "'");
  }
  DEPOT_ASSIGN_OR_RETURN(std::string pem, env->ReadFile(path, kMaxKeyFileBytes));
  auto key = FromPem(pem, path);
  Wipe(&pem);
  return key;
}

Result<std::string> PrivateKey::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return core::OpenSslStatus(core::Code::kIOError, "BIO_new");
  // Unencrypted PKCS#8 ("BEGIN PRIVATE KEY").
  if (PEM_write_bio_PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return core::OpenSslStatus(core::Code::kIOError, "encoding private key " + keyid_);
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  if (n <= 0 || data == nullptr) {
    return core::OpenSslStatus(core::Code::kIOError, "encoding private key " + keyid_);
  }
  std::string pem(data, static_cast<std::size_t>(n));
  OPENSSL_cleanse(data, static_cast<std::size_t>(n));
  return pem;
}

Status PrivateKey::Save(core::Env* env, const std::string& path) const {
  DEPOT_ASSIGN_OR_RETURN(std::string pem, ToPem());
  Status s = env->WriteFileAtomic(path, pem, 0600);
  Wipe(&pem);
  return s;
}

Result<std::string> PrivateKey::Sign(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx) return core::OpenSslStatus(core::Code::kIOError, "EVP_MD_CTX_new");
  if (EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey_) != 1) {
    return core::OpenSslStatus(core::Code::kIOError, "EVP_DigestSignInit for key " + keyid_);
  }
  unsigned char sig[kEd25519SignatureBytes];
  std::size_t len = sizeof(sig);
  if (EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      len != sizeof(sig)) {
    return core::OpenSslStatus(core::Code::kIOError, "signing with key " + keyid_);
  }
  return core::ToHex(sig, len);
}

}  // namespace depot::tuf
