// pool.h: the upstream connections of one I/O thread, kept open between
// transactions so that a message costs no connection set-up, and capped so
// that a crowd of clients never becomes a crowd of upstream connections
// (Postfix serves 100 smtpd processes by default). A transaction takes a
// connection at MAIL and gives it back after its final reply. Each I/O
// thread has its own pool and its connections are used on that thread only,
// so the pool takes no locks and a socket never changes threads.
#pragma once

#include <prometheus/gauge.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "proxy/upstream/server_health.h"
#include "proxy/upstream/upstream.h"
#include "smtp/session.h"

namespace stampd::proxy {

struct PoolLimits {
  std::size_t max_connections = 1;  // this thread's share, in use and idle
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(60);
};

class UpstreamPool : public std::enable_shared_from_this<UpstreamPool> {
 public:
  using Clock = std::chrono::steady_clock;
  using Make = std::function<std::unique_ptr<Upstream>()>;

  // make creates a new, unopened connection; everything runs on executor.
  // gauge (optional) follows the connections this pool has open. servers
  // (optional, shared by the pools) is which servers are failing: a kept
  // connection to one in its backoff is not reused.
  UpstreamPool(boost::asio::any_io_executor executor, Make make, PoolLimits limits,
               prometheus::Gauge* gauge = nullptr, std::shared_ptr<ServerHealth> servers = nullptr);

  // Lease is what acquire gives: the connection (nullptr when none came
  // before the deadline), and whether it was opened for this lease.
  struct Lease {
    std::unique_ptr<Upstream> upstream;
    bool opened = false;
  };
  // acquire gives a connection for one transaction: a kept one that is
  // still good, else a new one while under the cap, else the next one given
  // back before deadline. A new connection whose open failed is given too,
  // not connected: its last_error says why; give it back with release.
  boost::asio::awaitable<Lease> acquire(Clock::time_point deadline);
  // release takes a connection back after its transaction: kept when it can
  // carry another one, closed (QUIT) otherwise.
  void release(std::unique_ptr<Upstream> upstream);
  // capabilities is what the upstream offered when we last connected.
  const std::optional<smtp::UpstreamCapabilities>& capabilities() const { return capabilities_; }
  // servers is the shared record of failing servers (null: none kept).
  ServerHealth* servers() const { return servers_.get(); }
  // retire closes the kept connections and the others as they come back
  // (the configuration they were made for is gone). Any thread may call it.
  void retire();

  std::size_t idle() const { return idle_.size(); }
  std::size_t open() const { return idle_.size() + in_use_; }
  // alive counts the connections not yet closed, those being closed (QUIT)
  // included; any thread may ask (the drain waits for it to reach 0).
  std::size_t alive() const { return alive_.load(std::memory_order_relaxed); }

 private:
  struct Kept {
    std::unique_ptr<Upstream> upstream;
    Clock::time_point since;
  };
  struct Waiter {
    boost::asio::steady_timer timer;
    std::unique_ptr<Upstream> handed;
  };

  boost::asio::awaitable<Lease> open_new();
  // quit closes a connection politely in the background.
  void quit(std::unique_ptr<Upstream> upstream);
  static boost::asio::awaitable<void> close_in_background(std::shared_ptr<UpstreamPool> self,
                                                          std::unique_ptr<Upstream> upstream);
  void gone();
  void arm_reaper();
  void reap();
  void retire_here();

  boost::asio::any_io_executor executor_;
  Make make_;
  PoolLimits limits_;
  std::deque<Kept> idle_;  // the most recently used at the back
  std::size_t in_use_ = 0;
  std::deque<Waiter*> waiters_;
  std::optional<smtp::UpstreamCapabilities> capabilities_;
  boost::asio::steady_timer reaper_;
  bool reaper_armed_ = false;
  bool retired_ = false;
  std::atomic<std::size_t> alive_{0};
  prometheus::Gauge* gauge_;
  std::shared_ptr<ServerHealth> servers_;
};

}  // namespace stampd::proxy
