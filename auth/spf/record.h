// spf_record.h: an SPF record (RFC 7208 §4.5, §4.6, §5, §6) parsed into
// mechanisms and modifiers, with every syntax rule checked up front so a
// broken record is a permerror wherever the error sits. Pure; no DNS.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/spf/verdict.h"
#include "net/result.h"

namespace stampd::auth {

// SpfQualifier is the prefix of a mechanism (RFC 7208 §4.6.2); "+" if none.
enum class SpfQualifier { Pass, Fail, SoftFail, Neutral };

// verdict_of returns the result a matching mechanism with qualifier q gives.
SpfVerdict verdict_of(SpfQualifier q) noexcept;

enum class SpfMechanismKind { All, Include, A, Mx, Ptr, Ip4, Ip6, Exists };

// to_string returns the mechanism name as RFC 7208 spells it ("all", "ip4"...).
const char* to_string(SpfMechanismKind kind) noexcept;

// SpfMechanism is one parsed mechanism term (RFC 7208 §5).
struct SpfMechanism {
  SpfQualifier qualifier = SpfQualifier::Pass;
  SpfMechanismKind kind = SpfMechanismKind::All;
  std::string domain_spec;           // include, exists, a, mx, ptr; empty: the current domain
  boost::asio::ip::address network;  // ip4, ip6
  int cidr4 = 32;                    // ip4, a, mx (RFC 7208 §5.6 dual-cidr-length)
  int cidr6 = 128;                   // ip6, a, mx
  std::string text;                  // the term as written, for traces

  // queries_dns reports whether the term counts against the limit of 10
  // DNS-querying terms (RFC 7208 §4.6.4).
  bool queries_dns() const noexcept;
};

// SpfModifier is a name=value term that stampd does not act on (RFC 7208
// §6: unknown modifiers MUST be ignored).
struct SpfModifier {
  std::string name;
  std::string value;
};

// SpfRecord is a whole record: mechanisms in order, then the modifiers.
struct SpfRecord {
  std::vector<SpfMechanism> mechanisms;
  std::optional<std::string> redirect;  // domain-spec of redirect= (RFC 7208 §6.1)
  std::optional<std::string> exp;       // domain-spec of exp= (RFC 7208 §6.2)
  std::vector<SpfModifier> unknown_modifiers;
  std::string text;  // the record as published

  // has_all reports whether an "all" mechanism is present, which makes any
  // redirect= unreachable (RFC 7208 §6.1).
  bool has_all() const noexcept;
};

// is_spf_version reports whether a TXT string is an SPF version 1 record:
// "v=spf1" (any case) followed by a space or the end (RFC 7208 §4.5).
bool is_spf_version(std::string_view txt) noexcept;

// parse_spf_record parses a record that passed is_spf_version. Any syntax
// error anywhere (RFC 7208 §4.6: an unknown mechanism, a bad CIDR length, a
// bad macro, a duplicate redirect= or exp=, a non-ASCII byte) is an Error
// whose detail names the offending term; check_host() turns it into
// permerror.
net::Result<SpfRecord> parse_spf_record(std::string_view text);

// parse_ip4_network parses an ip4-network: dotted quad, no leading zeros
// (RFC 7208 §5.6 and the ABNF's qnum).
std::optional<boost::asio::ip::address_v4> parse_ip4_network(std::string_view s);

// parse_ip6_network parses an ip6-network (RFC 4291 §2.2 text forms).
std::optional<boost::asio::ip::address_v6> parse_ip6_network(std::string_view s);

// in_network reports whether ip lies in network/prefix_length; false when
// the address families differ.
bool in_network(const boost::asio::ip::address& ip, const boost::asio::ip::address& network,
                int prefix_length) noexcept;

}  // namespace stampd::auth
