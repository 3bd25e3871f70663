#include "http/topic_board.h"

#include <boost/asio.hpp>
#include <boost/asio/as_tuple.hpp>

namespace depot::http {

namespace asio = boost::asio;

struct TopicBoard::Waiter {
  explicit Waiter(asio::any_io_executor ex) : timer(ex) {}
  asio::steady_timer timer;
  bool notified = false;  // guarded by the topic mutex
};

std::uint64_t TopicBoard::Sequence(const std::string& topic) {
  std::lock_guard<std::mutex> lock(mu_);
  return topics_[topic].seq;
}

void TopicBoard::Notify(const std::string& topic) {
  std::lock_guard<std::mutex> lock(mu_);
  Topic& t = topics_[topic];
  ++t.seq;
  for (auto& w : t.waiters) WakeLocked(w);
  t.waiters.clear();
}

void TopicBoard::NotifyAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, t] : topics_) {
    ++t.seq;
    for (auto& w : t.waiters) WakeLocked(w);
    t.waiters.clear();
  }
}

void TopicBoard::WakeLocked(const std::shared_ptr<Waiter>& w) {
  w->notified = true;
  // Timers are not thread-safe: cancel on the waiter's own executor.
  asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
}

asio::awaitable<bool> TopicBoard::Wait(const Response::Wait& wait) {
  auto ex = co_await asio::this_coro::executor;
  auto w = std::make_shared<Waiter>(ex);
  w->timer.expires_after(wait.timeout);
  {
    std::lock_guard<std::mutex> lock(mu_);
    Topic& t = topics_[wait.topic];
    // Stopping: answer as if the wait timed out, so the handler gives its final
    // answer instead of parking again.
    if (*stopping_) co_return true;
    if (t.seq != wait.seen) co_return false;
    t.waiters.push_back(w);
  }
  co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  bool notified;
  {
    std::lock_guard<std::mutex> lock(mu_);
    notified = w->notified;
    if (!notified) topics_[wait.topic].waiters.remove(w);
  }
  co_return !notified || *stopping_;
}

}  // namespace depot::http
