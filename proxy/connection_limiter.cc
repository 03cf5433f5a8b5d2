#include "proxy/connection_limiter.h"

namespace stampd::proxy {

ConnectionLimiter::Refusal ConnectionLimiter::acquire(const net::IpAddress& ip,
                                                      std::size_t max_total,
                                                      std::size_t max_per_ip) {
  std::lock_guard lock(mutex_);
  if (total_ >= max_total) return Refusal::Global;
  auto& count = per_ip_[ip];
  if (count >= max_per_ip) {
    if (count == 0) per_ip_.erase(ip);
    return Refusal::PerIp;
  }
  ++count;
  ++total_;
  return Refusal::None;
}

void ConnectionLimiter::release(const net::IpAddress& ip) {
  std::lock_guard lock(mutex_);
  --total_;
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

std::size_t ConnectionLimiter::active() const {
  std::lock_guard lock(mutex_);
  return total_;
}

}  // namespace stampd::proxy
