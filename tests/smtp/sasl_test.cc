#include "smtp/sasl.h"

#include <gtest/gtest.h>

#include <vector>

#include "smtp/session.h"

namespace stampd::smtp {
namespace {

using Kind = SaslStep::Kind;

std::string b64(std::string_view s) { return sasl_base64_encode(s); }

TEST(SaslBase64, RoundTripsAndIsStrict) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0u\0p", 4)}) {
    EXPECT_EQ(sasl_base64_decode(b64(s).empty() ? "=" : b64(s)), s);
  }
  EXPECT_EQ(b64("user"), "dXNlcg==");
  EXPECT_FALSE(sasl_base64_decode(""));
  EXPECT_FALSE(sasl_base64_decode("dXNlcg"));     // padding missing
  EXPECT_FALSE(sasl_base64_decode("dXN lcg=="));  // no whitespace inside
  EXPECT_FALSE(sasl_base64_decode("dX=lcg=="));   // padding in the middle
  EXPECT_FALSE(sasl_base64_decode("dXNl!g=="));
  EXPECT_FALSE(sasl_base64_decode("*"));
}

TEST(Sasl, PlainWithInitialResponse) {
  std::optional<SaslExchange> ex;
  const auto step = SaslExchange::start("PLAIN " + b64(std::string("\0alice\0s3cret", 13)), ex);
  ASSERT_EQ(step.kind, Kind::Done);
  EXPECT_EQ(step.credentials.username, "alice");
  EXPECT_EQ(step.credentials.password, "s3cret");
  EXPECT_FALSE(ex);
}

TEST(Sasl, PlainAfterEmptyChallenge) {
  std::optional<SaslExchange> ex;
  auto step = SaslExchange::start("plain", ex);
  ASSERT_EQ(step.kind, Kind::Challenge);
  EXPECT_EQ(step.reply.wire(), "334 \r\n");
  ASSERT_TRUE(ex);
  step = ex->feed(b64(std::string("alice\0alice\0pw", 14)));  // authzid = authcid
  ASSERT_EQ(step.kind, Kind::Done);
  EXPECT_EQ(step.credentials.username, "alice");
  EXPECT_EQ(step.credentials.password, "pw");
}

TEST(Sasl, PlainRefusesAnotherAuthzidAndMalformedResponses) {
  std::optional<SaslExchange> ex;
  auto step = SaslExchange::start("PLAIN " + b64(std::string("bob\0alice\0pw", 12)), ex);
  EXPECT_EQ(step.kind, Kind::Failed);
  EXPECT_EQ(step.reply.code, 535);
  EXPECT_EQ(step.reply.enhanced, "5.7.8");
  step = SaslExchange::start("PLAIN " + b64("no-nuls"), ex);
  EXPECT_EQ(step.reply.code, 501);
  step = SaslExchange::start("PLAIN " + b64(std::string("\0a\0b\0c", 6)), ex);
  EXPECT_EQ(step.reply.code, 501);
  // "=" is the empty response: no NULs, so malformed, not a crash.
  step = SaslExchange::start("PLAIN =", ex);
  EXPECT_EQ(step.kind, Kind::Failed);
  EXPECT_EQ(step.reply.code, 501);
}

TEST(Sasl, LoginTwoChallenges) {
  std::optional<SaslExchange> ex;
  auto step = SaslExchange::start("LOGIN", ex);
  ASSERT_EQ(step.kind, Kind::Challenge);
  EXPECT_EQ(step.reply.wire(), "334 VXNlcm5hbWU6\r\n");  // "Username:"
  step = ex->feed(b64("alice"));
  ASSERT_EQ(step.kind, Kind::Challenge);
  EXPECT_EQ(step.reply.wire(), "334 UGFzc3dvcmQ6\r\n");  // "Password:"
  step = ex->feed(b64("pw"));
  ASSERT_EQ(step.kind, Kind::Done);
  EXPECT_EQ(step.credentials.username, "alice");
  EXPECT_EQ(step.credentials.password, "pw");
}

TEST(Sasl, LoginWithInitialUsernameAndEmptyPassword) {
  std::optional<SaslExchange> ex;
  auto step = SaslExchange::start("LOGIN " + b64("alice"), ex);
  ASSERT_EQ(step.kind, Kind::Challenge);
  EXPECT_EQ(step.reply.wire(), "334 UGFzc3dvcmQ6\r\n");
  step = ex->feed("=");
  ASSERT_EQ(step.kind, Kind::Done);
  EXPECT_EQ(step.credentials.username, "alice");
  EXPECT_EQ(step.credentials.password, "");
}

