#include "net/cidr.h"

#include <gtest/gtest.h>

#include "net/host_port.h"

namespace stampd::net {
namespace {

TEST(Cidr, ContainsV4AndV6) {
  auto v4 = Cidr::parse("192.0.2.0/24");
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->contains(*parse_ip("192.0.2.200")));
  EXPECT_FALSE(v4->contains(*parse_ip("192.0.3.1")));
  EXPECT_FALSE(v4->contains(*parse_ip("2001:db8::1")));
  auto v6 = Cidr::parse("2001:db8::/32");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->contains(*parse_ip("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->contains(*parse_ip("2001:db9::1")));
}

TEST(Cidr, MappedAddressesMatchV4Networks) {
  auto lo = Cidr::parse("127.0.0.0/8");
  ASSERT_TRUE(lo.ok());
  EXPECT_TRUE(lo->contains(*parse_ip("::ffff:127.0.0.1")));
}

TEST(Cidr, OddPrefixes) {
  EXPECT_TRUE(Cidr::parse("11.0.0.0/7").error().detail.find("host bits") != std::string::npos);
  EXPECT_TRUE(Cidr::parse("10.0.0.0/7").ok());
  auto c = Cidr::parse("10.0.0.0/9");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->contains(*parse_ip("10.127.0.1")));
  EXPECT_FALSE(c->contains(*parse_ip("10.128.0.1")));
  EXPECT_TRUE(Cidr::parse("0.0.0.0/0")->contains(*parse_ip("8.8.8.8")));
  EXPECT_TRUE(Cidr::parse("1.2.3.4")->contains(*parse_ip("1.2.3.4")));
}

TEST(Cidr, BadInput) {
  for (const char* bad : {"", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "example.com", "::1/129",
                          "10.0.0.1/8", "fe80::1%eth0"}) {
    EXPECT_FALSE(Cidr::parse(bad).ok()) << bad;
  }
}

TEST(HostPort, Splits) {
  auto a = split_host_port("127.0.0.1:25");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "25");
  auto b = split_host_port("[::1]:10027");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  auto c = split_host_port("mx.example.com", "25");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port, "25");
  EXPECT_FALSE(split_host_port("mx.example.com").ok());
  EXPECT_FALSE(split_host_port("::1:25").ok());
  EXPECT_FALSE(split_host_port("host:99999").ok());
  // Found by fuzz_config: too many digits for an unsigned long threw.
  EXPECT_FALSE(split_host_port("127.0.0.1:160222222222222222222222222222222222222").ok());
  EXPECT_FALSE(split_host_port("host:000025").ok());
  EXPECT_FALSE(split_host_port("host:2x").ok());
  EXPECT_FALSE(split_host_port(":25").ok());
}

}  // namespace
}  // namespace stampd::net
