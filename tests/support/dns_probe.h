// dns_probe.h: a minimal DNS-over-UDP client for tests and benchmarks: build
// a query, send it to a loopback port, read the answer's RCODE. Blocking,
// test-only; the product resolves through net/unbound_resolver.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

namespace stampd::test {

// make_dns_query returns a wire-format query (RFC 1035 §4.1) with RD set.
std::vector<std::uint8_t> make_dns_query(std::uint16_t id, std::string_view name,
                                         std::uint16_t type);

// udp_dns_rcode sends one query to 127.0.0.1:port and returns the answer's
// RCODE, or -1 when nothing matching arrives within timeout.
int udp_dns_rcode(int port, std::string_view name, std::uint16_t type,
                  std::chrono::milliseconds timeout);

// UdpQueryLoop keeps `window` queries in flight against 127.0.0.1:port,
// cycling through names, and counts answers: the raw query rate of a server.
struct UdpQueryLoopStats {
  std::uint64_t answered = 0;
  std::uint64_t lost = 0;  // not answered within the per-query timeout
};
UdpQueryLoopStats udp_query_loop(
    int port, const std::vector<std::pair<std::string_view, std::uint16_t>>& names,
    std::uint64_t count, int window);

}  // namespace stampd::test
