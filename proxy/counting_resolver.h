// counting_resolver.h: a net::Resolver that passes queries on and counts
// them for Prometheus (queries by type and outcome, latency). net/ cannot
// see metrics, so the proxy wraps its resolver in this.
#pragma once

#include <memory>

#include "net/resolver.h"

namespace stampd::proxy {

class CountingResolver final : public net::Resolver {
 public:
  explicit CountingResolver(std::shared_ptr<net::Resolver> inner) : inner_(std::move(inner)) {}
  boost::asio::awaitable<net::DnsAnswer> query(std::string name, net::RrType type) override;

 private:
  std::shared_ptr<net::Resolver> inner_;
};

}  // namespace stampd::proxy
