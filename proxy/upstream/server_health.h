// server_health.h: which [upstream] servers are down, shared by every I/O
// thread's pool and the probe, so that a server that keeps failing costs a
// connect timeout once per backoff, not once per message. Thread-safe; no I/O.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace stampd::proxy {

class ServerHealth {
 public:
  using Clock = std::chrono::steady_clock;
  // A failed server is skipped for kFirstBackoff, twice as long after each
  // further failure, at most kMaxBackoff; one success clears it.
  static constexpr Clock::duration kFirstBackoff = std::chrono::seconds(1);
  static constexpr Clock::duration kMaxBackoff = std::chrono::seconds(60);

  explicit ServerHealth(std::vector<std::string> servers);

  // order lists the servers to try, in the configured order, without those
  // marked down; when every one is down, all of them (the soonest back
  // first): mail is never refused without trying.
  std::vector<std::string> order() const;
  // failed records a connection failure (refused, greeting, TLS, AUTH,
  // a 421, a drop or a timeout) at server; a verdict (4xx, 5xx) is not one.
  void failed(const std::string& server);
  // succeeded records a working connection to server.
  void succeeded(const std::string& server);
  // skipped says whether server is in its backoff (connections to it are
  // neither opened nor reused).
  bool skipped(const std::string& server) const;
  // all_failing says whether the last contact with every server failed
  // (/readyz: not ready), backoff over or not.
  bool all_failing() const;
  std::size_t size() const { return servers_.size(); }

 private:
  struct State {
    unsigned failures = 0;
    Clock::time_point down_until{};
  };
  std::size_t index(const std::string& server) const;

  const std::vector<std::string> servers_;
  mutable std::mutex mutex_;
  std::vector<State> states_;
};

}  // namespace stampd::proxy
