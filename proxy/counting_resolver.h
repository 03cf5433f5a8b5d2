// counting_resolver.h: a net::Resolver that passes queries on and counts
// them for Prometheus (queries by type and outcome, latency). net/ cannot
// see metrics, so the proxy wraps its resolver in this.
#pragma once

#include <prometheus/counter.h>

#include <map>
#include <memory>
#include <utility>

#include "net/resolver.h"
#include "obs/metrics.h"

namespace stampd::proxy {

class CountingResolver final : public net::Resolver {
 public:
  CountingResolver(std::shared_ptr<net::Resolver> inner, std::shared_ptr<obs::Metrics> metrics);
  boost::asio::awaitable<net::DnsAnswer> query(std::string name, net::RrType type) override;

 private:
  std::shared_ptr<net::Resolver> inner_;
  std::shared_ptr<obs::Metrics> metrics_;
  // Every (type, status) series, resolved once.
  std::map<std::pair<net::RrType, net::DnsStatus>, prometheus::Counter*> queries_;
};

}  // namespace stampd::proxy
