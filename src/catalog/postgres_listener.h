// Internal to the catalog component: the thread that LISTENs for the catalog's
// notifications on PostgreSQL (Db::Notify / Db::Subscribe, docs/scale-out.md).
//
// It holds one connection of its own, waits on its socket (no polling interval), and
// hands each notification's message to `deliver`, skipping those this process sent
// (their origin is its own; Notify delivered them locally already). When the
// connection is lost it reconnects with backoff (core::Backoff on the clock) and then
// delivers "": what was sent meanwhile is lost, so subscribers must assume anything
// changed.
//
// Thread safety: Start and the destructor from one thread; `deliver` runs on the
// listener's thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "core/clock.h"

namespace depot::catalog {

class PgListener {
 public:
  PgListener(std::string conninfo, std::string described, std::string channel, std::string origin,
             core::Clock* clock, std::function<void(std::string_view)> deliver);
  ~PgListener();  // stops the thread and closes its connection
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Starts the thread; returns once it listens, or once its first attempt failed.
  void Start();

 private:
  void Run();
  // Listens on one connection until it is lost or the listener stops; false when it
  // could not connect and listen at all.
  bool ListenOnce();

  const std::string conninfo_, described_, channel_, origin_;
  core::Clock* clock_;
  std::function<void(std::string_view)> deliver_;
  int wake_fd_ = -1;  // an eventfd the destructor writes to end the socket wait
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;       // under mu_
  bool attempted_ = false;  // under mu_: the first attempt is over
  std::thread thread_;
};

}  // namespace depot::catalog
