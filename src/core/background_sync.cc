#include "core/background_sync.h"

namespace depot::core {

BackgroundSync::BackgroundSync(Env* env, std::string path, std::uint64_t every_bytes)
    : env_(env), path_(std::move(path)), every_(every_bytes ? every_bytes : 1) {
  thread_ = std::thread([this] { Run(); });
}

BackgroundSync::~BackgroundSync() { Stop().IgnoreError(); }

void BackgroundSync::Wrote(std::uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool was_below = pending_ < every_;
  pending_ += n;
  if (was_below && pending_ >= every_) cv_.notify_one();
}

std::uint64_t BackgroundSync::syncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return syncs_;
}

void BackgroundSync::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || pending_ >= every_; });
    if (stop_) return;
    pending_ = 0;
    lock.unlock();
    Status s = env_->SyncFilesystem(path_);
    lock.lock();
    ++syncs_;
    if (!s.ok() && first_error_.ok()) {
      first_error_ = std::move(s).WithContext("background sync");
    }
  }
}

Status BackgroundSync::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

}  // namespace depot::core
