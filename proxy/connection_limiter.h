// connection_limiter.h: counts open client connections, globally and per
// client IP, and refuses one over either cap. Thread-safe; a Slot gives its
// place back when destroyed.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "net/cidr.h"

namespace stampd::proxy {

class ConnectionLimiter {
 public:
  enum class Refusal { None, Global, PerIp };

  class Slot {
   public:
    Slot(ConnectionLimiter* owner, const net::IpAddress& ip) : owner_(owner), ip_(ip) {}
    Slot(Slot&& other) noexcept : owner_(other.owner_), ip_(std::move(other.ip_)) {
      other.owner_ = nullptr;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (owner_) owner_->release(ip_);
    }

   private:
    ConnectionLimiter* owner_;
    net::IpAddress ip_;
  };

  // acquire takes a place for ip, or says which cap refused it.
  Refusal acquire(const net::IpAddress& ip, std::size_t max_total, std::size_t max_per_ip);
  std::size_t active() const;

 private:
  void release(const net::IpAddress& ip);

  mutable std::mutex mutex_;
  std::size_t total_ = 0;
  std::map<net::IpAddress, std::size_t> per_ip_;
};

}  // namespace stampd::proxy
