#include "proxy/data_deadline.h"

#include <algorithm>

namespace stampd::proxy {

DataDeadline::DataDeadline(Clock::duration timeout, std::uint64_t min_rate, Clock::time_point start)
    : timeout_(timeout), min_rate_(min_rate), start_(start) {}

DataDeadline::Clock::duration DataDeadline::wait(std::uint64_t received,
                                                 Clock::time_point now) const {
  if (min_rate_ == 0) return timeout_;
  // Whole microseconds per octet would round a fast rate to nothing: the
  // product first. Bounded (a day) so that no count overflows the clock.
  constexpr std::uint64_t kDayUs = 86'400'000'000ULL;
  const std::uint64_t earned_us =
      std::min(std::min<std::uint64_t>(received, 1ULL << 40) * 1'000'000 / min_rate_, kDayUs);
  const Clock::time_point end =
      start_ + timeout_ +
      std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds(earned_us));
  if (end <= now) return Clock::duration::zero();
  return std::min(timeout_, end - now);
}

}  // namespace stampd::proxy
