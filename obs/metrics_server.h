// metrics_server.h: the HTTP endpoint for Prometheus and probes: GET or HEAD
// /metrics, /healthz, /readyz, with Boost.Beast on the process's event loop.
// It reads request headers only (no body is accepted), each within a deadline,
// and bounds its connections; it knows nothing of SMTP.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace stampd::obs {

class Health;
class Metrics;

// HttpLimits bounds what one client of the MetricsServer can hold.
struct HttpLimits {
  // max_header_bytes caps a request's line and header fields (431 beyond).
  std::size_t max_header_bytes = 8 * 1024;
  // request_timeout runs from waiting for a request (the first one, or the
  // next on a kept-alive connection) to its last header byte; a client idle
  // or slow for that long is cut (slowloris).
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};
  // write_timeout bounds the writing of one response to a client that does
  // not read.
  std::chrono::milliseconds write_timeout{std::chrono::seconds(10)};
  // max_connections caps the connections open at once; one more is closed
  // as soon as it is accepted.
  std::size_t max_connections = 32;
};

// MetricsServer serves what metrics and health say; both must outlive the
// loop's handlers (the daemon's singletons do).
class MetricsServer {
 public:
  // MetricsServer binds listen ("host:port"); throws std::runtime_error on failure.
  MetricsServer(boost::asio::io_context& io, const std::string& listen,
                const std::string& config_path, Metrics& metrics, Health& health,
                HttpLimits limits = {});
  // start accepts connections on io.
  void start();
  // stop closes the listener; open connections end after their current
  // request, or at their deadline when idle.
  void stop();
  // local_endpoint returns the bound "host:port" ("[::1]:9464" for IPv6).
  std::string local_endpoint() const;

 private:
  // Shared is what the connections share with the server; it may outlive it.
  struct Shared;

  boost::asio::awaitable<void> accept_loop();
  // serve answers the requests of one connection, in turn.
  static boost::asio::awaitable<void> serve(std::shared_ptr<Shared> shared,
                                            boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace stampd::obs
