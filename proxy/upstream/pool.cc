#include "proxy/upstream/pool.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <utility>

namespace stampd::proxy {

namespace asio = boost::asio;

UpstreamPool::UpstreamPool(asio::any_io_executor executor, Make make, PoolLimits limits,
                           prometheus::Gauge* gauge, std::shared_ptr<ServerHealth> servers)
    : executor_(executor),
      make_(std::move(make)),
      limits_(limits),
      reaper_(executor),
      gauge_(gauge),
      servers_(std::move(servers)) {}

void UpstreamPool::gone() {
  alive_.fetch_sub(1, std::memory_order_relaxed);
  if (gauge_ != nullptr) gauge_->Decrement();
}

asio::awaitable<void> UpstreamPool::close_in_background(std::shared_ptr<UpstreamPool> self,
                                                        std::unique_ptr<Upstream> upstream) {
  co_await upstream->close();
  upstream.reset();
  self->gone();
}

asio::awaitable<UpstreamPool::Lease> UpstreamPool::open_new() {
  ++in_use_;
  alive_.fetch_add(1, std::memory_order_relaxed);
  if (gauge_ != nullptr) gauge_->Increment();
  Lease lease{make_(), true};
  auto caps = co_await lease.upstream->open();
  if (caps) capabilities_ = *caps;
  co_return lease;
}

asio::awaitable<UpstreamPool::Lease> UpstreamPool::acquire(Clock::time_point deadline) {
  for (;;) {
    while (!idle_.empty()) {
      Lease lease{std::move(idle_.back().upstream), false};
      idle_.pop_back();
      // A server that just failed (a 421 on another connection: it is
      // going away) gets no more transactions until its backoff ends.
      const bool skipped = servers_ && servers_->skipped(lease.upstream->peer());
      if (!skipped && lease.upstream->reusable() && lease.upstream->left_alone()) {
        ++in_use_;
        co_return lease;
      }
      // A 421 or a close while it was kept: take another.
      quit(std::move(lease.upstream));
    }
    if (in_use_ < limits_.max_connections) co_return co_await open_new();
    if (Clock::now() >= deadline) co_return Lease{};
    // All in use: wait for one to come back, or for a slot to free up.
    Waiter waiter{asio::steady_timer(executor_, deadline), nullptr};
    waiters_.push_back(&waiter);
    boost::system::error_code ec;
    co_await waiter.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    std::erase(waiters_, &waiter);
    if (waiter.handed) co_return Lease{std::move(waiter.handed), false};
  }
}

void UpstreamPool::release(std::unique_ptr<Upstream> upstream) {
  if (!upstream) return;
  const bool keep = !retired_ && upstream->reusable();
  if (keep && !waiters_.empty()) {
    // Straight to the next transaction; it stays in use.
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->handed = std::move(upstream);
    next->timer.cancel();
    return;
  }
  --in_use_;
  if (keep) {
    idle_.push_back({std::move(upstream), Clock::now()});
    arm_reaper();
  } else if (upstream->connected()) {
    quit(std::move(upstream));
  } else {
    upstream.reset();
    gone();
  }
  if (!waiters_.empty()) {
    // A slot is free: the next waiter may open a connection of its own.
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->timer.cancel();
  }
}

void UpstreamPool::quit(std::unique_ptr<Upstream> upstream) {
  asio::co_spawn(executor_, close_in_background(shared_from_this(), std::move(upstream)),
                 asio::detached);
}

void UpstreamPool::arm_reaper() {
  if (reaper_armed_ || idle_.empty()) return;
  reaper_armed_ = true;
  reaper_.expires_at(idle_.front().since + limits_.idle_timeout);
  reaper_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto pool = weak.lock();
    if (!pool) return;
    pool->reaper_armed_ = false;
    if (!ec) pool->reap();
  });
}

void UpstreamPool::reap() {
  const auto now = Clock::now();
  while (!idle_.empty() && now - idle_.front().since >= limits_.idle_timeout) {
    quit(std::move(idle_.front().upstream));
    idle_.pop_front();
  }
  arm_reaper();
}

void UpstreamPool::retire() {
  asio::post(executor_, [self = shared_from_this()] { self->retire_here(); });
}

void UpstreamPool::retire_here() {
  retired_ = true;
  reaper_.cancel();
  while (!idle_.empty()) {
    quit(std::move(idle_.front().upstream));
    idle_.pop_front();
  }
}

}  // namespace stampd::proxy
