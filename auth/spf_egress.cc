#include "auth/spf_egress.h"

#include "auth/spf_evaluator.h"

namespace stampd::auth {

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
  for (const auto& ip : ips) {
    SpfResult r = co_await check_mail_from(resolver, ip, mail_from, helo, options);
    entries.push_back({ip, std::move(r)});
  }
  co_return worst_of(std::move(entries));
}

}  // namespace stampd::auth
