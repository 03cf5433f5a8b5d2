#pragma once
// SignalWatcher hands SIGTERM, SIGINT and SIGHUP to an executor as plain
// calls, taken by a thread of its own with sigwait.
//
// Why not asio::signal_set: it installs a handler and puts SIG_DFL back when
// it goes away. After the drain the process still has a teardown to do, and a
// second SIGTERM then (a supervisor repeating itself) killed a process that
// was exiting with 0. Here the signals are blocked in every thread for the
// whole run, so their default action never happens; one that arrives after
// the watcher stopped stays pending and dies with the process.

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <thread>

namespace stampd::cmd {

// block_control_signals blocks TERM, INT and HUP in the calling thread, and so
// in every thread it starts afterwards. Call it before any thread exists.
void block_control_signals();

class SignalWatcher {
 public:
  using Handler = std::function<void(int signal)>;

  // The handler runs on executor, once per signal, in arrival order.
  SignalWatcher(boost::asio::any_io_executor executor, Handler handler);
  ~SignalWatcher() { stop(); }
  // stop ends the thread (once); the signals stay blocked.
  void stop();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  void run();

  boost::asio::any_io_executor executor_;
  Handler handler_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace stampd::cmd
