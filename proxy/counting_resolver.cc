#include "proxy/counting_resolver.h"

#include <chrono>

#include "obs/metrics.h"

namespace stampd::proxy {

boost::asio::awaitable<net::DnsAnswer> CountingResolver::query(std::string name, net::RrType type) {
  const auto start = std::chrono::steady_clock::now();
  net::DnsAnswer answer = co_await inner_->query(std::move(name), type);
  auto& m = obs::metrics();
  m.dns_query_duration.Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  m.dns_queries.Add({{"type", net::to_string(type)}, {"status", net::to_string(answer.status)}})
      .Increment();
  co_return answer;
}

}  // namespace stampd::proxy
