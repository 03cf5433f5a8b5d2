#include "net/byte_stream.h"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>

namespace stampd::net {

namespace asio = boost::asio;
using boost::system::error_code;

ByteStream::ByteStream(Socket socket)
    : executor_(socket.get_executor()), socket_(std::move(socket)), timer_(executor_) {}

ByteStream::~ByteStream() = default;

// The deadline is lazy: arming and disarming only set deadline_ and armed_,
// and the one timer wait in flight checks them when it fires, waiting again
// for a later deadline. Setting and cancelling a timer per read and write
// cost a posted completion (a trip through the event loop) each.
void ByteStream::arm(Duration timeout) {
  timed_out_ = false;
  armed_ = true;
  deadline_ = std::chrono::steady_clock::now() + timeout;
  if (!waiting_ || deadline_ < timer_.expiry()) wait_for_deadline();
}

void ByteStream::disarm() noexcept { armed_ = false; }

void ByteStream::wait_for_deadline() {
  // expires_at cancels a wait in flight, whose callback then finds itself
  // outdated by the bumped generation.
  timer_.expires_at(deadline_);
  waiting_ = true;
  const unsigned generation = ++*generation_;
  // The callback holds only the shared generation counter and a raw pointer
  // it touches only while that counter proves the stream is alive and the
  // wait is the latest one.
  std::weak_ptr<unsigned> alive = generation_;
  timer_.async_wait([this, alive, generation](const error_code& ec) {
    auto g = alive.lock();
    if (!g || *g != generation) return;
    waiting_ = false;
    if (ec || !armed_) return;  // nothing in flight: the next arm waits anew
    if (std::chrono::steady_clock::now() < deadline_) {
      wait_for_deadline();  // the operation in flight has a later deadline
      return;
    }
    timed_out_ = true;
    error_code ignored;
    socket_.cancel(ignored);
  });
}

void ByteStream::stop_deadline() noexcept {
  armed_ = false;
  if (!waiting_) return;
  waiting_ = false;
  ++*generation_;
  timer_.cancel();
}

std::size_t ByteStream::send_now(std::span<const asio::const_buffer> buffers, error_code& ec) {
  std::array<iovec, kSendNowBuffers> iov{};
  std::size_t count = 0;
  for (const auto& b : buffers) {
    iov[count].iov_base = const_cast<void*>(b.data());
    iov[count].iov_len = b.size();
    if (++count == iov.size()) break;
  }
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = count;
  const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0) return static_cast<std::size_t>(n);
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    ec = error_code(errno, asio::error::get_system_category());
  }
  return 0;
}

Error ByteStream::failure(const error_code& ec, const char* what) const {
  if (timed_out_) return make_error(Errc::Timeout, std::string(what) + " timed out");
  return Error{ec, what};
}

asio::awaitable<Result<std::size_t>> ByteStream::read_some(asio::mutable_buffer buffer,
                                                           Duration timeout) {
  error_code ec;
  arm(timeout);
  std::size_t n = 0;
  if (tls_) {
    n = co_await tls_->async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    n = co_await socket_.async_read_some(buffer, asio::redirect_error(asio::use_awaitable, ec));
  }
  disarm();
  if (ec) co_return failure(ec, "read");
  co_return n;
}

