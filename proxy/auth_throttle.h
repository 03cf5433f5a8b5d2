// auth_throttle.h: failed AUTH attempts, counted per client IP and per user
// name over a window, shared by every session of the server (so a client
// cannot reset its count by reconnecting) and kept across reloads. Holds
// names and addresses only, never a password; bounded in size.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace stampd::proxy {

class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;

  // Limits are read from the config of the session asking, so a reload applies.
  struct Limits {
    std::size_t max_failures = 5;
    Clock::duration window = std::chrono::minutes(15);
  };

  // blocked tells whether ip, or user (when not empty), already has
  // max_failures failures in the window.
  bool blocked(const std::string& ip, std::string_view user, Limits limits,
               Clock::time_point now = Clock::now());
  // failed counts a failure for ip and user; returns the larger of their counts.
  std::size_t failed(const std::string& ip, std::string_view user, Limits limits,
                     Clock::time_point now = Clock::now());
  // succeeded forgets user's failures (not the address's: one good login must
  // not open the door to guessing others from there).
  void succeeded(std::string_view user);

  std::size_t tracked() const;

 private:
  struct Count {
    std::size_t failures = 0;
    Clock::time_point first;
  };
  std::size_t current(const std::string& key, Limits limits, Clock::time_point now);
  std::size_t add(const std::string& key, Limits limits, Clock::time_point now);
  void prune(Limits limits, Clock::time_point now);

  static constexpr std::size_t kMaxEntries = 100'000;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Count> counts_;  // "ip:1.2.3.4", "user:alice"
};

}  // namespace stampd::proxy
