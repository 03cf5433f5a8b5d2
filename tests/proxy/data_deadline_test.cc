// The minimum data rate: a message that keeps it waits data_timeout per
// read; one that falls behind gets less, then nothing.
#include "proxy/data_deadline.h"

#include <gtest/gtest.h>

namespace stampd::proxy {
namespace {

using std::chrono::seconds;
using Clock = DataDeadline::Clock;

const Clock::time_point t0{};

TEST(DataDeadline, AtTheStartTheWaitIsTheTimeout) {
  const DataDeadline d(seconds(10), 500, t0);
  EXPECT_EQ(d.wait(0, t0), seconds(10));
}

TEST(DataDeadline, AClientAtTheRateIsNeverCut) {
  const DataDeadline d(seconds(10), 500, t0);
  // 500 octets a second for an hour: each read still waits data_timeout.
  for (int s = 1; s <= 3600; s += 7) EXPECT_EQ(d.wait(500ULL * s, t0 + seconds(s)), seconds(10));
}

TEST(DataDeadline, ATrickleRunsOutOfTime) {
  const DataDeadline d(seconds(10), 500, t0);
  // One octet every 9 s (inside data_timeout each time): 10 s plus 2 ms an
  // octet, so the second read already waits less and the third gets nothing.
  EXPECT_EQ(d.wait(1, t0 + seconds(9)), std::chrono::milliseconds(1002));
  EXPECT_EQ(d.wait(2, t0 + seconds(18)), Clock::duration::zero());
}

TEST(DataDeadline, ARateOfZeroIsOnlyThePerReadTimeout) {
  const DataDeadline d(seconds(10), 0, t0);
  EXPECT_EQ(d.wait(1, t0 + seconds(3600)), seconds(10));
}

TEST(DataDeadline, AHugeCountDoesNotOverflow) {
  const DataDeadline d(seconds(10), 1, t0);
  EXPECT_EQ(d.wait(~0ULL, t0 + seconds(3600)), seconds(10));
}

}  // namespace
}  // namespace stampd::proxy
