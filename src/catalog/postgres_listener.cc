#include "catalog/postgres_listener.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "catalog/postgres_conn.h"
#include "core/backoff.h"
#include "core/log.h"

namespace depot::catalog {

PgListener::PgListener(std::string conninfo, std::string described, std::string channel,
                       std::string origin, core::Clock* clock,
                       std::function<void(std::string_view)> deliver)
    : conninfo_(std::move(conninfo)),
      described_(std::move(described)),
      channel_(std::move(channel)),
      origin_(std::move(origin)),
      clock_(clock),
      deliver_(std::move(deliver)),
      wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

PgListener::~PgListener() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) close(wake_fd_);
}

void PgListener::Start() {
  thread_ = std::thread([this] { Run(); });
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return attempted_ || stop_; });
}

void PgListener::Run() {
  core::Backoff backoff(clock_, {std::chrono::milliseconds(100), std::chrono::seconds(5)});
  for (;;) {
    if (ListenOnce()) backoff.Succeeded();
    std::unique_lock<std::mutex> lock(mu_);
    if (!attempted_) {
      attempted_ = true;
      cv_.notify_all();
    }
    if (stop_) return;
    backoff.Failed();
    clock_->WaitFor(lock, cv_, backoff.Remaining(), [this] { return stop_; });
    if (stop_) return;
  }
}

bool PgListener::ListenOnce() {
  auto conn = PgConnect(conninfo_, described_);
  if (!conn.ok()) {
    core::Log(core::LogLevel::kWarn, "catalog.listen_failed",
              {{"db", described_}, {"error", conn.status().ToString()}});
    return false;
  }
  PGconn* pg = (*conn)->pg;
  const std::string listen = "LISTEN \"" + channel_ + "\"";
  PgResult res(PQexec(pg, listen.c_str()));
  if (PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
    core::Log(core::LogLevel::kWarn, "catalog.listen_failed",
              {{"db", described_}, {"error", PgStatus(res.get(), pg, "listen").ToString()}});
    return false;
  }
  bool missed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    missed = attempted_;  // an attempt before this one: a time nobody listened
    attempted_ = true;
  }
  cv_.notify_all();
  // Whatever was sent while no connection listened is lost.
  if (missed) deliver_("");
  for (;;) {
    pollfd fds[2] = {{PQsocket(pg), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return true;
    if (fds[1].revents != 0) return true;  // stopping
    if (fds[0].revents == 0) continue;
    if (PQconsumeInput(pg) == 0) {
      core::Log(core::LogLevel::kWarn, "catalog.listen_lost",
                {{"db", described_}, {"error", PQerrorMessage(pg)}});
      return true;
    }
    while (PGnotify* n = PQnotifies(pg)) {
      std::string_view payload = n->extra != nullptr ? n->extra : "";
      const auto bar = payload.find('|');
      if (bar != std::string_view::npos && payload.substr(0, bar) != origin_) {
        deliver_(payload.substr(bar + 1));
      }
      PQfreemem(n);
    }
  }
}

}  // namespace depot::catalog