TEST(Sasl, StarCancels) {
  std::optional<SaslExchange> ex;
  SaslExchange::start("LOGIN", ex);
  auto step = ex->feed("*");
  EXPECT_EQ(step.kind, Kind::Failed);
  EXPECT_EQ(step.reply.code, 501);
  SaslExchange::start("PLAIN", ex);
  EXPECT_EQ(ex->feed("*").reply.code, 501);
}

TEST(Sasl, BadBase64Is501) {
  std::optional<SaslExchange> ex;
  EXPECT_EQ(SaslExchange::start("PLAIN %%%%", ex).reply.code, 501);
  EXPECT_EQ(SaslExchange::start("PLAIN *", ex).reply.code, 501);
  SaslExchange::start("LOGIN", ex);
  auto step = ex->feed("not base64");
  EXPECT_EQ(step.kind, Kind::Failed);
  EXPECT_EQ(step.reply.code, 501);
  EXPECT_EQ(step.reply.enhanced, "5.5.2");
}

TEST(Sasl, UnknownMechanismAndSyntax) {
  std::optional<SaslExchange> ex;
  EXPECT_EQ(SaslExchange::start("CRAM-MD5", ex).reply.code, 504);
  EXPECT_EQ(SaslExchange::start("", ex).reply.code, 501);
  EXPECT_EQ(SaslExchange::start("PLAIN a b", ex).reply.code, 501);
  EXPECT_FALSE(ex);
}

// --- The session's side: when AUTH may start -----------------------------------

ClientInfo outside() { return ClientInfo{*net::parse_ip("192.0.2.1"), 1, false}; }

std::optional<Reply> run(Session& s, const std::string& line) {
  Command c = parse_command(line);
  s.count(c);
  if (auto refusal = s.check(c)) return refusal;
  s.apply(c);
  return std::nullopt;
}

int code(const std::optional<Reply>& r) { return r ? r->code : 0; }

bool advertises_auth(const Session& s) {
  return s.ehlo_reply().text.find("AUTH PLAIN LOGIN") != std::string::npos;
}

TEST(SessionAuth, NotConfiguredIs502AndNotAdvertised) {
  Session s({}, outside(), "h");
  run(s, "EHLO x");
  EXPECT_FALSE(advertises_auth(s));
  EXPECT_EQ(code(run(s, "AUTH PLAIN")), 502);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 554);
}

TEST(SessionAuth, RefusedBeforeTlsUnlessTheListenerAllowsPlaintext) {
  Session s({}, outside(), "h");
  s.set_auth_policy({true, false});
  run(s, "EHLO x");
  EXPECT_FALSE(advertises_auth(s));
  const auto r = run(s, "AUTH PLAIN");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 538);
  EXPECT_EQ(r->enhanced, "5.7.11");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 554);
  s.tls_started({});
  run(s, "EHLO x");
  EXPECT_TRUE(advertises_auth(s));
  EXPECT_EQ(code(run(s, "AUTH PLAIN")), 0);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 530);  // not yet logged in

  Session loopback({}, outside(), "h");
  loopback.set_auth_policy({true, true});
  run(loopback, "EHLO x");
  EXPECT_TRUE(advertises_auth(loopback));
  EXPECT_EQ(code(run(loopback, "AUTH LOGIN")), 0);
}

TEST(SessionAuth, SequenceRules) {
  Session s({}, outside(), "h");
  s.set_auth_policy({true, true});
  EXPECT_EQ(code(run(s, "AUTH PLAIN")), 503);  // before EHLO
  run(s, "HELO x");
  EXPECT_EQ(code(run(s, "AUTH PLAIN")), 503);  // HELO is not ESMTP
  run(s, "EHLO x");
  EXPECT_EQ(code(run(s, "AUTH")), 0);  // the mechanism is SaslExchange's to check
  s.set_login("alice");
  EXPECT_TRUE(s.may_relay());
  EXPECT_EQ(code(run(s, "AUTH PLAIN")), 503);  // twice
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 0);
  Session t({}, ClientInfo{*net::parse_ip("127.0.0.1"), 1, true}, "h");
  t.set_auth_policy({true, true});
  run(t, "EHLO x");
  run(t, "MAIL FROM:<a@example.com>");
  const auto r = run(t, "AUTH PLAIN");  // during a transaction
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 503);
  // The login survives a new EHLO (RFC 4954 says nothing resets it), not TLS.
  s.set_login("alice");
  run(s, "RSET");
  run(s, "EHLO again");
  EXPECT_EQ(s.login(), "alice");
  s.tls_started({});
  EXPECT_EQ(s.login(), "");
}

}  // namespace
}  // namespace stampd::smtp
