// metrics_server.cc: /metrics, /healthz and /readyz over HTTP/1.0 and 1.1.
//
// Why Boost.Beast: the request parsing and response writing are Beast's
// (http::request_parser, http::async_write on a beast::tcp_stream). It comes
// with the Boost we already build against, header-only, and gets right what a
// hand-written reader got wrong or left out: keep-alive (Prometheus reuses its
// connection), HEAD, pipelined requests, strict request-line and field syntax,
// a header size limit, Content-Length and chunked bodies to refuse, deadlines.
// What stays ours is policy, a few lines each: the three routes and their
// bodies, the limits (HttpLimits), the connection cap, and closing with a
// short drain so that an error answer is not lost to a reset.
#include "obs/metrics_server.h"

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "net/cidr.h"
#include "net/host_port.h"
#include "obs/health.h"
#include "obs/metrics.h"

namespace stampd::obs {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

struct MetricsServer::Shared {
  Shared(Metrics& m, Health& h, HttpLimits l) : metrics(m), health(h), limits(l) {}
  Metrics& metrics;
  Health& health;
  const HttpLimits limits;
  std::atomic<std::size_t> open{0};  // connections being served
  std::atomic<bool> stopping{false};
};

namespace {

constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
constexpr const char* kText = "text/plain";
// The Prometheus text exposition format, version 0.0.4.
constexpr const char* kExposition = "text/plain; version=0.0.4; charset=utf-8";
// How long a closing connection waits for the client's own close.
constexpr auto kLinger = std::chrono::seconds(1);
// Pause after a failed accept (descriptors exhausted), so as not to spin.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

using Request = http::request<http::empty_body>;
using Response = http::response<http::string_body>;

Response make_response(http::status status, unsigned version, const char* type, std::string body) {
  Response res(status, version);
  res.set(http::field::content_type, type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

// error_response answers a request that could not be read (Beast's parser
// takes HTTP/1.0 and 1.1 only); the connection closes after it.
Response error_response(http::status status, std::string body) {
  Response res = make_response(status, 11, kText, std::move(body));
  res.keep_alive(false);
  return res;
}

// route answers GET path (without its query).
Response route(std::string_view path, unsigned version, Metrics& metrics, const Health& health) {
  if (path == "/metrics") {
    return make_response(http::status::ok, version, kExposition, metrics.text());
  }
  if (path == "/healthz") return make_response(http::status::ok, version, kText, "ok\n");
  if (path == "/readyz") {
    const std::string why = health.not_ready_reason();
    return why.empty() ? make_response(http::status::ok, version, kText, "ready\n")
                       : make_response(http::status::service_unavailable, version, kText,
                                       "not ready: " + why + "\n");
  }
  return make_response(http::status::not_found, version, kText,
                       "try /metrics, /healthz or /readyz\n");
}

// answer responds to one request whose header was read; body_follows says it
// announced a body, which we never read: the connection closes after it.
Response answer(const Request& req, bool body_follows, bool stopping, Metrics& metrics,
                const Health& health) {
  const bool head = req.method() == http::verb::head;
  Response res;
  if (!head && req.method() != http::verb::get) {
    res =
        make_response(http::status::method_not_allowed, req.version(), kText, "GET or HEAD only\n");
    res.set(http::field::allow, "GET, HEAD");  // RFC 9110 §15.5.6
  } else if (body_follows) {
    res = make_response(http::status::payload_too_large, req.version(), kText,
                        "no request body accepted\n");
  } else {
    const std::string_view target(req.target().data(), req.target().size());
    res = route(target.substr(0, target.find('?')), req.version(), metrics, health);
  }
  res.keep_alive(req.keep_alive() && !body_follows && !stopping);
  if (head) {  // RFC 9110 §9.3.2: the GET's header fields, no content
    const auto length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  return res;
}

// read_failure is the answer to a request that failed to read with ec, if it
// deserves one; a client that left or stalled gets none.
std::optional<Response> read_failure(const boost::system::error_code& ec) {
  if (ec == http::error::header_limit) {
    return error_response(http::status::request_header_fields_too_large, "header too large\n");
  }
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return std::nullopt;
  if (ec.category() == http::make_error_code(http::error::bad_method).category()) {
    return error_response(http::status::bad_request, "bad request\n");
  }
  return std::nullopt;  // timeout, reset, eof
}

// close_gracefully half-closes, then drains what the client still sends for a
// moment: closing with unread bytes would reset the connection, and a reset
// can destroy the answer before the client reads it.
asio::awaitable<void> close_gracefully(beast::tcp_stream& stream) {
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  stream.expires_after(kLinger);
  std::array<char, 4096> sink;
  while (!ec) {
    auto [read_ec, n] = co_await stream.async_read_some(asio::buffer(sink), kToken);
    ec = read_ec;
  }
  stream.close();
}

}  // namespace

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen,
                             const std::string& config_path, Metrics& metrics, Health& health,
                             HttpLimits limits)
    : io_(io),
      acceptor_(asio::make_strand(io)),
      shared_(std::make_shared<Shared>(metrics, health, limits)) {
  auto hp = net::split_host_port(listen);
  auto ip = hp ? net::parse_ip(hp->host) : std::nullopt;
  if (!ip)
    throw std::runtime_error(config_path + ": [metrics] listen: bad address '" + listen + "'");
  tcp::endpoint endpoint(*ip, static_cast<unsigned short>(std::stoul(hp->port)));
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error(config_path + ": [metrics] listen: cannot listen on " + listen + ": " +
                             ec.message());
  }
}

void MetricsServer::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

void MetricsServer::stop() {
  shared_->stopping = true;
  // On the acceptor's strand: accept_loop may be using it on another thread.
  asio::dispatch(acceptor_.get_executor(), [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
}

std::string MetricsServer::local_endpoint() const {
  boost::system::error_code ec;
  auto ep = acceptor_.local_endpoint(ec);
  if (ec) return "";
  const auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

asio::awaitable<void> MetricsServer::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), kToken);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      asio::steady_timer pause(acceptor_.get_executor(), kAcceptBackoff);
      co_await pause.async_wait(kToken);
      continue;
    }
    if (shared_->open >= shared_->limits.max_connections) {
      socket.close(ec);  // the cap: the client sees its connection closed at once
      continue;
    }
    ++shared_->open;  // here, not in serve: the next accept must see it
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve(shared_, std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> MetricsServer::serve(std::shared_ptr<Shared> shared, tcp::socket socket) {
  struct Slot {  // gives the connection's place back, however the coroutine ends
    std::atomic<std::size_t>& open;
    ~Slot() { --open; }
  } slot{shared->open};
  const HttpLimits& limits = shared->limits;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;  // may hold the start of a pipelined next request
  for (;;) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    stream.expires_after(limits.request_timeout);
    auto [read_ec, n] = co_await http::async_read_header(stream, buffer, parser, kToken);
    std::optional<Response> res;
    if (!read_ec) {
      res = answer(parser.get(), !parser.is_done(), shared->stopping, shared->metrics,
                   shared->health);
    } else {
      res = read_failure(read_ec);
      if (!res) break;
    }
    stream.expires_after(limits.write_timeout);
    auto [write_ec, m] = co_await http::async_write(stream, *res, kToken);
    if (write_ec) co_return;
    if (!res->keep_alive()) break;
  }
  co_await close_gracefully(stream);
}

}  // namespace stampd::obs
