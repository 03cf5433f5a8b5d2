// factory.h: makes the Upstream of each session from one config: an SMTP
// client tried over [upstream] servers in order, or a Maildir writer.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "obs/metrics.h"
#include "proxy/config.h"
#include "proxy/upstream/upstream.h"

namespace stampd::proxy {

// UpstreamFactory makes one Upstream per connection from one config; it
// holds what they share (the TLS context with its loaded CA store).
class UpstreamFactory {
 public:
  // The constructor throws ConfigError when the TLS setup cannot be loaded.
  // Upstreams count the bytes they send in metrics, which must outlive them.
  UpstreamFactory(std::shared_ptr<const Config> config, std::shared_ptr<obs::Metrics> metrics);
  ~UpstreamFactory();
  std::unique_ptr<Upstream> make(boost::asio::any_io_executor executor) const;

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<obs::Metrics> metrics_;
};

}  // namespace stampd::proxy
