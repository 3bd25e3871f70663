// Randomness. RandomBytes is cryptographic (tokens, key material); FastRandom64 is
// not (temp-file names, retry jitter) and is cheap enough for hot paths.
#pragma once

#include <cstdint>
#include <string>

namespace depot::core {

// `n` bytes from OpenSSL's CSPRNG. Aborts if the CSPRNG is unusable (a broken
// system: nothing secure could be done anyway).
std::string RandomBytes(std::size_t n);
// Lowercase hex of RandomBytes(n).
std::string RandomHex(std::size_t n);
// A per-thread xoshiro256** generator seeded from RandomBytes.
std::uint64_t FastRandom64();

}  // namespace depot::core
