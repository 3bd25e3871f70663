// Streaming SHA-256 through OpenSSL's EVP interface (which uses SHA-NI where the CPU
// has it). Ids of chunks, files and manifests are SHA-256 digests in lowercase hex.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

struct evp_md_ctx_st;

namespace depot::core {

using Digest = std::array<std::uint8_t, 32>;

// Lowercase hex of a digest (64 characters).
std::string DigestHex(const Digest& d);
// Parses 64 lowercase hex characters; InvalidArgument otherwise.
Result<Digest> ParseDigestHex(std::string_view hex);

// An incremental hasher. Not thread-safe: one per thread. Reusable: Finish() resets it.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, std::size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Returns the digest of everything since construction or the last Finish().
  Digest Finish();

  // One-shot helpers.
  static Digest Hash(std::string_view data);
  static std::string HashHex(std::string_view data) { return DigestHex(Hash(data)); }

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace depot::core
