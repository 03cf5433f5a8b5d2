// factory.h: makes the Upstream of each session from one config: an SMTP
// client tried over [upstream] servers in order, or a Maildir writer.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <vector>

#include "obs/metrics.h"
#include "proxy/config.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/upstream.h"

namespace stampd::proxy {

// UpstreamFactory makes one Upstream per connection from one config; it
// holds what they share (the TLS context with its loaded CA store).
class UpstreamFactory {
 public:
  // The constructor throws ConfigError when the TLS setup cannot be loaded.
  // Upstreams count the bytes they send in metrics. With the executors of
  // the I/O threads it keeps a pool of connections for each, sharing
  // [upstream] max_connections between them.
  UpstreamFactory(std::shared_ptr<const Config> config, std::shared_ptr<obs::Metrics> metrics,
                  const std::vector<boost::asio::any_io_executor>& io = {});
  ~UpstreamFactory();
  // make creates a connection of its own (the probe, the one-shot commands).
  std::unique_ptr<Upstream> make(boost::asio::any_io_executor executor) const;
  // pool is I/O thread `thread`'s pool, in the order of the executors given.
  UpstreamPool& pool(std::size_t thread) const { return *pools_.at(thread); }
  // retire closes the pools' kept connections (after a reload replaced us,
  // or at the end of a drain); the others are closed as they come back.
  void retire() const;
  // alive counts the pools' connections not yet closed (any thread).
  std::size_t alive() const;
  // servers is which [upstream] servers are failing, shared by the pools,
  // their connections and the probe's.
  ServerHealth& servers() const { return *servers_; }

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<ServerHealth> servers_;
  std::shared_ptr<obs::Metrics> metrics_;
  std::vector<std::shared_ptr<UpstreamPool>> pools_;
};

}  // namespace stampd::proxy
