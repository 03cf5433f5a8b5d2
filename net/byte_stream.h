// byte_stream.h: a TCP connection that may be upgraded to TLS, with a deadline
// on every operation. It carries bytes and knows no protocol; failures
// (EOF, reset, timeout) come back as values.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "net/result.h"

namespace stampd::net {

using Duration = std::chrono::steady_clock::duration;

// ByteStream owns one connected socket and, after a handshake, its TLS state.
class ByteStream {
 public:
  using Socket = boost::asio::ip::tcp::socket;

  explicit ByteStream(Socket socket);
  ByteStream(ByteStream&&) = delete;
  ~ByteStream();

  // read_some reads at least one byte; an Error with Errc::Timeout when the
  // deadline passes, boost::asio::error::eof when the peer closed.
  boost::asio::awaitable<Result<std::size_t>> read_some(boost::asio::mutable_buffer buffer,
                                                        Duration timeout);
  // write_all writes every byte of buffer (or fails).
  boost::asio::awaitable<Status> write_all(boost::asio::const_buffer buffer, Duration timeout);
  // write_all writes every byte of buffers in order, gathered into as few
  // system calls as the socket takes (one sendmsg for a short list in clear).
  boost::asio::awaitable<Status> write_all(std::vector<boost::asio::const_buffer> buffers,
                                           Duration timeout);
  // start_tls_client runs a client handshake; server_name is sent as SNI and,
  // when verify is on, checked against the certificate.
  boost::asio::awaitable<Status> start_tls_client(boost::asio::ssl::context& context,
                                                  std::string server_name, bool verify,
                                                  Duration timeout);
  // start_tls_server runs a server handshake.
  boost::asio::awaitable<Status> start_tls_server(boost::asio::ssl::context& context,
                                                  Duration timeout);
  // shutdown closes the TLS session politely (bounded by timeout) and the socket.
  boost::asio::awaitable<void> shutdown(Duration timeout);
  // close drops the connection at once, cancelling pending operations. An
  // open stream between operations may keep a timer wait in its executor
  // until its last deadline; close (or destruction) ends it.
  void close() noexcept;
  // cancel ends a pending read or write (it fails); the connection stays.
  void cancel() noexcept;
  // quiet says that the connection is still open and nothing arrived that
  // was not asked for (a server's 421, its close, a TLS alert): what a kept
  // connection must be before it is used again. Never blocks.
  bool quiet() noexcept;

  bool tls_active() const noexcept { return tls_ != nullptr; }
  // tls_description names the protocol and cipher, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384".
  std::string tls_description() const;
  // tls_protocol ("TLSv1.3"), tls_cipher ("TLS_AES_256_GCM_SHA384") and
  // tls_server_name (the SNI name a client sent us; "" for none) describe
  // the TLS session; all "" in clear.
  std::string tls_protocol() const;
  std::string tls_cipher() const;
  std::string tls_server_name() const;
  Socket& socket() noexcept { return socket_; }
  const boost::asio::any_io_executor& executor() noexcept { return executor_; }

 private:
  // arm gives the operation about to start a deadline; disarm says it ended.
  void arm(Duration timeout);
  void disarm() noexcept;
  // wait_for_deadline (re)starts the timer wait for deadline_.
  void wait_for_deadline();
  // stop_deadline cancels the timer wait: the stream is done.
  void stop_deadline() noexcept;
  // send_now writes what the socket takes without waiting (at most
  // kSendNowBuffers buffers); 0 with ec unset when it takes nothing now.
  std::size_t send_now(std::span<const boost::asio::const_buffer> buffers,
                       boost::system::error_code& ec);
  static constexpr std::size_t kSendNowBuffers = 16;
  Error failure(const boost::system::error_code& ec, const char* what) const;

  boost::asio::any_io_executor executor_;
  Socket socket_;
  std::unique_ptr<boost::asio::ssl::stream<Socket&>> tls_;
  boost::asio::steady_timer timer_;
  // generation_ numbers the timer waits: a callback of a wait that was
  // replaced or cancelled, or of a stream that is gone, does nothing.
  std::shared_ptr<unsigned> generation_ = std::make_shared<unsigned>(0);
  std::chrono::steady_clock::time_point deadline_;
  bool armed_ = false;    // an operation with deadline_ is in flight
  bool waiting_ = false;  // the timer has a wait in flight
  bool timed_out_ = false;
  bool tls_server_ = false;  // the TLS session is ours to serve (not a client's)
};

// connect_tcp resolves host and connects to the first address that answers
// within timeout.
boost::asio::awaitable<Result<std::unique_ptr<ByteStream>>> connect_tcp(
    boost::asio::any_io_executor executor, std::string host, std::string port, Duration timeout);

}  // namespace stampd::net
