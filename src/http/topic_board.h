// The long-poll topics of the HTTP server: a counter per topic, and the requests
// parked until it moves. Internal to the http component (server.cc).
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "http/server.h"

namespace depot::http {

class TopicBoard {
 public:
  // `stopping` is the server's flag: once it is set, waits end as if timed out.
  explicit TopicBoard(const std::atomic<bool>* stopping) : stopping_(stopping) {}

  // The topic's counter (Server::Sequence).
  std::uint64_t Sequence(const std::string& topic);
  // Advances the topic and wakes every request parked on it.
  void Notify(const std::string& topic);
  // Notify, for every topic.
  void NotifyAll();
  // Parks until the topic moves past `seen` or the timeout. Returns true on timeout.
  boost::asio::awaitable<bool> Wait(const Response::Wait& wait);

 private:
  struct Waiter;
  struct Topic {
    std::uint64_t seq = 0;
    std::list<std::shared_ptr<Waiter>> waiters;
  };

  static void WakeLocked(const std::shared_ptr<Waiter>& w);

  const std::atomic<bool>* stopping_;
  std::mutex mu_;
  std::unordered_map<std::string, Topic> topics_;
};

}  // namespace depot::http
