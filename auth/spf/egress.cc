#include "auth/spf/egress.h"

#include <map>

#include "auth/mail_address.h"
#include "auth/spf/evaluator.h"

namespace stampd::auth {

namespace {

// FailureMemo answers a query that already failed (timeout, SERVFAIL) during
// one egress check with the same failure at once. Every address asks the
// same names; a DNS server that never answers must cost the timeout once,
// not once per egress address. Answers are left to the resolver's cache.
class FailureMemo final : public net::Resolver {
 public:
  explicit FailureMemo(net::Resolver& inner) : inner_(inner) {}

  boost::asio::awaitable<net::DnsAnswer> query(std::string name, net::RrType type) override {
    std::string key = ascii_lower(name) + "/" + std::to_string(static_cast<int>(type));
    if (const auto it = failed_.find(key); it != failed_.end()) co_return it->second;
    net::DnsAnswer answer = co_await inner_.query(std::move(name), type);
    if (answer.status == net::DnsStatus::Timeout || answer.status == net::DnsStatus::ServFail) {
      failed_.emplace(std::move(key), answer);
    }
    co_return answer;
  }

 private:
  net::Resolver& inner_;
  std::map<std::string, net::DnsAnswer> failed_;
};

}  // namespace

const SpfResult* SpfEgressReport::worst_result() const {
  for (const auto& e : entries) {
    if (e.ip == worst_ip && e.result.verdict == worst) return &e.result;
  }
  return nullptr;
}

std::vector<boost::asio::ip::address> SpfEgressReport::unauthorized() const {
  std::vector<boost::asio::ip::address> out;
  for (const auto& e : entries) {
    if (e.result.verdict != SpfVerdict::Pass) out.push_back(e.ip);
  }
  return out;
}

SpfEgressReport worst_of(std::vector<SpfEgressEntry> entries) {
  SpfEgressReport report;
  report.entries = std::move(entries);
  bool first = true;
  for (const auto& e : report.entries) {
    // Strictly worse only: on a tie the first address in the list is named.
    if (first || is_worse(e.result.verdict, report.worst)) {
      report.worst = e.result.verdict;
      report.worst_ip = e.ip;
      first = false;
    }
  }
  return report;
}

boost::asio::awaitable<SpfEgressReport> check_egress(net::Resolver& resolver,
                                                     std::vector<boost::asio::ip::address> ips,
                                                     std::string mail_from, std::string helo,
                                                     SpfOptions options) {
  std::vector<SpfEgressEntry> entries;
  entries.reserve(ips.size());
  FailureMemo memo(resolver);
  for (const auto& ip : ips) {
    SpfResult r = co_await check_mail_from(memo, ip, mail_from, helo, options);
    entries.push_back({ip, std::move(r)});
  }
  co_return worst_of(std::move(entries));
}

}  // namespace stampd::auth
