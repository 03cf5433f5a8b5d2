#include "net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace stampd::net {
namespace {

using Status = ProxyParse::Status;

std::string v2(unsigned char command, unsigned char family, const std::string& block) {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += static_cast<char>(0x20 | command);
  h += static_cast<char>(family);
  h += static_cast<char>(block.size() >> 8);
  h += static_cast<char>(block.size() & 0xff);
  return h + block;
}

TEST(ProxyProtocol, V1Tcp4) {
  const std::string data = "PROXY TCP4 192.0.2.7 10.0.0.1 51234 25\r\nEHLO x\r\n";
  auto p = parse_proxy_header(data);
  ASSERT_EQ(p.status, Status::Done);
  EXPECT_EQ(p.header.length, data.find("EHLO"));
  ASSERT_TRUE(p.header.source);
  EXPECT_EQ(p.header.source->to_string(), "192.0.2.7");
  EXPECT_EQ(p.header.source_port, 51234);
}

TEST(ProxyProtocol, V1Tcp6AndUnknown) {
  auto p = parse_proxy_header("PROXY TCP6 2001:db8::5 2001:db8::1 4000 25\r\n");
  ASSERT_EQ(p.status, Status::Done);
  EXPECT_EQ(p.header.source->to_string(), "2001:db8::5");
  auto u = parse_proxy_header("PROXY UNKNOWN\r\n");
  ASSERT_EQ(u.status, Status::Done);
  EXPECT_FALSE(u.header.source);
}

TEST(ProxyProtocol, V1NeedsTheWholeLine) {
  const std::string data = "PROXY TCP4 192.0.2.7 10.0.0.1 51234 25\r\n";
  for (std::size_t n = 0; n < data.size(); ++n) {
    EXPECT_EQ(parse_proxy_header(data.substr(0, n)).status, Status::NeedMore) << n;
  }
}

TEST(ProxyProtocol, V1Invalid) {
  for (const char* bad :
       {"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n", "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
        "PROXY TCP4 192.0.2.7 10.0.0.1 99999 25\r\n", "PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
        "EHLO client\r\n", "GET / HTTP/1.0\r\n"}) {
    EXPECT_EQ(parse_proxy_header(bad).status, Status::Invalid) << bad;
  }
  EXPECT_EQ(parse_proxy_header("PROXY " + std::string(200, 'x')).status, Status::Invalid);
}

TEST(ProxyProtocol, V2Inet) {
  std::string block = {'\xc0', '\x00', '\x02', '\x09', '\x0a', '\x00',
                       '\x00', '\x01', '\x1f', '\x90', '\x00', '\x19'};
  const std::string h = v2(1, 0x11, block);
  auto p = parse_proxy_header(h + "EHLO");
  ASSERT_EQ(p.status, Status::Done);
  EXPECT_EQ(p.header.length, h.size());
  EXPECT_EQ(p.header.source->to_string(), "192.0.2.9");
  EXPECT_EQ(p.header.source_port, 8080);
  for (std::size_t n = 0; n < h.size(); ++n) {
    EXPECT_EQ(parse_proxy_header(h.substr(0, n)).status, Status::NeedMore) << n;
  }
}

TEST(ProxyProtocol, V2LocalAndBad) {
  auto local = parse_proxy_header(v2(0, 0x00, ""));
  ASSERT_EQ(local.status, Status::Done);
  EXPECT_FALSE(local.header.source);
  EXPECT_EQ(parse_proxy_header(v2(1, 0x11, "ab")).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header(v2(5, 0x11, std::string(12, '\0'))).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header(v2(1, 0x31, std::string(216, '\0'))).status, Status::Invalid);
}

// Reading what proxy_header_wanted allows, in any split, stops exactly at the
// header's end: the byte after it (a TLS ClientHello) is never taken.
TEST(ProxyProtocol, WantedNeverReadsPastTheHeader) {
  const std::string inet(
      "\xc0\x00\x02\x01"
      "\x7f\x00\x00\x01"
      "\x30\x39\x00\x19",
      12);
  for (const std::string& header : {std::string("PROXY TCP4 192.0.2.1 127.0.0.1 12345 25\r\n"),
                                    std::string("PROXY UNKNOWN\r\n"), v2(1, 0x11, inet)}) {
    const std::string wire = header + "\x16\x03\x01";  // a TLS record follows
    for (std::size_t chunk = 1; chunk <= 8; ++chunk) {
      std::string got;
      for (int guard = 0; guard < 1000; ++guard) {
        const auto parsed = parse_proxy_header(got);
        if (parsed.status != ProxyParse::Status::NeedMore) break;
        const std::size_t n = std::min({proxy_header_wanted(got), chunk, wire.size() - got.size()});
        ASSERT_GE(proxy_header_wanted(got), 1u);
        got += wire.substr(got.size(), n);
      }
      EXPECT_EQ(got, header) << "chunk " << chunk;
      EXPECT_EQ(parse_proxy_header(got).status, ProxyParse::Status::Done);
    }
  }
}

}  // namespace
}  // namespace stampd::net
