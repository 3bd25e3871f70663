#include "core/net.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace depot::core {

Result<IpAddress> ParseIp(std::string_view s) {
  std::string text(s);
  IpAddress ip;
  in_addr a4;
  in6_addr a6;
  if (text.size() < 64 && inet_pton(AF_INET, text.c_str(), &a4) == 1) {
    ip.v4 = true;
    ip.bytes[10] = 0xff;
    ip.bytes[11] = 0xff;
    std::memcpy(ip.bytes.data() + 12, &a4, 4);
    return ip;
  }
  if (text.size() < 64 && inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    std::memcpy(ip.bytes.data(), &a6, 16);
    static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    ip.v4 = std::memcmp(ip.bytes.data(), kMapped, 12) == 0;
    return ip;
  }
  return Status::InvalidArgument("`" + text.substr(0, 64) + "` is not an IP address");
}

Result<Cidr> ParseCidr(std::string_view s) {
  auto slash = s.find('/');
  auto ip = ParseIp(s.substr(0, slash));
  if (!ip.ok()) {
    return Status::InvalidArgument("`" + std::string(s.substr(0, 80)) +
                                   "` is not a CIDR block like 10.0.0.0/8 or 2001:db8::/32");
  }
  // The spelling decides the family: "::ffff:0:0/96" is an IPv6 block even though its
  // base is an IPv4-mapped address.
  bool v6_text = s.substr(0, slash).find(':') != std::string_view::npos;
  int max = v6_text ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || end != p.data() + p.size() || prefix < 0 || prefix > max) {
      return Status::InvalidArgument("`" + std::string(s.substr(0, 80)) +
                                     "` has a bad prefix length (0-" + std::to_string(max) + ")");
    }
  }
  Cidr c;
  c.base = *ip;
  c.base.v4 = !v6_text;
  c.prefix = prefix;
  int bits = c.base.v4 ? 96 + prefix : prefix;
  for (int i = 0; i < 128; ++i) {
    if (i >= bits) c.base.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80 >> (i % 8)));
  }
  char buf[INET6_ADDRSTRLEN];
  if (c.base.v4) {
    inet_ntop(AF_INET, c.base.bytes.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, c.base.bytes.data(), buf, sizeof(buf));
  }
  c.text = std::string(buf) + "/" + std::to_string(prefix);
  return c;
}

bool CidrContains(const Cidr& cidr, const IpAddress& ip) {
  int bits = cidr.base.v4 ? 96 + cidr.prefix : cidr.prefix;
  for (int i = 0; i < bits; ++i) {
    std::uint8_t mask = static_cast<std::uint8_t>(0x80 >> (i % 8));
    if ((cidr.base.bytes[i / 8] & mask) != (ip.bytes[i / 8] & mask)) return false;
  }
  return true;
}

}  // namespace depot::core
