// dns_name.h: domain-name checks and rewrites that SPF needs: RFC 1035
// length limits, the RFC 7208 §4.3 "is this a domain at all" test, §7.3
// truncation, and reverse-lookup names. Pure string work; no DNS.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstddef>
#include <string>
#include <string_view>

namespace stampd::auth {

// kMaxDomainLength is the longest domain name in dotted form (RFC 1035 §2.3.4
// allows 255 octets on the wire, which is 253 characters without the root dot).
inline constexpr std::size_t kMaxDomainLength = 253;
inline constexpr std::size_t kMaxLabelLength = 63;

// strip_trailing_dot returns name without one final '.', if present.
std::string_view strip_trailing_dot(std::string_view name) noexcept;

// is_queryable_name reports whether name (a trailing dot allowed) can be put
// in a DNS query: no empty label, no label over 63 octets, at most 253 octets.
bool is_queryable_name(std::string_view name) noexcept;

// is_dkim_name reports whether name may be a DKIM d= or s= as the signer
// writes it: letters, digits, '-', '_' and '.', not starting or ending in '.'.
bool is_dkim_name(std::string_view name) noexcept;

// is_spf_domain reports whether name may be the <domain> of check_host():
// queryable, at least two labels, not an address literal like "[192.0.2.1]",
// only printable ASCII and no spaces (RFC 7208 §4.3: otherwise "none").
bool is_spf_domain(std::string_view name) noexcept;

// truncate_domain_name strips one trailing dot and then removes labels from
// the left until the name fits in 253 characters (RFC 7208 §7.3, last para).
std::string truncate_domain_name(std::string_view name);

// is_same_or_subdomain reports whether name equals domain or ends in
// "." + domain, ignoring ASCII case and one trailing dot on either.
bool is_same_or_subdomain(std::string_view name, std::string_view domain) noexcept;

// equals_ignore_case compares two strings ignoring ASCII case.
bool equals_ignore_case(std::string_view a, std::string_view b) noexcept;

// reverse_name returns the PTR owner of ip: "4.3.2.1.in-addr.arpa" or the 32
// nibbles under "ip6.arpa" (RFC 1035 §3.5, RFC 3596 §2.5).
std::string reverse_name(const boost::asio::ip::address& ip);

// normalize_client_ip turns an IPv4-mapped IPv6 address into the IPv4
// address, which SPF must use instead (RFC 7208 §5, last paragraph).
boost::asio::ip::address normalize_client_ip(const boost::asio::ip::address& ip);

}  // namespace stampd::auth
