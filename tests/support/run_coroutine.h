// run_coroutine.h: runs one coroutine to completion on a fresh io_context for
// a unit test, failing the test instead of hanging if it takes too long.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <stdexcept>

namespace stampd::test {

// run_coroutine runs make(ctx) and returns its result; throws on timeout.
template <class T, class F>
T run_coroutine(F make, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  boost::asio::io_context ctx;
  std::optional<T> out;
  std::exception_ptr error;
  boost::asio::co_spawn(ctx, make(ctx), [&](std::exception_ptr e, T value) {
    if (e)
      error = e;
    else
      out.emplace(std::move(value));
  });
  ctx.run_for(timeout);
  if (error) std::rethrow_exception(error);
  if (!out) throw std::runtime_error("run_coroutine: timed out");
  return std::move(*out);
}

}  // namespace stampd::test
