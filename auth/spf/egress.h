// spf_egress.h: checks one sender against every address a deployment sends
// from (the "egress IPs": the addresses our upstream relays from) and
// reports the worst verdict and the address that gave it, so an admin
// learns that SPF does not authorize them before receivers do.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <string>
#include <vector>

#include "auth/spf/options.h"
#include "auth/spf/result.h"
#include "net/resolver.h"

namespace stampd::auth {

// SpfEgressEntry is the result for one egress address.
struct SpfEgressEntry {
  boost::asio::ip::address ip;
  SpfResult result;
};

// SpfEgressReport is the outcome over the whole set.
struct SpfEgressReport {
  // worst is the worst verdict by spf_severity (permerror, fail, temperror,
  // softfail, neutral, none, pass; see spf_verdict.h for why); None when the
  // set is empty.
  SpfVerdict worst = SpfVerdict::None;
  boost::asio::ip::address worst_ip;    // the first address that gave `worst`
  std::vector<SpfEgressEntry> entries;  // one per address, in the order given

  // worst_result returns the full result for worst_ip; nullptr if empty.
  const SpfResult* worst_result() const;
  // unauthorized returns the addresses whose verdict is not pass.
  std::vector<boost::asio::ip::address> unauthorized() const;
};

// check_egress runs check_mail_from() for mail_from and helo from each of
// ips in turn (later ones are answered from the resolver's cache; a query
// that timed out or failed is not asked again within the check) and ranks
// the verdicts. An empty mail_from checks postmaster@helo (RFC 7208 §2.4).
boost::asio::awaitable<SpfEgressReport> check_egress(net::Resolver& resolver,
                                                     std::vector<boost::asio::ip::address> ips,
                                                     std::string mail_from, std::string helo,
                                                     SpfOptions options = {});

// worst_of ranks already computed entries the same way.
SpfEgressReport worst_of(std::vector<SpfEgressEntry> entries);

}  // namespace stampd::auth
