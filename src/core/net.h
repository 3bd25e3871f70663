// IP addresses and CIDR blocks, for DP boundaries and collection rules.
//
// Thread safety: values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace depot::core {

// An IPv4 or IPv6 address; IPv4 is kept as an IPv4-mapped IPv6 address so one
// comparison covers both.
struct IpAddress {
  std::array<std::uint8_t, 16> bytes{};
  bool v4 = false;
};

// Parses "10.1.2.3", "::1", "fe80::1" (no zone). InvalidArgument otherwise.
Result<IpAddress> ParseIp(std::string_view s);

struct Cidr {
  IpAddress base;    // with host bits cleared
  int prefix = 0;    // in the address's own family: 0-32 for IPv4, 0-128 for IPv6
  std::string text;  // canonical "10.0.0.0/8"
};

// Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a /32 or /128).
// InvalidArgument naming the input otherwise.
Result<Cidr> ParseCidr(std::string_view s);

// True when `ip` lies inside `cidr` (an IPv4 address never matches an IPv6 block
// other than ::ffff:0:0/96 and its sub-blocks, and vice versa).
bool CidrContains(const Cidr& cidr, const IpAddress& ip);

}  // namespace depot::core
