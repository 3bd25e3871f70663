// A budget of something a server holds for its clients -- connections, bytes of
// request bodies, bytes of answers built in memory -- bounded in all and for each
// peer address, so that one client (or one address a crowd hides behind) cannot take
// what every other client needs.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace depot::http {

class AddressBudget {
 public:
  // `total` units in all, `per_address` of them for one address.
  AddressBudget(std::uint64_t total, std::uint64_t per_address);

  // Takes `units` for `address`; false (nothing taken) when that would exceed the
  // address's share or the total.
  bool Reserve(const std::string& address, std::uint64_t units);
  // Gives back units Reserve took (never more than the address holds).
  void Release(const std::string& address, std::uint64_t units);
  // Reserve, as a lease that gives the units back when the last copy is dropped;
  // null when the budget is exhausted. The budget must outlive the lease.
  std::shared_ptr<const void> Lease(const std::string& address, std::uint64_t units);

  std::uint64_t reserved() const;
  std::uint64_t total() const { return total_; }
  std::uint64_t per_address() const { return per_address_; }
  // Addresses holding anything (the map never keeps others, so it stays bounded by
  // what is reserved).
  std::size_t addresses() const;

 private:
  const std::uint64_t total_;
  const std::uint64_t per_address_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::uint64_t> held_;
  std::uint64_t reserved_ = 0;
};

}  // namespace depot::http
