// ByteStream on real loopback sockets: deadlines (the timer is lazy: it is
// set once and re-checked when it fires, so a deadline shorter or longer than
// the one before must still hold), writes that go out at once or in part, and
// a stream that leaves no timer behind when it is closed or destroyed.
#include "net/byte_stream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace stampd::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Pair {
  tcp::socket peer;
  std::unique_ptr<ByteStream> stream;
};

Pair connected(asio::io_context& io) {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket peer(io);
  peer.connect(acceptor.local_endpoint());
  tcp::socket ours(io);
  acceptor.accept(ours);
  return {std::move(peer), std::make_unique<ByteStream>(std::move(ours))};
}

// run runs work to its end and returns its value; io.run() returns only when
// nothing is left, timers included.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> work) {
  std::optional<T> out;
  std::exception_ptr failed;
  auto keep = [&out](asio::awaitable<T> w) -> asio::awaitable<void> {
    out.emplace(co_await std::move(w));
  };
  asio::co_spawn(io, keep(std::move(work)), [&](std::exception_ptr e) { failed = e; });
  io.run();
  if (failed) std::rethrow_exception(failed);
  return std::move(*out);
}

asio::awaitable<void> send_after(tcp::socket& peer, Duration delay, std::string text) {
  asio::steady_timer timer(peer.get_executor(), delay);
  co_await timer.async_wait(asio::use_awaitable);
  co_await asio::async_write(peer, asio::buffer(text), asio::use_awaitable);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

TEST(ByteStream, ReadTimesOut) {
  asio::io_context io;
  auto p = connected(io);
  char buf[16];
  const auto start = Clock::now();
  auto r = run(io, p.stream->read_some(asio::buffer(buf), 100ms));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::Timeout);
  EXPECT_GE(seconds_since(start), 0.09);
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(ByteStream, ShortDeadlineAfterALongOne) {
  // The timer still waits for the first read's 30 s; the second read's
  // 100 ms must move it earlier.
  asio::io_context io;
  auto p = connected(io);
  asio::write(p.peer, asio::buffer(std::string("a")));
  auto reads = [&]() -> asio::awaitable<Result<std::size_t>> {
    char buf[16];
    auto first = co_await p.stream->read_some(asio::buffer(buf), 30s);
    EXPECT_TRUE(first);
    co_return co_await p.stream->read_some(asio::buffer(buf), 100ms);
  };
  const auto start = Clock::now();
  auto r = run(io, reads());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::Timeout);
  p.stream.reset();  // its timer must not hold run() for the 30 s
  io.restart();
  io.run();
  EXPECT_LT(seconds_since(start), 2.0);
}

TEST(ByteStream, LongDeadlineAfterAShortOne) {
  // The timer fires at the first read's 100 ms while the second read (600 ms)
  // waits: it must wait on, and the data at 300 ms arrives in time.
  asio::io_context io;
  auto p = connected(io);
  asio::write(p.peer, asio::buffer(std::string("a")));
  auto reads = [&]() -> asio::awaitable<std::string> {
    char buf[16];
    auto first = co_await p.stream->read_some(asio::buffer(buf), 100ms);
    EXPECT_TRUE(first);
    asio::co_spawn(p.peer.get_executor(), send_after(p.peer, 300ms, "late"), asio::detached);
    auto second = co_await p.stream->read_some(asio::buffer(buf), 600ms);
    if (!second) co_return "error: " + second.error().message();
    co_return std::string(buf, *second);
  };
  EXPECT_EQ(run(io, reads()), "late");
}

