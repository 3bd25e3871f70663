#include "core/sha256.h"

#include <openssl/evp.h>

#include <array>
#include <cstdlib>
#include <cstring>

#include "core/hex.h"

namespace depot::core {
namespace {
// Fetched once: EVP_sha256() would do an implicit fetch on every init.
const EVP_MD* Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

// The context cannot fail to initialise short of memory exhaustion or a broken
// OpenSSL install; neither is recoverable, so abort with a clear message.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "depot: fatal: OpenSSL SHA-256 %s failed\n", what);
  std::abort();
}
}  // namespace

std::string DigestHex(const Digest& d) { return ToHex(d.data(), d.size()); }

namespace {

// Lowercase hex digit -> value; everything else -> 0xff.
constexpr std::array<std::uint8_t, 256> kNibble = [] {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::uint8_t>(c - 'a' + 10);
  return t;
}();

}  // namespace

Result<Digest> ParseDigestHex(std::string_view hex) {
  // Decoded in place, by table and without a branch per digit: a manifest holds one
  // id per chunk and file (~84 k in the 1 GiB benchmark tree), parsed on every
  // version commit, sync and install.
  Digest d;
  std::uint8_t bad = hex.size() == 64 ? 0 : 0xf0;
  if (bad == 0) {
    for (std::size_t i = 0; i < d.size(); ++i) {
      std::uint8_t hi = kNibble[static_cast<unsigned char>(hex[2 * i])];
      std::uint8_t lo = kNibble[static_cast<unsigned char>(hex[2 * i + 1])];
      bad |= hi | lo;
      d[i] = static_cast<std::uint8_t>((hi << 4) | (lo & 15));
    }
  }
  if (bad & 0xf0) {
    return Status::InvalidArgument("not a SHA-256 id (want 64 lowercase hex digits): '" +
                                   std::string(hex.substr(0, 80)) + "'");
  }
  return d;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || Md() == nullptr || EVP_DigestInit_ex2(ctx_, Md(), nullptr) != 1) {
    Fatal("init");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Update(const void* data, std::size_t size) {
  if (size != 0 && EVP_DigestUpdate(ctx_, data, size) != 1) Fatal("update");
}

Digest Sha256::Finish() {
  Digest d;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_, d.data(), &len) != 1 || len != d.size()) Fatal("final");
  if (EVP_DigestInit_ex2(ctx_, Md(), nullptr) != 1) Fatal("init");
  return d;
}

Digest Sha256::Hash(std::string_view data) {
  // One context per thread: creating an EVP context per chunk shows up in profiles.
  thread_local Sha256 hasher;
  hasher.Update(data);
  return hasher.Finish();
}

}  // namespace depot::core
