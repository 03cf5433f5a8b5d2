#include "cmd/signal_watcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <csignal>
#include <vector>

namespace stampd::cmd {
namespace {

namespace asio = boost::asio;

TEST(SignalWatcher, HandsEachSignalToTheExecutorInOrder) {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::vector<int> got;
  SignalWatcher watcher(io.get_executor(), [&got](int sig) { got.push_back(sig); });
  ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);
  for (int i = 0; i < 500 && got.empty(); ++i) io.run_for(std::chrono::milliseconds(10));
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  for (int i = 0; i < 500 && got.size() < 2; ++i) io.run_for(std::chrono::milliseconds(10));
  EXPECT_EQ(got, (std::vector<int>{SIGHUP, SIGINT}));
}

TEST(SignalWatcher, ATermAfterStopStaysPendingInsteadOfKilling) {
  asio::io_context io;
  int calls = 0;
  {
    SignalWatcher watcher(io.get_executor(), [&calls](int) { ++calls; });
    watcher.stop();
  }
  // Without the mask this would end the test binary.
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  sigset_t pending;
  sigemptyset(&pending);
  ASSERT_EQ(sigpending(&pending), 0);
  EXPECT_TRUE(sigismember(&pending, SIGTERM));
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  const timespec now{};
  EXPECT_EQ(sigtimedwait(&term, nullptr, &now), SIGTERM);  // take it back
  io.poll();
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace stampd::cmd
