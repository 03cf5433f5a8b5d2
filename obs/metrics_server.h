// metrics_server.h: the HTTP endpoint for Prometheus and probes:
// GET /metrics, /healthz, /readyz. A deliberately small HTTP/1.1 server on the
// same event loop: one request per connection, bounded request size and time.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>

namespace stampd::obs {

class MetricsServer {
 public:
  // MetricsServer binds listen ("host:port"); throws std::runtime_error on failure.
  MetricsServer(boost::asio::io_context& io, const std::string& listen,
                const std::string& config_path);
  void start();
  void stop();
  std::string local_endpoint() const;

 private:
  boost::asio::awaitable<void> accept_loop();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

// http_response answers one request line ("GET /metrics HTTP/1.1"); pure but
// for reading the metrics and health state.
std::string http_response(const std::string& request_line);

}  // namespace stampd::obs
