// The SPF record parser (auth/spf/record.h): RFC 7208 §4.5, §4.6, §5, §6.
#include "auth/spf/record.h"

#include <gtest/gtest.h>

namespace stampd::auth {
namespace {

SpfRecord parse_ok(std::string_view text) {
  auto r = parse_spf_record(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().detail);
  return r.ok() ? std::move(r).value() : SpfRecord{};
}

std::string parse_error(std::string_view text) {
  auto r = parse_spf_record(text);
  EXPECT_FALSE(r.ok()) << text << " parsed but should not";
  return r.ok() ? "" : r.error().detail;
}

TEST(SpfRecord, VersionMustBeFollowedBySpaceOrEnd) {
  EXPECT_TRUE(is_spf_version("v=spf1"));
  EXPECT_TRUE(is_spf_version("v=spf1 -all"));
  EXPECT_TRUE(is_spf_version("V=SpF1 ~all"));
  EXPECT_FALSE(is_spf_version("v=spf10"));
  EXPECT_FALSE(is_spf_version("v=spf1mx"));
  EXPECT_FALSE(is_spf_version("spf2.0/pra ip4:192.0.2.1"));
  EXPECT_FALSE(is_spf_version(" v=spf1"));
}

TEST(SpfRecord, MechanismsQualifiersAndArguments) {
  const auto r = parse_ok(
      "v=spf1 +a -mx:mail.example.com/28 ~ptr ?ip4:192.0.2.0/24 ip6:2001:db8::/32 "
      "include:_spf.example.net exists:%{i}.bl.example.org a:%{d}/24//64 -ALL");
  ASSERT_EQ(r.mechanisms.size(), 9u);
  EXPECT_EQ(r.mechanisms[0].kind, SpfMechanismKind::A);
  EXPECT_EQ(r.mechanisms[0].qualifier, SpfQualifier::Pass);
  EXPECT_EQ(r.mechanisms[0].domain_spec, "");
  EXPECT_EQ(r.mechanisms[1].kind, SpfMechanismKind::Mx);
  EXPECT_EQ(r.mechanisms[1].qualifier, SpfQualifier::Fail);
  EXPECT_EQ(r.mechanisms[1].domain_spec, "mail.example.com");
  EXPECT_EQ(r.mechanisms[1].cidr4, 28);
  EXPECT_EQ(r.mechanisms[1].cidr6, 128);
  EXPECT_EQ(r.mechanisms[2].kind, SpfMechanismKind::Ptr);
  EXPECT_EQ(r.mechanisms[2].qualifier, SpfQualifier::SoftFail);
  EXPECT_EQ(r.mechanisms[3].kind, SpfMechanismKind::Ip4);
  EXPECT_EQ(r.mechanisms[3].qualifier, SpfQualifier::Neutral);
  EXPECT_EQ(r.mechanisms[3].network.to_string(), "192.0.2.0");
  EXPECT_EQ(r.mechanisms[3].cidr4, 24);
  EXPECT_EQ(r.mechanisms[4].network.to_string(), "2001:db8::");
  EXPECT_EQ(r.mechanisms[4].cidr6, 32);
  EXPECT_EQ(r.mechanisms[5].kind, SpfMechanismKind::Include);
  EXPECT_EQ(r.mechanisms[5].domain_spec, "_spf.example.net");
  EXPECT_EQ(r.mechanisms[6].kind, SpfMechanismKind::Exists);
  EXPECT_EQ(r.mechanisms[6].domain_spec, "%{i}.bl.example.org");
  EXPECT_EQ(r.mechanisms[7].domain_spec, "%{d}");
  EXPECT_EQ(r.mechanisms[7].cidr4, 24);
  EXPECT_EQ(r.mechanisms[7].cidr6, 64);
  EXPECT_EQ(r.mechanisms[8].kind, SpfMechanismKind::All);
  EXPECT_EQ(r.mechanisms[8].text, "-ALL");
  EXPECT_TRUE(r.has_all());
  EXPECT_EQ(verdict_of(r.mechanisms[8].qualifier), SpfVerdict::Fail);
}

TEST(SpfRecord, DualCidrWithoutDomain) {
  const auto r = parse_ok("v=spf1 a/24 a//64 a/16//48 mx/0");
  EXPECT_EQ(r.mechanisms[0].cidr4, 24);
  EXPECT_EQ(r.mechanisms[0].cidr6, 128);
  EXPECT_EQ(r.mechanisms[1].cidr4, 32);
  EXPECT_EQ(r.mechanisms[1].cidr6, 64);
  EXPECT_EQ(r.mechanisms[2].cidr4, 16);
  EXPECT_EQ(r.mechanisms[2].cidr6, 48);
  EXPECT_EQ(r.mechanisms[3].cidr4, 0);
}

TEST(SpfRecord, Modifiers) {
  const auto r =
      parse_ok("v=spf1 redirect=_spf.example.com exp=explain.%{d} moo.cow-far_out=man:dog/cat");
  EXPECT_TRUE(r.mechanisms.empty());
  EXPECT_EQ(r.redirect, "_spf.example.com");
  EXPECT_EQ(r.exp, "explain.%{d}");
  ASSERT_EQ(r.unknown_modifiers.size(), 1u);
  EXPECT_EQ(r.unknown_modifiers[0].name, "moo.cow-far_out");
  EXPECT_FALSE(r.has_all());
  // Several spaces and trailing spaces are fine (RFC 7208 §4.5, §4.6.1).
  EXPECT_EQ(parse_ok("v=spf1  a   -all  ").mechanisms.size(), 2u);
  EXPECT_TRUE(parse_ok("v=spf1").mechanisms.empty());
}

TEST(SpfRecord, SyntaxErrorsAnywhereAreErrors) {
  EXPECT_NE(parse_error("v=spf1 ip4:192.0.2.1 -all moo").find("unknown mechanism"),
            std::string::npos);
  parse_error("v=spf1 -all.");
  parse_error("v=spf1 -all:foo");
  parse_error("v=spf1 -all/8");
  parse_error("v=spf1 ptr/0");
  parse_error("v=spf1 include");
  parse_error("v=spf1 include:");
  parse_error("v=spf1 include:example.com/24");
  parse_error("v=spf1 exists");
  parse_error("v=spf1 a:");
  parse_error("v=spf1 a/33");
  parse_error("v=spf1 a//129");
  parse_error("v=spf1 a/24/64");
  parse_error("v=spf1 ip4:192.0.2.1/032");  // no leading zeros (RFC 7208 ABNF)
  parse_error("v=spf1 ip4:192.0.02.1");
  parse_error("v=spf1 ip4:192.0.2");
  parse_error("v=spf1 ip4:192.0.2.1:25");
  parse_error("v=spf1 ip4:192.0.2.1//32");
  parse_error("v=spf1 ip4");
  parse_error("v=spf1 ip6:::1//64");
  parse_error("v=spf1 ip6::CAFE::BABE");
  parse_error("v=spf1 ip6:fe80::1%eth0");
  parse_error("v=spf1 a:111.222.33.44");  // all-numeric top label
  parse_error("v=spf1 a:museum");         // no top label
  parse_error("v=spf1 a:example.-com");
  parse_error("v=spf1 a:example.com:8080");
  parse_error("v=spf1 redirect:example.com");
  parse_error("v=spf1 redirect=");
  parse_error("v=spf1 exp=");
  parse_error("v=spf1 exp=a.example.com exp=b.example.com");
  parse_error("v=spf1 redirect=a.example.com redirect=b.example.com");
  parse_error("v=spf1 exp=%{r}.example.com");  // c, r, t only in explanation text
  parse_error("v=spf1 foo=%abc");              // unknown modifiers need valid macros
  parse_error("v=spf1 1up=foo");
  parse_error("v=spf1 =all");
  parse_error("v=spf1 a:foo.example.com\r -all");
  parse_error(std::string("v=spf1 a:foo.example.com") + '\0');
  EXPECT_NE(parse_error("v=spf1 \xc2\x80"
                        "a -all")
                .find("non-ASCII"),
            std::string::npos);
}

TEST(SpfRecord, OddButValidDomainSpecs) {
  EXPECT_EQ(parse_ok("v=spf1 a:foo:bar/baz.example.com").mechanisms[0].domain_spec,
            "foo:bar/baz.example.com");
  EXPECT_EQ(parse_ok("v=spf1 a:foo.example.xn--zckzah").mechanisms.size(), 1u);
  EXPECT_EQ(parse_ok("v=spf1 redirect=%{d}.d.spf.example.com.").redirect,
            "%{d}.d.spf.example.com.");
  EXPECT_EQ(parse_ok("v=spf1 exists:%{l2r+-}.user.%{d2}").mechanisms.size(), 1u);
  EXPECT_EQ(parse_ok("v=spf1 a:macro%%percent%_%_space%-url-space.example.com").mechanisms.size(),
            1u);
}

TEST(SpfRecord, Networks) {
  const auto ip = [](const char* s) { return boost::asio::ip::make_address(s); };
  EXPECT_TRUE(in_network(ip("192.0.2.77"), ip("192.0.2.0"), 24));
  EXPECT_FALSE(in_network(ip("192.0.3.1"), ip("192.0.2.0"), 24));
  EXPECT_TRUE(in_network(ip("203.0.113.9"), ip("1.1.1.1"), 0));
  EXPECT_TRUE(in_network(ip("2001:db8:1234::dead"), ip("2001:db8:1234::beef"), 64));
  EXPECT_FALSE(in_network(ip("2001:db8:1235::"), ip("2001:db8:1234::"), 48));
  EXPECT_TRUE(in_network(ip("cafe:babe:8000::"), ip("cafe:babe:8000::"), 33));
  EXPECT_FALSE(in_network(ip("cafe:babe::"), ip("cafe:babe:8000::"), 33));
  EXPECT_FALSE(in_network(ip("192.0.2.1"), ip("::"), 0));  // families never mix
  EXPECT_FALSE(parse_ip4_network("256.0.0.1"));
  EXPECT_FALSE(parse_ip4_network("1.2.3.4.5"));
  EXPECT_TRUE(parse_ip4_network("0.0.0.0"));
  EXPECT_TRUE(parse_ip6_network("::FFFF:1.2.3.4"));
}

}  // namespace
}  // namespace stampd::auth
