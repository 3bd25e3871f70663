#include "core/hex.h"

namespace depot::core {
namespace {
constexpr char kDigits[] = "0123456789abcdef";

int Nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string ToHex(const std::uint8_t* data, std::size_t size) {
  std::string out(size * 2, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

std::string ToHex(std::string_view data) {
  return ToHex(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
}

Result<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) {
    return Status::InvalidArgument("hex string has odd length " + std::to_string(hex.size()));
  }
  std::string out(hex.size() / 2, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = Nibble(hex[2 * i]), lo = Nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      return Status::InvalidArgument("not a hex string (bad character at offset " +
                                     std::to_string(hi < 0 ? 2 * i : 2 * i + 1) + ")");
    }
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

namespace {

struct LowerHexTable {
  bool is[256] = {};
  constexpr LowerHexTable() {
    for (int c = '0'; c <= '9'; ++c) is[c] = true;
    for (int c = 'a'; c <= 'f'; ++c) is[c] = true;
  }
};
constexpr LowerHexTable kLowerHex;

}  // namespace

bool IsLowerHex(std::string_view s, std::size_t length) {
  if (length != 0 ? s.size() != length : s.empty()) return false;
  // One table load per character and no early exit: random digits and letters
  // would make a compare-and-branch loop mispredict on most characters (a DP asks
  // this of every chunk name it serves).
  bool all = true;
  for (char c : s) all &= kLowerHex.is[static_cast<unsigned char>(c)];
  return all;
}

}  // namespace depot::core