asio::awaitable<Status> ByteStream::write_all(asio::const_buffer buffer, Duration timeout) {
  error_code ec;
  if (!tls_) {
    // What the socket takes at once is written here: most writes fit, and
    // then the coroutine goes on without a trip through the event loop.
    timed_out_ = false;
    buffer += send_now({&buffer, 1}, ec);
    if (ec) co_return failure(ec, "write");
    if (buffer.size() == 0) co_return Ok{};
  }
  arm(timeout);
  if (tls_) {
    co_await asio::async_write(*tls_, buffer, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(socket_, buffer, asio::redirect_error(asio::use_awaitable, ec));
  }
  disarm();
  if (ec) co_return failure(ec, "write");
  co_return Ok{};
}

asio::awaitable<Status> ByteStream::write_all(std::vector<asio::const_buffer> buffers,
                                              Duration timeout) {
  error_code ec;
  if (!tls_ && buffers.size() <= kSendNowBuffers) {
    timed_out_ = false;  // as above
    std::size_t sent = send_now(buffers, ec);
    if (ec) co_return failure(ec, "write");
    // Drop what went out: the whole buffers, then the start of the next.
    std::size_t done = 0;
    while (done < buffers.size() && sent >= buffers[done].size()) sent -= buffers[done++].size();
    buffers.erase(buffers.begin(), buffers.begin() + static_cast<std::ptrdiff_t>(done));
    if (!buffers.empty()) buffers.front() += sent;
    if (buffers.empty()) co_return Ok{};
  }
  arm(timeout);
  if (tls_) {
    co_await asio::async_write(*tls_, buffers, asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(socket_, buffers, asio::redirect_error(asio::use_awaitable, ec));
  }
  disarm();
  if (ec) co_return failure(ec, "write");
  co_return Ok{};
}

asio::awaitable<Status> ByteStream::start_tls_client(asio::ssl::context& context,
                                                     std::string server_name, bool verify,
                                                     Duration timeout) {
  tls_ = std::make_unique<asio::ssl::stream<Socket&>>(socket_, context);
  if (!server_name.empty() &&
      !SSL_set_tlsext_host_name(tls_->native_handle(), server_name.c_str())) {
    co_return make_error(Errc::Crypto, "cannot set SNI name '" + server_name + "'");
  }
  if (verify) {
    tls_->set_verify_mode(asio::ssl::verify_peer);
    tls_->set_verify_callback(asio::ssl::host_name_verification(server_name));
  } else {
    tls_->set_verify_mode(asio::ssl::verify_none);
  }
  error_code ec;
  arm(timeout);
  co_await tls_->async_handshake(asio::ssl::stream_base::client,
                                 asio::redirect_error(asio::use_awaitable, ec));
  disarm();
  if (ec) {
    Error e = failure(ec, "TLS handshake");
    if (!timed_out_) {
      const long verify_result = SSL_get_verify_result(tls_->native_handle());
      if (verify_result != X509_V_OK) {
        e.detail = std::string("TLS certificate verification failed: ") +
                   X509_verify_cert_error_string(verify_result);
      } else {
        e.detail = "TLS handshake failed: " + ec.message();
      }
    }
    tls_.reset();
    co_return e;
  }
  co_return Ok{};
}

asio::awaitable<Status> ByteStream::start_tls_server(asio::ssl::context& context,
                                                     Duration timeout) {
  tls_ = std::make_unique<asio::ssl::stream<Socket&>>(socket_, context);
  tls_server_ = true;
  error_code ec;
  arm(timeout);
  co_await tls_->async_handshake(asio::ssl::stream_base::server,
                                 asio::redirect_error(asio::use_awaitable, ec));
  disarm();
  if (ec) {
    Error e = failure(ec, "TLS handshake");
    tls_.reset();
    co_return e;
  }
  co_return Ok{};
}

asio::awaitable<void> ByteStream::shutdown(Duration timeout) {
  if (tls_ && socket_.is_open()) {
    // A server sends its close_notify and goes (RFC 8446 §6.1 lets the
    // closing side skip waiting for the peer's): a client that keeps the
    // connection open after QUIT must not hold the session for timeout.
    if (tls_server_) SSL_set_shutdown(tls_->native_handle(), SSL_RECEIVED_SHUTDOWN);
    error_code ec;
    arm(timeout);
    co_await tls_->async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
    disarm();
  }
  close();
}

bool ByteStream::quiet() noexcept {
  if (!socket_.is_open()) return false;
  char byte = 0;
  const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void ByteStream::cancel() noexcept {
  error_code ignored;
  socket_.cancel(ignored);
}

void ByteStream::close() noexcept {
  stop_deadline();
  // close alone sends the FIN (nothing else holds the descriptor): no
  // shutdown call first, which fails with ENOTCONN when the peer went first.
  error_code ignored;
  socket_.close(ignored);
}

std::string ByteStream::tls_description() const {
  if (!tls_) return "none";
  SSL* ssl = const_cast<asio::ssl::stream<Socket&>&>(*tls_).native_handle();
  return std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
}

std::string ByteStream::tls_protocol() const {
  if (!tls_) return {};
  return SSL_get_version(const_cast<asio::ssl::stream<Socket&>&>(*tls_).native_handle());
}

std::string ByteStream::tls_cipher() const {
  if (!tls_) return {};
  return SSL_get_cipher_name(const_cast<asio::ssl::stream<Socket&>&>(*tls_).native_handle());
}

std::string ByteStream::tls_server_name() const {
  if (!tls_) return {};
  const char* name = SSL_get_servername(
      const_cast<asio::ssl::stream<Socket&>&>(*tls_).native_handle(), TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

asio::awaitable<Result<std::unique_ptr<ByteStream>>> connect_tcp(asio::any_io_executor executor,
                                                                 std::string host, std::string port,
                                                                 Duration timeout) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  const std::string where = host + ":" + port;
  asio::ip::tcp::resolver resolver(executor);
  asio::steady_timer timer(executor);
  timer.expires_after(timeout);
  auto resolved = co_await (resolver.async_resolve(host, port, token) || timer.async_wait(token));
  if (resolved.index() == 1)
    co_return make_error(Errc::Timeout, "resolving " + where + " timed out");
  auto [rec, endpoints] = std::get<0>(std::move(resolved));
  if (rec) co_return make_error(Errc::Io, "cannot resolve '" + host + "': " + rec.message());

  auto stream = std::make_unique<ByteStream>(ByteStream::Socket(executor));
  auto connected =
      co_await (asio::async_connect(stream->socket(), endpoints, token) || timer.async_wait(token));
  if (connected.index() == 1)
    co_return make_error(Errc::Timeout, "connect to " + where + " timed out");
  if (auto ec = std::get<0>(std::get<0>(connected))) {
    co_return make_error(Errc::Io, "connect to " + where + ": " + ec.message());
  }
  error_code ignored;
  stream->socket().set_option(asio::ip::tcp::no_delay(true), ignored);
  co_return std::move(stream);
}

}  // namespace stampd::net
