#include "proxy/auth_throttle.h"

#include <algorithm>
#include <vector>

namespace stampd::proxy {

std::size_t AuthThrottle::current(const std::string& key, Limits limits, Clock::time_point now) {
  const auto it = counts_.find(key);
  if (it == counts_.end()) return 0;
  if (now - it->second.first > limits.window) {
    counts_.erase(it);
    return 0;
  }
  return it->second.failures;
}

std::size_t AuthThrottle::add(const std::string& key, Limits limits, Clock::time_point now) {
  if (current(key, limits, now) == 0) counts_[key] = Count{0, now};
  return ++counts_[key].failures;
}

void AuthThrottle::prune(Limits limits, Clock::time_point now) {
  if (counts_.size() < kMaxEntries) return;
  std::erase_if(counts_,
                [&](const auto& entry) { return now - entry.second.first > limits.window; });
  // Still full (an attack from very many addresses): forget the oldest half
  // rather than grow without bound.
  if (counts_.size() >= kMaxEntries) {
    std::vector<Clock::time_point> firsts;
    firsts.reserve(counts_.size());
    for (const auto& entry : counts_) firsts.push_back(entry.second.first);
    auto middle = firsts.begin() + static_cast<std::ptrdiff_t>(firsts.size() / 2);
    std::nth_element(firsts.begin(), middle, firsts.end());
    const auto cut = *middle;
    std::erase_if(counts_, [&](const auto& entry) { return entry.second.first <= cut; });
  }
}

bool AuthThrottle::blocked(const std::string& ip, std::string_view user, Limits limits,
                           Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (current("ip:" + ip, limits, now) >= limits.max_failures) return true;
  return !user.empty() && current("user:" + std::string(user), limits, now) >= limits.max_failures;
}

std::size_t AuthThrottle::failed(const std::string& ip, std::string_view user, Limits limits,
                                 Clock::time_point now) {
  std::lock_guard lock(mutex_);
  prune(limits, now);
  std::size_t n = add("ip:" + ip, limits, now);
  if (!user.empty()) n = std::max(n, add("user:" + std::string(user), limits, now));
  return n;
}

void AuthThrottle::succeeded(std::string_view user) {
  std::lock_guard lock(mutex_);
  counts_.erase("user:" + std::string(user));
}

std::size_t AuthThrottle::tracked() const {
  std::lock_guard lock(mutex_);
  return counts_.size();
}

}  // namespace stampd::proxy
