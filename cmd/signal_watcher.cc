#include "cmd/signal_watcher.h"

#include <pthread.h>

#include <boost/asio/post.hpp>
#include <csignal>
#include <system_error>
#include <utility>

namespace stampd::cmd {

namespace {

sigset_t control_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void block_control_signals() {
  const sigset_t set = control_signals();
  if (int r = pthread_sigmask(SIG_BLOCK, &set, nullptr); r != 0) {
    throw std::system_error(r, std::generic_category(), "pthread_sigmask");
  }
}

SignalWatcher::SignalWatcher(boost::asio::any_io_executor executor, Handler handler)
    : executor_(std::move(executor)), handler_(std::move(handler)) {
  // The new thread inherits the mask; sigwait needs the signals blocked.
  block_control_signals();
  thread_ = std::thread([this] { run(); });
}

void SignalWatcher::stop() {
  if (stopping_.exchange(true)) return;
  // Directed at our thread, a blocked signal of the set wakes its sigwait
  // and nobody else; stopping_ tells it from a real one.
  pthread_kill(thread_.native_handle(), SIGHUP);
  thread_.join();
}

void SignalWatcher::run() {
  const sigset_t set = control_signals();
  for (;;) {
    int signal = 0;
    if (sigwait(&set, &signal) != 0) continue;
    if (stopping_) return;
    boost::asio::post(executor_, [this, signal] { handler_(signal); });
  }
}

}  // namespace stampd::cmd
