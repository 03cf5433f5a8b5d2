#include "proxy/counting_resolver.h"

#include <chrono>

namespace stampd::proxy {

CountingResolver::CountingResolver(std::shared_ptr<net::Resolver> inner,
                                   std::shared_ptr<obs::Metrics> metrics)
    : inner_(std::move(inner)), metrics_(std::move(metrics)) {
  using net::DnsStatus;
  using net::RrType;
  for (RrType type :
       {RrType::A, RrType::Aaaa, RrType::Txt, RrType::Mx, RrType::Ptr, RrType::Cname}) {
    for (DnsStatus status : {DnsStatus::Ok, DnsStatus::NxDomain, DnsStatus::NoData,
                             DnsStatus::ServFail, DnsStatus::Timeout}) {
      queries_[{type, status}] = &metrics_->dns_queries.Add(
          {{"type", net::to_string(type)}, {"status", net::to_string(status)}});
    }
  }
}

boost::asio::awaitable<net::DnsAnswer> CountingResolver::query(std::string name, net::RrType type) {
  const auto start = std::chrono::steady_clock::now();
  net::DnsAnswer answer = co_await inner_->query(std::move(name), type);
  metrics_->dns_query_duration.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  const auto it = queries_.find({type, answer.status});
  if (it != queries_.end()) it->second->Increment();
  co_return answer;
}

}  // namespace stampd::proxy
