#include "http/address_budget.h"

#include <algorithm>

namespace depot::http {

AddressBudget::AddressBudget(std::uint64_t total, std::uint64_t per_address)
    : total_(total), per_address_(std::min(per_address, total)) {}

bool AddressBudget::Reserve(const std::string& address, std::uint64_t units) {
  std::lock_guard lock(mu_);
  auto it = held_.find(address);
  const std::uint64_t held = it == held_.end() ? 0 : it->second;
  if (units > total_ - reserved_ || units > per_address_ - held) return false;
  if (units == 0) return true;
  if (it == held_.end()) it = held_.emplace(address, 0).first;
  it->second += units;
  reserved_ += units;
  return true;
}

void AddressBudget::Release(const std::string& address, std::uint64_t units) {
  std::lock_guard lock(mu_);
  auto it = held_.find(address);
  if (it == held_.end()) return;
  units = std::min(units, it->second);
  it->second -= units;
  reserved_ -= units;
  if (it->second == 0) held_.erase(it);
}

std::shared_ptr<const void> AddressBudget::Lease(const std::string& address, std::uint64_t units) {
  if (!Reserve(address, units)) return nullptr;
  struct Held {
    Held(AddressBudget* b, std::string a, std::uint64_t u)
        : budget(b), address(std::move(a)), units(u) {}
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { budget->Release(address, units); }
    AddressBudget* budget;
    std::string address;
    std::uint64_t units;
  };
  return std::make_shared<const Held>(this, address, units);
}

std::uint64_t AddressBudget::reserved() const {
  std::lock_guard lock(mu_);
  return reserved_;
}

std::size_t AddressBudget::addresses() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

}  // namespace depot::http
