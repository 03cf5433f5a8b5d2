// Decoding of record data and query-name escaping (net/dns_wire.h).
#include <gtest/gtest.h>

#include <vector>

#include "net/dns_wire.h"

namespace stampd::net {
namespace {

std::span<const std::uint8_t> bytes(const std::vector<std::uint8_t>& v) {
  return {v.data(), v.size()};
}

TEST(DnsWire, TxtStringsOfOneRecordAreJoined) {
  DnsAnswer a;
  const std::vector<std::uint8_t> rdata = {3, 'v', '=', 's', 4, 'p', 'f', '1', ' ', 0};
  ASSERT_TRUE(append_rdata(a, RrType::Txt, bytes(rdata)).ok());
  EXPECT_EQ(a.txt, std::vector<std::string>{"v=spf1 "});
  const std::vector<std::uint8_t> truncated = {5, 'a', 'b'};
  EXPECT_FALSE(append_rdata(a, RrType::Txt, bytes(truncated)).ok());
}

TEST(DnsWire, Addresses) {
  DnsAnswer a;
  ASSERT_TRUE(append_rdata(a, RrType::A, bytes({192, 0, 2, 1})).ok());
  std::vector<std::uint8_t> six(16, 0);
  six[0] = 0x20;
  six[1] = 0x01;
  six[2] = 0x0d;
  six[3] = 0xb8;
  six[15] = 1;
  ASSERT_TRUE(append_rdata(a, RrType::Aaaa, bytes(six)).ok());
  ASSERT_EQ(a.addresses.size(), 2u);
  EXPECT_EQ(a.addresses[0].to_string(), "192.0.2.1");
  EXPECT_EQ(a.addresses[1].to_string(), "2001:db8::1");
  EXPECT_FALSE(append_rdata(a, RrType::A, bytes({1, 2, 3})).ok());
}

TEST(DnsWire, MxAndPtrNames) {
  DnsAnswer a;
  const std::vector<std::uint8_t> mx = {0,   10,  4,   'm', 'a', 'i', 'l', 7,
                                        'e', 'x', 'a', 'm', 'p', 'l', 'e', 0};
  ASSERT_TRUE(append_rdata(a, RrType::Mx, bytes(mx)).ok());
  ASSERT_EQ(a.mx.size(), 1u);
  EXPECT_EQ(a.mx[0].preference, 10);
  EXPECT_EQ(a.mx[0].exchange, "mail.example");
  const std::vector<std::uint8_t> null_mx = {0, 0, 0};  // RFC 7505: exchange "."
  ASSERT_TRUE(append_rdata(a, RrType::Mx, bytes(null_mx)).ok());
  EXPECT_EQ(a.mx[1].exchange, "");
  const std::vector<std::uint8_t> ptr = {1, 'x', 0};
  ASSERT_TRUE(append_rdata(a, RrType::Ptr, bytes(ptr)).ok());
  EXPECT_EQ(a.names, std::vector<std::string>{"x"});
  const std::vector<std::uint8_t> compressed = {0xc0, 12};
  EXPECT_FALSE(append_rdata(a, RrType::Ptr, bytes(compressed)).ok());
}

TEST(DnsWire, PresentationNameEscapesOddOctets) {
  EXPECT_EQ(presentation_name("mail.example.com"), "mail.example.com");
  EXPECT_EQ(presentation_name("_spf.example.com."), "_spf.example.com.");
  EXPECT_EQ(presentation_name("a b%c;d\\e"), "a\\032b\\037c\\059d\\092e");
}

}  // namespace
}  // namespace stampd::net
