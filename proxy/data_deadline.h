// data_deadline.h: how long the next read of a message may wait. Besides
// the wait for each read (data_timeout, RFC 5321 §4.5.3.2.5), a message must
// keep up a minimum average rate, as Postfix's smtpd_min_data_rate asks:
// otherwise one byte a little inside every data_timeout holds a session, its
// buffers and an upstream connection for as long as the client likes (a
// DATA trickle). A slow link that keeps the rate is never cut.
#pragma once

#include <chrono>
#include <cstdint>

namespace stampd::proxy {

class DataDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  // min_rate is in octets per second; 0 turns the rate off.
  DataDeadline(Clock::duration timeout, std::uint64_t min_rate, Clock::time_point start);

  // wait is how long the next read may wait once received octets of the
  // message came: timeout, or less when the message is behind its rate
  // (what it had at start is timeout, and each octet earns 1/min_rate s).
  // Zero: the client is too slow, the message is over.
  Clock::duration wait(std::uint64_t received, Clock::time_point now) const;

 private:
  Clock::duration timeout_;
  std::uint64_t min_rate_;
  Clock::time_point start_;
};

}  // namespace stampd::proxy
