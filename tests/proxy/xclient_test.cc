// The XCLIENT line: which client it names (the peer, or the one XFORWARD
// named), only the attributes the upstream offered, values in xtext.
#include "proxy/upstream/xclient.h"

#include <gtest/gtest.h>

namespace stampd::proxy {
namespace {

const std::vector<std::string> kPostfix{"NAME", "ADDR",  "PORT",     "PROTO",
                                        "HELO", "LOGIN", "DESTADDR", "DESTPORT"};

smtp::Session session_from(const char* ip, std::uint16_t port) {
  return smtp::Session({}, smtp::ClientInfo{*net::parse_ip(ip), port, true}, "stampd.test");
}

TEST(Xclient, NamesThePeerWithWhatItSaid) {
  smtp::Session s = session_from("192.0.2.7", 40123);
  s.apply(smtp::parse_command("EHLO app.client.test"));
  EXPECT_EQ(
      xclient_line(xclient_identity(s), kPostfix),
      "XCLIENT ADDR=192.0.2.7 PORT=40123 NAME=[UNAVAILABLE] HELO=app.client.test PROTO=ESMTP");
  s.apply(smtp::parse_command("HELO old.client"));
  EXPECT_NE(xclient_line(xclient_identity(s), kPostfix).find("PROTO=SMTP"), std::string::npos);
}

TEST(Xclient, CarriesTheLoginOfAnAuthenticatedClient) {
  smtp::Session s = session_from("192.0.2.7", 40123);
  s.apply(smtp::parse_command("EHLO app"));
  EXPECT_EQ(xclient_line(xclient_identity(s), kPostfix).find("LOGIN="), std::string::npos);
  s.set_login("billing app");
  EXPECT_EQ(xclient_identity(s).login, "billing+20app");  // xtext
  EXPECT_NE(xclient_line(xclient_identity(s), kPostfix).find(" LOGIN=billing+20app"),
            std::string::npos);
}

TEST(Xclient, Ipv6AndMappedAddresses) {
  EXPECT_EQ(xclient_identity(session_from("2001:db8::7", 1)).addr, "IPV6:2001:db8::7");
  EXPECT_EQ(xclient_identity(session_from("::ffff:192.0.2.9", 1)).addr, "192.0.2.9");
}

TEST(Xclient, TheClientXforwardNamedWins) {
  smtp::Session s = session_from("127.0.0.1", 5555);
  s.apply(smtp::parse_command("EHLO postfix.local"));
  s.apply(smtp::parse_command("XFORWARD NAME=mail.example.org ADDR=198.51.100.4 PORT=2525"));
  s.apply(smtp::parse_command("XFORWARD HELO=mail.example.org PROTO=ESMTP"));
  EXPECT_EQ(xclient_line(xclient_identity(s), kPostfix),
            "XCLIENT ADDR=198.51.100.4 PORT=2525 NAME=mail.example.org HELO=mail.example.org "
            "PROTO=ESMTP");
}

TEST(Xclient, OnlyOfferedAttributesAndNoLoginWithoutOne) {
  smtp::Session s = session_from("192.0.2.7", 40123);
  s.apply(smtp::parse_command("EHLO x"));
  EXPECT_EQ(xclient_line(xclient_identity(s), {"ADDR", "HELO"}), "XCLIENT ADDR=192.0.2.7 HELO=x");
  EXPECT_EQ(xclient_line(xclient_identity(s), {"DESTADDR"}), "");
  XclientIdentity id = xclient_identity(s);
  EXPECT_TRUE(id.login.empty());
  id.login = xtext("app@example.com");
  EXPECT_NE(xclient_line(id, kPostfix).find(" LOGIN=app@example.com"), std::string::npos);
}

TEST(Xclient, ValuesAreXtext) {
  EXPECT_EQ(xtext("plain.name"), "plain.name");
  EXPECT_EQ(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
  EXPECT_EQ(xtext("\x7f\xc3\xa9"), "+7F+C3+A9");
  for (const char* v : {"plain", "a+b=c d", "\x7f\xc3\xa9", ""})
    EXPECT_EQ(xtext_decode(xtext(v)), v);
  EXPECT_EQ(xtext_decode("a+2"), "a+2");  // cut short: kept as it is
  EXPECT_EQ(xtext_decode("a+zzb"), "a+zzb");
}

}  // namespace
}  // namespace stampd::proxy
