// proxy_protocol.h: the PROXY protocol header (HAProxy's spec, versions 1 and
// 2) that a TCP load balancer puts in front of a connection to pass on the
// real client address. Sans-IO: fed the buffered bytes, says how many form
// the header. Never trust it from peers that are not the balancer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/cidr.h"

namespace stampd::net {

struct ProxyHeader {
  std::size_t length = 0;           // bytes the header took
  std::optional<IpAddress> source;  // nullopt: LOCAL / UNKNOWN (a health check)
  std::uint16_t source_port = 0;
};

// ProxyParse is the outcome of looking at the first bytes of a connection.
struct ProxyParse {
  enum class Status { NeedMore, Done, Invalid } status = Status::NeedMore;
  ProxyHeader header;
  std::string error;  // for Invalid
};

// parse_proxy_header looks at data (the connection's first bytes so far).
ProxyParse parse_proxy_header(std::string_view data);

// proxy_header_wanted is how many more bytes may be read after data (the
// first bytes so far, parse_proxy_header saying NeedMore) without reading
// past the header's end: the bytes after it may be a TLS handshake, which
// must reach the TLS engine untouched. At least 1.
std::size_t proxy_header_wanted(std::string_view data);

// kMaxProxyHeader bounds what we read before giving up (v2: 16 + 216 for IPv6 + TLVs).
inline constexpr std::size_t kMaxProxyHeader = 536;

}  // namespace stampd::net
