#include "obs/metrics_server.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <stdexcept>

#include "net/cidr.h"
#include "net/host_port.h"
#include "obs/health.h"
#include "obs/metrics.h"

namespace stampd::obs {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr std::size_t kMaxRequest = 8192;

std::string response(int status, const char* reason, const char* type, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

asio::awaitable<void> serve_http(tcp::socket socket) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  asio::streambuf buffer(kMaxRequest);
  asio::steady_timer timer(socket.get_executor(), std::chrono::seconds(10));
  auto read = co_await (asio::async_read_until(socket, buffer, "\r\n\r\n", token) ||
                        timer.async_wait(token));
  std::string reply;
  if (read.index() == 0 && !std::get<0>(std::get<0>(read))) {
    std::istream in(&buffer);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    reply = http_response(line);
  } else if (read.index() == 0 && std::get<0>(std::get<0>(read)) == asio::error::not_found) {
    reply = response(431, "Request Header Fields Too Large", "text/plain", "request too large\n");
  } else {
    co_return;
  }
  timer.expires_after(std::chrono::seconds(10));
  co_await (asio::async_write(socket, asio::buffer(reply), token) || timer.async_wait(token));
  boost::system::error_code ec;
  socket.shutdown(tcp::socket::shutdown_both, ec);
}

}  // namespace

std::string http_response(const std::string& request_line) {
  const auto sp1 = request_line.find(' ');
  const auto sp2 = request_line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    return response(400, "Bad Request", "text/plain", "bad request\n");
  }
  const std::string method = request_line.substr(0, sp1);
  std::string path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);
  if (method != "GET" && method != "HEAD") {
    return response(405, "Method Not Allowed", "text/plain", "GET only\n");
  }
  std::string out;
  if (path == "/metrics") {
    out = response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", metrics().text());
  } else if (path == "/healthz") {
    out = response(200, "OK", "text/plain", "ok\n");
  } else if (path == "/readyz") {
    const std::string why = health().not_ready_reason();
    out = why.empty()
              ? response(200, "OK", "text/plain", "ready\n")
              : response(503, "Service Unavailable", "text/plain", "not ready: " + why + "\n");
  } else {
    out = response(404, "Not Found", "text/plain", "try /metrics, /healthz or /readyz\n");
  }
  if (method == "HEAD") out.resize(out.find("\r\n\r\n") + 4);
  return out;
}

MetricsServer::MetricsServer(asio::io_context& io, const std::string& listen,
                             const std::string& config_path)
    : io_(io), acceptor_(io) {
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

void MetricsServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void MetricsServer::stop() {
  boost::system::error_code ec;
  acceptor_.close(ec);
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
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_),
                                                        asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      continue;
    }
    auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_http(std::move(socket)), asio::detached);
  }
}

}  // namespace stampd::obs
