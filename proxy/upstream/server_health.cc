#include "proxy/upstream/server_health.h"

#include <algorithm>
#include <numeric>

namespace stampd::proxy {

ServerHealth::ServerHealth(std::vector<std::string> servers)
    : servers_(std::move(servers)), states_(servers_.size()) {}

std::size_t ServerHealth::index(const std::string& server) const {
  return static_cast<std::size_t>(std::find(servers_.begin(), servers_.end(), server) -
                                  servers_.begin());
}

std::vector<std::string> ServerHealth::order() const {
  const auto now = Clock::now();
  std::lock_guard lock(mutex_);
  std::vector<std::string> up;
  for (std::size_t i = 0; i < servers_.size(); ++i) {
    if (states_[i].down_until <= now) up.push_back(servers_[i]);
  }
  if (!up.empty()) return up;
  std::vector<std::size_t> all(servers_.size());
  std::iota(all.begin(), all.end(), std::size_t{0});
  std::stable_sort(all.begin(), all.end(), [this](std::size_t a, std::size_t b) {
    return states_[a].down_until < states_[b].down_until;
  });
  for (const std::size_t i : all) up.push_back(servers_[i]);
  return up;
}

void ServerHealth::failed(const std::string& server) {
  const std::size_t i = index(server);
  if (i == servers_.size()) return;
  std::lock_guard lock(mutex_);
  State& s = states_[i];
  auto backoff = kFirstBackoff;
  for (unsigned n = 0; n < s.failures && backoff < kMaxBackoff; ++n) backoff *= 2;
  s.failures = std::min(s.failures + 1, 32U);
  s.down_until = Clock::now() + std::min(backoff, kMaxBackoff);
}

void ServerHealth::succeeded(const std::string& server) {
  const std::size_t i = index(server);
  if (i == servers_.size()) return;
  std::lock_guard lock(mutex_);
  states_[i] = State{};
}

bool ServerHealth::skipped(const std::string& server) const {
  const std::size_t i = index(server);
  if (i == servers_.size()) return false;
  std::lock_guard lock(mutex_);
  return states_[i].down_until > Clock::now();
}

bool ServerHealth::all_failing() const {
  std::lock_guard lock(mutex_);
  return std::all_of(states_.begin(), states_.end(), [](const State& s) { return s.failures > 0; });
}

}  // namespace stampd::proxy
