// spf_macro.h: RFC 7208 §7 macro strings: the syntax check (done when a
// record is parsed) and the expansion (done when a term is evaluated).
// Pure: the caller supplies every value, including %{p}, which needs DNS.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/result.h"

namespace stampd::auth {

// MacroScope says where a macro string appears: in a domain-spec (and other
// record terms), or in an explanation TXT record, the only place where the
// letters c, r and t and literal spaces are allowed (RFC 7208 §7.1, §6.2).
enum class MacroScope { DomainSpec, Explanation };

// SpfMacroValues holds what each macro letter expands to (RFC 7208 §7.3).
struct SpfMacroValues {
  std::string sender;                        // s: <sender>, local-part@domain
  std::string local_part;                    // l
  std::string sender_domain;                 // o
  std::string domain;                        // d: the current <domain>
  boost::asio::ip::address ip;               // i, c, v (already un-mapped)
  std::string validated_domain = "unknown";  // p (RFC 7208 §7.3 "p")
  std::string helo;                          // h
  std::string receiver = "unknown";          // r (explanations only)
  std::int64_t timestamp = 0;                // t (explanations only)
};

// check_macro_string validates s against the macro-string grammar (RFC 7208
// §7.1) for scope; the error detail names the offending part.
net::Status check_macro_string(std::string_view s, MacroScope scope);

// ends_with_macro_expand reports whether the last token of a valid macro
// string is a macro-expand ("%{..}", "%%", "%_" or "%-"), which may end a
// domain-spec in place of a top label (RFC 7208 §7.1 domain-end).
bool ends_with_macro_expand(std::string_view s);

// uses_macro_letter reports whether s contains a %{x} macro for letter x
// (either case), so a caller can skip costly lookups such as %{p}.
bool uses_macro_letter(std::string_view s, char letter);

// expand_macro_string expands s (RFC 7208 §7.3: transformers, delimiters,
// URL-escaping for upper-case letters, %% %_ %-).
net::Result<std::string> expand_macro_string(std::string_view s, const SpfMacroValues& values,
                                             MacroScope scope);

// ip_macro_value returns %{i}: dotted decimal for IPv4; for IPv6 the 32
// nibbles separated by dots, upper-case hex as in the RFC 7208 test suite
// (RFC 7208 §7.3 leaves the case open; DNS compares names case-insensitively).
std::string ip_macro_value(const boost::asio::ip::address& ip);

}  // namespace stampd::auth
