// spf_evaluator.h: check_host() of RFC 7208 over the abstract resolver,
// with the §4.6.4 processing limits, the explanation (§6.2) and a lookup
// trace. Never touches a socket: all DNS goes through net::Resolver.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <string>

#include "auth/spf/options.h"
#include "auth/spf/result.h"
#include "net/resolver.h"

namespace stampd::auth {

// check_host evaluates the SPF record of domain for a message from ip with
// the given <sender> (local-part@domain; "postmaster" is put in front of a
// bare "@domain", RFC 7208 §4.3) and HELO name (for %{h}). A domain that is
// not a valid multi-label name gives "none" without any query (§4.3).
// The resolver must outlive the returned awaitable.
boost::asio::awaitable<SpfResult> check_host(net::Resolver& resolver, boost::asio::ip::address ip,
                                             std::string domain, std::string sender,
                                             std::string helo, SpfOptions options = {});

// check_mail_from checks the MAIL FROM identity (RFC 7208 §2.4): the domain
// of mail_from (given without angle brackets), or for the null sender "" the
// HELO identity as "postmaster@" + helo.
boost::asio::awaitable<SpfResult> check_mail_from(net::Resolver& resolver,
                                                  boost::asio::ip::address ip,
                                                  std::string mail_from, std::string helo,
                                                  SpfOptions options = {});

// check_helo checks the HELO/EHLO identity (RFC 7208 §2.3) with <sender>
// "postmaster@" + helo. An address literal or a single-label name gives "none".
boost::asio::awaitable<SpfResult> check_helo(net::Resolver& resolver, boost::asio::ip::address ip,
                                             std::string helo, SpfOptions options = {});

}  // namespace stampd::auth
