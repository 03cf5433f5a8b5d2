// factory.h: makes the Upstream of each session from one config: an SMTP
// client tried over [upstream] servers in order, or a Maildir writer.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "proxy/config.h"
#include "proxy/upstream/upstream.h"

namespace stampd::proxy {

// UpstreamFactory makes one Upstream per connection from one config; it
// holds what they share (the TLS context with its loaded CA store).
class UpstreamFactory {
 public:
  // The constructor throws ConfigError when the TLS setup cannot be loaded.
  explicit UpstreamFactory(std::shared_ptr<const Config> config);
  ~UpstreamFactory();
  std::unique_ptr<Upstream> make(boost::asio::any_io_executor executor) const;

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
};

}  // namespace stampd::proxy
