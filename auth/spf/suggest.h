// spf_suggest.h: proposes the SPF record a domain should publish so that
// given addresses pass: a new "v=spf1 ip4:... ip6:... ~all", or the current
// record with the missing ip4:/ip6: terms added. Pure text; no DNS.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/spf/egress.h"

namespace stampd::auth {

// SpfSuggestion is a record to publish and what changed.
struct SpfSuggestion {
  std::string record;                    // the TXT record text to publish
  std::vector<std::string> added_terms;  // e.g. "ip4:192.0.2.1", in record order
  std::string note;                      // a sentence for the admin
};

// spf_ip_term returns "ip4:A" or "ip6:A" for one address (an IPv4-mapped
// IPv6 address gives ip4, RFC 7208 §5).
std::string spf_ip_term(const boost::asio::ip::address& ip);

// suggest_spf_record adds an ip4:/ip6: term for each of `missing` to
// `current` (the published record; nullopt when there is none). The terms go
// first, right after "v=spf1" (after any leading ip4:/ip6: terms), so they
// match before any other term, cost no DNS lookups and stay ahead of the
// lookup limit. Without a usable record it proposes
// "v=spf1 <terms> ~all". Addresses already present as a leading "+" term are
// not added twice.
SpfSuggestion suggest_spf_record(std::optional<std::string_view> current,
                                 const std::vector<boost::asio::ip::address>& missing);

// suggest_spf_record builds the suggestion for an egress report: the record
// the checked domain publishes, and the addresses that did not pass.
SpfSuggestion suggest_spf_record(const SpfEgressReport& report);

// txt_zone_data formats a record as zone-file TXT data: quoted strings of at
// most 255 octets each (RFC 1035 §3.3.14; receivers join them, RFC 7208 §3.3).
std::string txt_zone_data(std::string_view record);

}  // namespace stampd::auth
