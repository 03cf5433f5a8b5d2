#include "cmd/health_command.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>

#include "net/cidr.h"
#include "proxy/config.h"

namespace stampd::cmd {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Below the Dockerfile's HEALTHCHECK --timeout (5s), so that a hung daemon
// gets our one-line reason rather than Docker's kill.
constexpr auto kTimeout = std::chrono::seconds(3);
// Our endpoints answer a few bytes; anything longer is not them.
constexpr std::size_t kMaxResponse = 64 * 1024;

std::string display(const net::HostPort& hp) {
  const bool v6 = hp.host.find(':') != std::string::npos;
  return (v6 ? "[" + hp.host + "]" : hp.host) + ":" + hp.port;
}

// fetch sends "GET path" to endpoint and returns the whole response; one
// deadline for connect, write and read.
asio::awaitable<net::Result<std::string>> fetch(tcp::endpoint endpoint, std::string path) {
  using namespace asio::experimental::awaitable_operators;
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  const auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  asio::steady_timer deadline(executor, kTimeout);
  const auto timed_out = net::make_error(
      net::Errc::Timeout, "no answer within " + std::to_string(kTimeout.count()) + "s");

  auto connected = co_await (socket.async_connect(endpoint, token) || deadline.async_wait(token));
  if (connected.index() == 1) co_return timed_out;
  if (auto [ec] = std::get<0>(connected); ec) {
    co_return net::make_error(net::Errc::Io, "cannot connect: " + ec.message());
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nConnection: close\r\n\r\n";
  auto written = co_await (asio::async_write(socket, asio::buffer(request), token) ||
                           deadline.async_wait(token));
  if (written.index() == 1) co_return timed_out;
  if (auto [ec, n] = std::get<0>(written); ec) {
    co_return net::make_error(net::Errc::Io, "cannot send the request: " + ec.message());
  }
  // The server closes after its answer: read to the end.
  std::string response;
  auto read =
      co_await (asio::async_read(socket, asio::dynamic_buffer(response, kMaxResponse), token) ||
                deadline.async_wait(token));
  if (read.index() == 1) co_return timed_out;
  if (auto [ec, n] = std::get<0>(read); ec && ec != asio::error::eof) {
    co_return net::make_error(net::Errc::Io, "cannot read the answer: " + ec.message());
  }
  co_return response;
}

// fetch_into runs fetch and leaves its result in *out (co_spawn needs a
// default-constructible result, which Result is not).
asio::awaitable<void> fetch_into(tcp::endpoint endpoint, std::string path,
                                 std::optional<net::Result<std::string>>* out) {
  *out = co_await fetch(endpoint, std::move(path));
}

}  // namespace

net::Result<net::HostPort> probe_address(const std::string& listen) {
  if (listen.empty()) {
    return net::make_error(net::Errc::NotFound, "[metrics] listen is empty: no endpoint to ask");
  }
  auto hp = net::split_host_port(listen);
  if (!hp) return hp.error();
  const auto ip = net::parse_ip(hp->host);
  if (!ip) return net::make_error(net::Errc::BadInput, "'" + listen + "': not an IP address");
  if (hp->port == "0") {
    return net::make_error(net::Errc::BadInput,
                           "[metrics] listen '" + listen + "' has port 0: no known port to ask");
  }
  if (ip->is_unspecified()) hp->host = ip->is_v6() ? "::1" : "127.0.0.1";
  return hp;
}

net::Result<HealthReply> parse_health_reply(const std::string& response) {
  // "HTTP/1.1 200 OK\r\n": the version, then a three-digit status.
  const auto eol = response.find("\r\n");
  const std::string status_line = response.substr(0, eol);
  const auto sp = status_line.find(' ');
  if (!status_line.starts_with("HTTP/1.") || sp == std::string::npos ||
      status_line.size() < sp + 4) {
    return net::make_error(net::Errc::Protocol,
                           "not an HTTP answer: '" + status_line.substr(0, 40) + "'");
  }
  HealthReply reply;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    const char c = status_line[i];
    if (c < '0' || c > '9') {
      return net::make_error(net::Errc::Protocol, "bad HTTP status line: '" + status_line + "'");
    }
    reply.status = reply.status * 10 + (c - '0');
  }
  if (const auto body = response.find("\r\n\r\n"); body != std::string::npos) {
    reply.text = response.substr(body + 4);
    reply.text = reply.text.substr(0, reply.text.find_first_of("\r\n"));
  }
  return reply;
}

int cmd_health(const std::string& config_path, bool ready) {
  const char* const path = ready ? "/readyz" : "/healthz";
  std::shared_ptr<const proxy::Config> config;
  try {
    config = proxy::load_config(config_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd health: %s\n", e.what());
    return 1;
  }
  const auto address = probe_address(config->metrics.listen);
  if (!address) {
    std::fprintf(stderr, "stampd health: %s: %s\n", config_path.c_str(),
                 address.error().detail.c_str());
    return 1;
  }
  const std::string where = display(*address) + path;
  const tcp::endpoint endpoint(*net::parse_ip(address->host),
                               static_cast<unsigned short>(std::stoul(address->port)));

  asio::io_context io;
  std::optional<net::Result<std::string>> response;
  asio::co_spawn(io, fetch_into(endpoint, path, &response), [](const std::exception_ptr&) {});
  io.run();
  if (!response || !*response) {
    std::fprintf(stderr, "stampd health: %s: %s\n", where.c_str(),
                 response ? response->error().detail.c_str() : "no answer");
    return 1;
  }
  const auto reply = parse_health_reply(**response);
  if (!reply) {
    std::fprintf(stderr, "stampd health: %s: %s\n", where.c_str(), reply.error().detail.c_str());
    return 1;
  }
  if (reply->status != 200) {
    std::fprintf(stderr, "stampd health: %s: %d %s\n", where.c_str(), reply->status,
                 reply->text.c_str());
    return 1;
  }
  std::printf("stampd health: %s: %d %s\n", where.c_str(), reply->status, reply->text.c_str());
  return 0;
}

}  // namespace stampd::cmd
