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
  // close drops the connection at once, cancelling pending operations.
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
  void arm(Duration timeout);
  void disarm() noexcept;
  Error failure(const boost::system::error_code& ec, const char* what) const;

  boost::asio::any_io_executor executor_;
  Socket socket_;
  std::unique_ptr<boost::asio::ssl::stream<Socket&>> tls_;
  boost::asio::steady_timer timer_;
  // generation_ tells a stale timer callback (one that fired while the next
  // operation was already armed) not to cancel that operation.
  std::shared_ptr<unsigned> generation_ = std::make_shared<unsigned>(0);
  bool timed_out_ = false;
  bool tls_server_ = false;  // the TLS session is ours to serve (not a client's)
};

// connect_tcp resolves host and connects to the first address that answers
// within timeout.
boost::asio::awaitable<Result<std::unique_ptr<ByteStream>>> connect_tcp(
    boost::asio::any_io_executor executor, std::string host, std::string port, Duration timeout);

}  // namespace stampd::net
