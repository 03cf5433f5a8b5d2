// cidr.h: IP networks ("192.0.2.0/24", "2001:db8::/32") for trusted_networks
// and SPF ip4:/ip6:. IPv4-mapped IPv6 addresses match IPv4 networks.
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "net/result.h"

namespace stampd::net {

using IpAddress = boost::asio::ip::address;

// parse_ip parses an IPv4 or IPv6 literal (no brackets, no zone id).
std::optional<IpAddress> parse_ip(std::string_view text);

// unmap turns ::ffff:a.b.c.d into a.b.c.d and returns other addresses as they are.
IpAddress unmap(const IpAddress& address);

// Cidr is one network: an address and a prefix length.
class Cidr {
 public:
  // parse accepts "addr" (a host) or "addr/len"; bits below the prefix must be zero.
  static Result<Cidr> parse(std::string_view text);
  static Cidr host(const IpAddress& address);
  Cidr(const IpAddress& network, unsigned prefix) : network_(network), prefix_(prefix) {}

  // contains tells whether address lies in this network.
  bool contains(const IpAddress& address) const;
  std::string to_string() const;

 private:
  IpAddress network_;
  unsigned prefix_ = 0;
};

// prefix_match compares the first prefix bits of two byte strings of equal length.
bool prefix_match(const unsigned char* a, const unsigned char* b, unsigned prefix);

}  // namespace stampd::net
