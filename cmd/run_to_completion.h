// run_to_completion.h: the one-shot commands' way to run a coroutine on a
// private event loop until it is done.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <optional>
#include <string>

namespace stampd::cmd {

// run_to_completion runs work on io and returns its value, or nullopt with
// error set to what it threw. The loop is stopped once work is done: a
// resolver's reader would otherwise keep run() going.
template <class T>
std::optional<T> run_to_completion(boost::asio::io_context& io, boost::asio::awaitable<T> work,
                                   std::string& error) {
  std::optional<T> out;
  boost::asio::co_spawn(io, std::move(work), [&](const std::exception_ptr& e, T value) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        error = ex.what();
      }
    } else {
      out = std::move(value);
    }
    io.stop();
  });
  io.run();
  return out;
}

}  // namespace stampd::cmd
