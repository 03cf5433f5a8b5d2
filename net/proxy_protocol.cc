#include "net/proxy_protocol.h"

#include <array>
#include <charconv>
#include <cstring>

namespace stampd::net {

namespace {

constexpr std::string_view kV2Signature("\r\n\r\n\0\r\nQUIT\n", 12);

ProxyParse invalid(std::string why) {
  ProxyParse p;
  p.status = ProxyParse::Status::Invalid;
  p.error = std::move(why);
  return p;
}

// parse_v1 reads "PROXY TCP4 src dst sport dport\r\n" (at most 107 bytes).
ProxyParse parse_v1(std::string_view data) {
  const auto end = data.find("\r\n");
  if (end == std::string_view::npos) {
    if (data.size() >= 107) return invalid("PROXY v1 line too long");
    return {};
  }
  if (end > 105) return invalid("PROXY v1 line too long");
  std::string_view line = data.substr(0, end);
  std::array<std::string_view, 6> parts{};
  std::size_t n = 0;
  while (!line.empty() && n < parts.size()) {
    const auto sp = line.find(' ');
    parts[n++] = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  }
  ProxyParse p;
  p.status = ProxyParse::Status::Done;
  p.header.length = end + 2;
  if (n >= 2 && parts[1] == "UNKNOWN") return p;
  if (n != 6 || !line.empty() || (parts[1] != "TCP4" && parts[1] != "TCP6")) {
    return invalid("malformed PROXY v1 line");
  }
  auto source = parse_ip(parts[2]);
  if (!source || source->is_v4() != (parts[1] == "TCP4"))
    return invalid("bad PROXY v1 source address");
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(parts[4].data(), parts[4].data() + parts[4].size(), port);
  if (ec != std::errc() || ptr != parts[4].data() + parts[4].size() || port > 65535) {
    return invalid("bad PROXY v1 source port");
  }
  p.header.source = *source;
  p.header.source_port = static_cast<std::uint16_t>(port);
  return p;
}

ProxyParse parse_v2(std::string_view data) {
  if (data.size() < 16) return {};
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(data[i]); };
  if ((b(12) >> 4) != 2) return invalid("unsupported PROXY protocol version");
  const unsigned command = b(12) & 0x0f;
  const unsigned family = b(13);
  const std::size_t length = (static_cast<std::size_t>(b(14)) << 8) | b(15);
  if (16 + length > kMaxProxyHeader) return invalid("PROXY v2 header too long");
  if (data.size() < 16 + length) return {};
  ProxyParse p;
  p.status = ProxyParse::Status::Done;
  p.header.length = 16 + length;
  if (command == 0) return p;  // LOCAL: the balancer's own health check
  if (command != 1) return invalid("unknown PROXY v2 command");
  const unsigned char* addr = reinterpret_cast<const unsigned char*>(data.data()) + 16;
  if (family == 0x11) {  // TCP over IPv4
    if (length < 12) return invalid("short PROXY v2 IPv4 block");
    boost::asio::ip::address_v4::bytes_type bytes;
    std::memcpy(bytes.data(), addr, 4);
    p.header.source = boost::asio::ip::address_v4(bytes);
    p.header.source_port = static_cast<std::uint16_t>((addr[8] << 8) | addr[9]);
  } else if (family == 0x21) {  // TCP over IPv6
    if (length < 36) return invalid("short PROXY v2 IPv6 block");
    boost::asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), addr, 16);
    p.header.source = boost::asio::ip::address_v6(bytes);
    p.header.source_port = static_cast<std::uint16_t>((addr[32] << 8) | addr[33]);
  } else if (family != 0x00) {
    return invalid("unsupported PROXY v2 address family");
  }
  return p;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view data) {
  const std::size_t sig = std::min(data.size(), kV2Signature.size());
  if (data.substr(0, sig) == kV2Signature.substr(0, sig)) {
    return sig < kV2Signature.size() ? ProxyParse{} : parse_v2(data);
  }
  constexpr std::string_view kV1 = "PROXY ";
  const std::size_t v1 = std::min(data.size(), kV1.size());
  if (data.substr(0, v1) == kV1.substr(0, v1)) {
    return v1 < kV1.size() ? ProxyParse{} : parse_v1(data);
  }
  return invalid("connection does not start with a PROXY protocol header");
}

std::size_t proxy_header_wanted(std::string_view data) {
  // The shortest header is v1's "PROXY UNKNOWN\r\n" (15 bytes); v2's is 16.
  constexpr std::size_t kShortest = 15;
  if (data.size() < kShortest) return kShortest - data.size();
  if (data.front() == kV2Signature.front()) {
    if (data.size() < 16) return 16 - data.size();
    const std::size_t length =
        (static_cast<std::size_t>(static_cast<unsigned char>(data[14])) << 8) |
        static_cast<unsigned char>(data[15]);
    return 16 + length > data.size() ? 16 + length - data.size() : 1;
  }
  // v1 ends at CRLF: two more bytes at least, or one after a CR.
  return data.back() == '\r' ? 1 : 2;
}

}  // namespace stampd::net
