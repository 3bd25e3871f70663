#include "core/random.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/hex.h"

namespace depot::core {

std::string RandomBytes(std::size_t n) {
  std::string out(n, '\0');
  if (n != 0 &&
      RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "depot: fatal: OpenSSL RAND_bytes failed\n");
    std::abort();
  }
  return out;
}

std::string RandomHex(std::size_t n) { return ToHex(RandomBytes(n)); }

namespace {
struct Xoshiro {
  std::uint64_t s[4];
  Xoshiro() {
    std::string seed = RandomBytes(sizeof(s));
    std::memcpy(s, seed.data(), sizeof(s));
    if ((s[0] | s[1] | s[2] | s[3]) == 0) s[0] = 1;
  }
  static std::uint64_t Rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t Next() {
    std::uint64_t result = Rotl(s[1] * 5, 7) * 9;
    std::uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return result;
  }
};
}  // namespace

std::uint64_t FastRandom64() {
  thread_local Xoshiro gen;
  return gen.Next();
}

}  // namespace depot::core
