// Macro strings (auth/spf/macro.h): RFC 7208 §7, with the §7.4 examples.
#include "auth/spf/macro.h"

#include <gtest/gtest.h>

#include "auth/mail_address.h"

namespace stampd::auth {
namespace {

// RFC 7208 §7.4: <sender> strong-bad@email.example.com, client 192.0.2.3
// (or 2001:db8::cb01), PTR name mx.example.org.
SpfMacroValues rfc_values(const char* ip = "192.0.2.3") {
  SpfMacroValues v;
  v.sender = "strong-bad@email.example.com";
  v.local_part = "strong-bad";
  v.sender_domain = "email.example.com";
  v.domain = "email.example.com";
  v.ip = boost::asio::ip::make_address(ip);
  v.validated_domain = "mx.example.org";
  v.helo = "mx.example.org";
  v.receiver = "mx.example.net";
  v.timestamp = 1700000000;
  return v;
}

std::string expand(std::string_view s, const SpfMacroValues& v = rfc_values(),
                   MacroScope scope = MacroScope::DomainSpec) {
  auto r = expand_macro_string(s, v, scope);
  EXPECT_TRUE(r.ok()) << s << ": " << (r.ok() ? "" : r.error().detail);
  return r.ok() ? std::move(r).value() : "";
}

TEST(SpfMacro, Rfc7208Section74Letters) {
  EXPECT_EQ(expand("%{s}"), "strong-bad@email.example.com");
  EXPECT_EQ(expand("%{o}"), "email.example.com");
  EXPECT_EQ(expand("%{d}"), "email.example.com");
  EXPECT_EQ(expand("%{d4}"), "email.example.com");
  EXPECT_EQ(expand("%{d3}"), "email.example.com");
  EXPECT_EQ(expand("%{d2}"), "example.com");
  EXPECT_EQ(expand("%{d1}"), "com");
  EXPECT_EQ(expand("%{dr}"), "com.example.email");
  EXPECT_EQ(expand("%{d2r}"), "example.email");
  EXPECT_EQ(expand("%{l}"), "strong-bad");
  EXPECT_EQ(expand("%{l-}"), "strong.bad");
  EXPECT_EQ(expand("%{lr}"), "strong-bad");
  EXPECT_EQ(expand("%{lr-}"), "bad.strong");
  EXPECT_EQ(expand("%{l1r-}"), "strong");
}

TEST(SpfMacro, Rfc7208Section74Strings) {
  EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}"), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expand("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(expand("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}"),
            "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expand("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}"),
            "3.2.0.192.in-addr.strong.lp._spf.example.com");
  EXPECT_EQ(expand("%{d2}.trusted-domains.example.net"), "example.com.trusted-domains.example.net");
  // The RFC prints the IPv6 nibbles in lower case; stampd writes them in
  // upper case like the RFC 7208 test suite (test "v-macro-ip6"). DNS
  // names compare case-insensitively, so only the case differs.
  EXPECT_EQ(ascii_lower(expand("%{ir}.%{v}._spf.%{d2}", rfc_values("2001:db8::cb01"))),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacro, ExplanationOnlyLetters) {
  const auto v = rfc_values();
  EXPECT_EQ(expand("%{c} %{r} %{t} %{p} %{h}", v, MacroScope::Explanation),
            "192.0.2.3 mx.example.net 1700000000 mx.example.org mx.example.org");
  EXPECT_EQ(expand("%{c}", rfc_values("2001:db8::cb01"), MacroScope::Explanation),
            "2001:db8::cb01");
  for (const char* s : {"%{c}", "%{r}", "%{t}"}) {
    EXPECT_FALSE(check_macro_string(s, MacroScope::DomainSpec).ok()) << s;
    EXPECT_TRUE(check_macro_string(s, MacroScope::Explanation).ok()) << s;
  }
  // Spaces only in explanations (RFC 7208 §6.2 explain-string).
  EXPECT_FALSE(check_macro_string("a b", MacroScope::DomainSpec).ok());
  EXPECT_TRUE(check_macro_string("a b", MacroScope::Explanation).ok());
}

TEST(SpfMacro, EscapesAndUrlEncoding) {
  EXPECT_EQ(expand("macro%%percent%_%_space%-url-space.example.com"),
            "macro%percent  space%20url-space.example.com");
  SpfMacroValues v = rfc_values();
  v.local_part = "~jack&jill=up-a_b3.c";
  EXPECT_EQ(expand("%{L}", v), "~jack%26jill%3Dup-a_b3.c");
  v.helo = "JUMPIN' JUPITER";
  EXPECT_EQ(expand("%{H}", v), "JUMPIN%27%20JUPITER");
  EXPECT_EQ(expand("%{D2}"), "example.com");
}

TEST(SpfMacro, DelimitersAndTransformers) {
  SpfMacroValues v = rfc_values();
  v.local_part = "foo-bar+zip+quux";
  EXPECT_EQ(expand("%{l2r+-}", v), "bar.foo");
  EXPECT_EQ(expand("%{l+}", v), "foo-bar.zip.quux");
  EXPECT_EQ(expand("%{l100r-+}", v), "quux.zip.bar.foo");
  EXPECT_EQ(expand("%{dR}"), "com.example.email");  // "R" transformer, either case
  EXPECT_EQ(expand("%{i}", rfc_values("2001:db8::1")),
            "2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1");
}

TEST(SpfMacro, SyntaxErrors) {
  for (const char* s : {"%", "foo%", "%x", "%(ir)", "%{", "%{}", "%{a}", "%{d0}", "%{d2x}", "%{ir.",
                        "a\x7f", "\x01"}) {
    EXPECT_FALSE(check_macro_string(s, MacroScope::Explanation).ok()) << s;
    EXPECT_FALSE(expand_macro_string(s, rfc_values(), MacroScope::Explanation).ok()) << s;
  }
  EXPECT_TRUE(ends_with_macro_expand("foo.%{d}"));
  EXPECT_TRUE(ends_with_macro_expand("%%"));
  EXPECT_FALSE(ends_with_macro_expand("%{d}.com"));
  EXPECT_TRUE(uses_macro_letter("exists:%{P}.x", 'p'));
  EXPECT_FALSE(uses_macro_letter("%%p", 'p'));
}

}  // namespace
}  // namespace stampd::auth