TEST(ByteStream, DeadlineAfterAnIdlePause) {
  // Between the reads the timer fires with nothing in flight and stops; the
  // next read must start it again, and a read that gets nothing times out.
  asio::io_context io;
  auto p = connected(io);
  asio::write(p.peer, asio::buffer(std::string("a")));
  auto reads = [&]() -> asio::awaitable<std::string> {
    char buf[16];
    auto first = co_await p.stream->read_some(asio::buffer(buf), 50ms);
    EXPECT_TRUE(first);
    asio::steady_timer pause(p.peer.get_executor(), 150ms);
    co_await pause.async_wait(asio::use_awaitable);
    asio::co_spawn(p.peer.get_executor(), send_after(p.peer, 40ms, "b"), asio::detached);
    auto second = co_await p.stream->read_some(asio::buffer(buf), 200ms);
    if (!second) co_return "error: " + second.error().message();
    const auto start = Clock::now();
    auto third = co_await p.stream->read_some(asio::buffer(buf), 100ms);
    if (third) co_return "third read got data";
    if (third.error().code != Errc::Timeout) co_return "third: " + third.error().message();
    if (seconds_since(start) > 1.0) co_return "third timed out late";
    co_return std::string(buf, *second);
  };
  EXPECT_EQ(run(io, reads()), "b");
}

std::string pattern(std::size_t size, char seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + i % 251);
  return s;
}

asio::awaitable<std::string> read_exactly(tcp::socket& peer, std::size_t size) {
  std::string got(size, '\0');
  co_await asio::async_read(peer, asio::buffer(got), asio::use_awaitable);
  co_return got;
}

TEST(ByteStream, BigWritesArriveWholeAndInOrder) {
  // More than the socket buffers hold: the first send takes part, the rest
  // waits for the reader.
  asio::io_context io;
  auto p = connected(io);
  const std::string one = pattern(16 << 20, 'a');
  // A short first buffer: the first send takes all of it and part of the
  // next, which must go on from where the send stopped.
  const std::string a = "head", b = pattern(8 << 20, 'b'), c = "tail";
  const std::string expected = one + a + b + c;
  std::string received;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> { received = co_await read_exactly(p.peer, expected.size()); },
      asio::detached);
  auto writes = [&]() -> asio::awaitable<bool> {
    auto s1 = co_await p.stream->write_all(asio::buffer(one), 10s);
    std::vector<asio::const_buffer> parts{asio::buffer(a), asio::buffer(b), asio::buffer(c)};
    auto s2 = co_await p.stream->write_all(std::move(parts), 10s);
    p.stream->close();  // or run() would wait for the 10 s deadline's timer
    co_return s1.ok() && s2.ok();
  };
  EXPECT_TRUE(run(io, writes()));
  EXPECT_TRUE(received == expected)
      << "received " << received.size() << " of " << expected.size() << " bytes";
}

TEST(ByteStream, WriteTimesOutWhenThePeerDoesNotRead) {
  asio::io_context io;
  auto p = connected(io);
  const std::string big(64 << 20, 'x');
  const auto start = Clock::now();
  auto s = run(io, p.stream->write_all(asio::buffer(big), 200ms));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::Timeout);
  EXPECT_LT(seconds_since(start), 3.0);
}

TEST(ByteStream, WriteToAClosedPeerFails) {
  // A reset connection is an error value: no SIGPIPE, no exception.
  asio::io_context io;
  auto p = connected(io);
  asio::write(p.stream->socket(), asio::buffer(std::string("unread")));
  p.peer.close();  // with unread data: the peer answers with a reset
  auto writes = [&]() -> asio::awaitable<bool> {
    const std::string line(1000, 'y');
    for (int i = 0; i < 1000; ++i) {
      // Named: g++ 12 mishandles co_await inside a condition.
      auto written = co_await p.stream->write_all(asio::buffer(line), 1s);
      if (!written) co_return true;
    }
    co_return false;
  };
  EXPECT_TRUE(run(io, writes()));
}

TEST(ByteStream, CloseLeavesNoTimerBehind) {
  asio::io_context io;
  auto p = connected(io);
  asio::write(p.peer, asio::buffer(std::string("a")));
  auto read_then_close = [&]() -> asio::awaitable<bool> {
    char buf[16];
    auto r = co_await p.stream->read_some(asio::buffer(buf), 30s);
    p.stream->close();
    co_return r.ok();
  };
  const auto start = Clock::now();
  EXPECT_TRUE(run(io, read_then_close()));  // run() returns only when no timer waits
  EXPECT_LT(seconds_since(start), 2.0);
}

}  // namespace
}  // namespace stampd::net
