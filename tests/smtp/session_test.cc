#include "smtp/session.h"

#include <gtest/gtest.h>

namespace stampd::smtp {
namespace {

ClientInfo trusted_client() { return ClientInfo{*net::parse_ip("127.0.0.1"), 40000, true}; }

// Run feeds a line through count/check/apply as the connection does, with
// the upstream accepting everything.
std::optional<Reply> run(Session& s, const std::string& line) {
  Command c = parse_command(line);
  s.count(c);
  if (auto refusal = s.check(c)) {
    s.note_refusal(*refusal);
    return refusal;
  }
  s.apply(c);
  return std::nullopt;
}

int code(const std::optional<Reply>& r) { return r ? r->code : 0; }

TEST(Session, HappyPath) {
  Session s({}, trusted_client(), "stampd.test");
  EXPECT_EQ(s.state(), Session::State::Connected);
  EXPECT_EQ(code(run(s, "EHLO client")), 0);
  EXPECT_EQ(s.state(), Session::State::Greeted);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 0);
  EXPECT_EQ(s.state(), Session::State::HaveMail);
  EXPECT_EQ(code(run(s, "RCPT TO:<b@example.com>")), 0);
  EXPECT_EQ(code(run(s, "RCPT TO:<c@example.com>")), 0);
  EXPECT_EQ(s.envelope().recipients.size(), 2u);
  EXPECT_EQ(code(run(s, "DATA")), 0);
  EXPECT_EQ(s.state(), Session::State::InData);
  s.reset_transaction();
  EXPECT_EQ(s.state(), Session::State::Greeted);
  EXPECT_TRUE(s.envelope().recipients.empty());
  EXPECT_EQ(code(run(s, "QUIT")), 0);
  EXPECT_EQ(s.state(), Session::State::Closed);
}

TEST(Session, SequenceErrors) {
  Session s({}, trusted_client(), "h");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 503);  // no EHLO
  run(s, "HELO client");
  EXPECT_EQ(code(run(s, "RCPT TO:<b@example.com>")), 503);
  EXPECT_EQ(code(run(s, "DATA")), 503);
  run(s, "MAIL FROM:<a@example.com>");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 503);  // nested
  EXPECT_EQ(code(run(s, "DATA")), 554);                       // no valid recipients
  EXPECT_EQ(code(run(s, "RSET")), 0);
  EXPECT_EQ(s.state(), Session::State::Greeted);
}

TEST(Session, UntrustedClientMayNotRelay) {
  Session s({}, ClientInfo{*net::parse_ip("192.0.2.1"), 1, false}, "h");
  run(s, "EHLO x");
  auto r = run(s, "MAIL FROM:<a@example.com>");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 554);
  EXPECT_EQ(r->enhanced, "5.7.1");
  EXPECT_EQ(code(run(s, "XFORWARD ADDR=1.2.3.4")), 550);
  EXPECT_EQ(s.ehlo_reply().text.find("XFORWARD"), std::string::npos);
}

TEST(Session, SizeLimitAtMail) {
  SessionLimits limits;
  limits.max_message_size = 1000;
  Session s(limits, trusted_client(), "h");
  run(s, "EHLO x");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> SIZE=1000")), 0);
  run(s, "RSET");
  auto r = run(s, "MAIL FROM:<a@example.com> SIZE=1001");
  EXPECT_EQ(code(r), 552);
  EXPECT_EQ(r->enhanced, "5.3.4");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> SIZE=abc")), 501);
}

TEST(Session, UpstreamSizeLimitWins) {
  SessionLimits limits;
  limits.max_message_size = 1000;
  Session s(limits, trusted_client(), "h");
  UpstreamCapabilities caps;
  caps.size = 500;
  s.set_upstream_capabilities(caps);
  EXPECT_EQ(s.message_size_limit(), 500u);
  EXPECT_NE(s.ehlo_reply().text.find("SIZE 500"), std::string::npos);
}

TEST(Session, ExtensionsFollowTheUpstream) {
  Session s({}, trusted_client(), "h");
  run(s, "EHLO x");
  EXPECT_EQ(s.ehlo_reply().text.find("8BITMIME"), std::string::npos);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> BODY=8BITMIME")), 555);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> SMTPUTF8")), 555);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> RET=HDRS")), 555);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> BODY=7BIT")), 0);
  run(s, "RSET");

  UpstreamCapabilities caps;
  caps.eightbitmime = caps.smtputf8 = caps.dsn = true;
  s.set_upstream_capabilities(caps);
  const std::string ehlo = s.ehlo_reply().text;
  EXPECT_NE(ehlo.find("8BITMIME"), std::string::npos);
  EXPECT_NE(ehlo.find("SMTPUTF8"), std::string::npos);
  EXPECT_NE(ehlo.find("\nDSN"), std::string::npos);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x1")), 0);
  EXPECT_EQ(
      code(run(s, "RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.com")), 0);
  EXPECT_EQ(code(run(s, "RCPT TO:<c@example.com> FOO=1")), 555);
  EXPECT_EQ(code(run(s, "RCPT TO:<j\xc3\xb6rg@example.com>")), 0);  // SMTPUTF8 transaction
}

TEST(Session, NonAsciiNeedsSmtputf8) {
  Session s({}, trusted_client(), "h");
  UpstreamCapabilities caps;
  caps.smtputf8 = true;
  s.set_upstream_capabilities(caps);
  run(s, "EHLO x");
  auto r = run(s, "MAIL FROM:<j\xc3\xb6rg@example.com>");
  EXPECT_EQ(code(r), 553);
  EXPECT_EQ(r->enhanced, "5.6.7");
  run(s, "MAIL FROM:<a@example.com>");
  EXPECT_EQ(code(run(s, "RCPT TO:<j\xc3\xb6rg@example.com>")), 553);
}

TEST(Session, ParamsNeedEhlo) {
  Session s({}, trusted_client(), "h");
  run(s, "HELO x");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> SIZE=10")), 555);
}

TEST(Session, RecipientLimit) {
  SessionLimits limits;
  limits.max_recipients = 2;
  Session s(limits, trusted_client(), "h");
  run(s, "EHLO x");
  run(s, "MAIL FROM:<a@example.com>");
  EXPECT_EQ(code(run(s, "RCPT TO:<1@example.com>")), 0);
  EXPECT_EQ(code(run(s, "RCPT TO:<2@example.com>")), 0);
  auto r = run(s, "RCPT TO:<3@example.com>");
  EXPECT_EQ(code(r), 452);
  EXPECT_EQ(r->enhanced, "4.5.3");
}

TEST(Session, CommandLimit) {
  SessionLimits limits;
  limits.max_commands = 3;
  Session s(limits, trusted_client(), "h");
  EXPECT_EQ(code(run(s, "NOOP")), 0);
  EXPECT_EQ(code(run(s, "NOOP")), 0);
  EXPECT_EQ(code(run(s, "NOOP")), 0);
  EXPECT_EQ(code(run(s, "NOOP")), 421);
}

TEST(Session, ErrorLimit) {
  SessionLimits limits;
  limits.max_errors = 2;
  Session s(limits, trusted_client(), "h");
  EXPECT_EQ(code(run(s, "BOGUS")), 500);
  EXPECT_EQ(code(run(s, "DATA")), 503);
  EXPECT_EQ(code(run(s, "BOGUS")), 500);
  EXPECT_EQ(code(run(s, "NOOP")), 421);
}

TEST(Session, NotImplemented) {
  Session s({}, trusted_client(), "h");
  for (const char* line :
       {"STARTTLS", "AUTH PLAIN", "EXPN list", "ETRN x", "TURN"}) {  // no TLS set up
    EXPECT_EQ(code(run(s, line)), 502) << line;
  }
}

bool offers(const Session& s, const std::string& extension) {
  const std::string text = s.ehlo_reply().text;
  return ("\n" + text + "\n").find("\n" + extension + "\n") != std::string::npos;
}

TEST(Session, StarttlsOfferedOnlyWithACertificateAndOnlyInClear) {
  Session plain({}, trusted_client(), "h");
  run(plain, "EHLO client");
  EXPECT_FALSE(offers(plain, "STARTTLS"));
  EXPECT_EQ(code(run(plain, "STARTTLS")), 502);
  EXPECT_FALSE(plain.tls_active());

  Session s({}, trusted_client(), "h");
  s.set_tls_policy({.starttls = true, .required = false});
  run(s, "EHLO client");
  EXPECT_TRUE(offers(s, "STARTTLS"));
  EXPECT_EQ(code(run(s, "STARTTLS")), 0);
  EXPECT_EQ(s.local_reply(parse_command("STARTTLS")).code, 220);
  s.tls_started({"TLSv1.3", "TLS_AES_128_GCM_SHA256", "mail.example.com"});
  EXPECT_TRUE(s.tls_active());
  EXPECT_EQ(s.tls()->protocol, "TLSv1.3");
  run(s, "EHLO client");
  EXPECT_FALSE(offers(s, "STARTTLS"));
  EXPECT_TRUE(offers(s, "PIPELINING"));
}

// RFC 3207 §4.2: after the handshake the client starts over; nothing it said
// in clear (EHLO, XFORWARD, a transaction) survives.
TEST(Session, TlsStartedForgetsEverythingSaidInClear) {
  Session s({}, trusted_client(), "h");
  s.set_tls_policy({.starttls = true, .required = false});
  run(s, "EHLO before.tls");
  run(s, "XFORWARD ADDR=192.0.2.7 HELO=injected");
  ASSERT_EQ(code(run(s, "STARTTLS")), 0);
  EXPECT_EQ(s.protocol(), "ESMTP");
  s.tls_started({"TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", ""});
  EXPECT_EQ(s.state(), Session::State::Connected);
  EXPECT_EQ(s.helo(), "");
  EXPECT_FALSE(s.esmtp());
  EXPECT_TRUE(s.xforward().attributes.empty());
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 503);  // EHLO again first
  EXPECT_EQ(code(run(s, "EHLO after.tls")), 0);
  EXPECT_EQ(s.helo(), "after.tls");
  EXPECT_EQ(s.protocol(), "ESMTPS");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 0);
}

TEST(Session, StarttlsRefusals) {
  Session s({}, trusted_client(), "h");
  s.set_tls_policy({.starttls = true, .required = false});
  EXPECT_EQ(code(run(s, "STARTTLS")), 503);  // before EHLO
  run(s, "EHLO client");
  EXPECT_EQ(code(run(s, "STARTTLS now")), 501);
  run(s, "MAIL FROM:<a@example.com>");
  EXPECT_EQ(code(run(s, "STARTTLS")), 503);  // in a transaction
  run(s, "RSET");
  ASSERT_EQ(code(run(s, "STARTTLS")), 0);
  s.tls_started({"TLSv1.3", "TLS_AES_256_GCM_SHA384", ""});
  run(s, "EHLO client");
  const auto twice = run(s, "STARTTLS");
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->code, 503);
  EXPECT_EQ(twice->text, "TLS already active");
}

TEST(Session, RequireTlsRefusesMailInClear) {
  Session s({}, trusted_client(), "h");
  s.set_tls_policy({.starttls = true, .required = true});
  run(s, "EHLO client");
  const auto refused = run(s, "MAIL FROM:<a@example.com>");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, 530);
  EXPECT_EQ(refused->enhanced, "5.7.0");
  EXPECT_EQ(code(run(s, "RCPT TO:<b@example.com>")), 503);
  ASSERT_EQ(code(run(s, "STARTTLS")), 0);
  s.tls_started({"TLSv1.3", "TLS_AES_256_GCM_SHA384", ""});
  run(s, "EHLO client");
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 0);
}

TEST(Session, ImplicitTlsIsActiveFromTheStart) {
  Session s({}, trusted_client(), "h");
  s.set_tls_policy({.starttls = false, .required = true});
  s.tls_started({"TLSv1.3", "TLS_AES_256_GCM_SHA384", ""});
  run(s, "EHLO client");
  EXPECT_FALSE(offers(s, "STARTTLS"));
  EXPECT_EQ(code(run(s, "STARTTLS")), 503);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 0);
}

TEST(Session, BdatParsing) {
  Command c = parse_command("BDAT 1024");
  EXPECT_FALSE(c.syntax_error);
  EXPECT_EQ(c.chunk_size, 1024u);
  EXPECT_FALSE(c.last_chunk);
  c = parse_command("bdat 0 last");
  EXPECT_FALSE(c.syntax_error);
  EXPECT_EQ(c.chunk_size, 0u);
  EXPECT_TRUE(c.last_chunk);
  c = parse_command("BDAT 9999999999999999999 LAST");  // 19 digits fit in 64 bits
  EXPECT_FALSE(c.syntax_error);
  EXPECT_EQ(c.chunk_size, 9999999999999999999ULL);
  for (const char* bad : {"BDAT", "BDAT LAST", "BDAT -1", "BDAT 1x", "BDAT 10 FIRST",
                          "BDAT 10 LAST more", "BDAT 99999999999999999999", "BDAT +5"}) {
    c = parse_command(bad);
    ASSERT_TRUE(c.syntax_error) << bad;
    EXPECT_EQ(c.syntax_error->code, 501) << bad;
  }
}

TEST(Session, BdatChunksThenLast) {
  Session s({}, trusted_client(), "h");
  run(s, "EHLO x");
  EXPECT_NE(s.ehlo_reply().text.find("\nCHUNKING"), std::string::npos);
  EXPECT_EQ(s.ehlo_reply().text.find("BINARYMIME"), std::string::npos);
  run(s, "MAIL FROM:<a@example.com>");
  run(s, "RCPT TO:<b@example.com>");
  EXPECT_EQ(code(run(s, "BDAT 100")), 0);
  EXPECT_EQ(s.state(), Session::State::InChunks);
  EXPECT_EQ(s.local_reply(parse_command("BDAT 100")).summary(), "250 2.0.0 100 octets received");
  EXPECT_EQ(code(run(s, "BDAT 0")), 0);
  EXPECT_EQ(code(run(s, "BDAT 50 LAST")), 0);
  EXPECT_EQ(s.state(), Session::State::InData);
  EXPECT_EQ(s.chunked_octets(), 150u);
  s.reset_transaction();
  EXPECT_EQ(s.chunked_octets(), 0u);
  EXPECT_EQ(s.state(), Session::State::Greeted);
}

TEST(Session, BinarymimeOnlyWhenTheUpstreamTakesItWithChunking) {
  for (const auto& [binarymime, chunking] : {std::pair{true, false}, std::pair{false, true}}) {
    Session s({}, trusted_client(), "h");
    UpstreamCapabilities caps;
    caps.binarymime = binarymime;
    caps.chunking = chunking;
    s.set_upstream_capabilities(caps);
    run(s, "EHLO x");
    EXPECT_EQ(s.ehlo_reply().text.find("BINARYMIME"), std::string::npos);
    EXPECT_EQ(run(s, "MAIL FROM:<a@example.com> BODY=BINARYMIME")->summary(),
              "555 5.5.4 Unsupported BODY type BINARYMIME");
  }
  Session s({}, trusted_client(), "h");
  UpstreamCapabilities caps;
  caps.binarymime = caps.chunking = caps.eightbitmime = true;
  s.set_upstream_capabilities(caps);
  run(s, "EHLO x");
  EXPECT_NE(s.ehlo_reply().text.find("\nCHUNKING\nBINARYMIME"), std::string::npos);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> BODY=binarymime")), 0);  // any case
  EXPECT_TRUE(s.binarymime());
  run(s, "RCPT TO:<b@example.com>");
  // RFC 3030 §3: such a body goes in BDAT chunks only.
  EXPECT_EQ(run(s, "DATA")->summary(), "503 5.5.1 BODY=BINARYMIME needs BDAT, not DATA");
  EXPECT_EQ(code(run(s, "BDAT 10 LAST")), 0);
  s.reset_transaction();
  EXPECT_FALSE(s.binarymime());
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com> BODY=8BITMIME")), 0);
  EXPECT_FALSE(s.binarymime());
}

TEST(Session, BdatSequenceErrors) {
  Session s({}, trusted_client(), "h");
  EXPECT_EQ(code(run(s, "BDAT 10")), 503);  // no EHLO
  run(s, "EHLO x");
  EXPECT_EQ(code(run(s, "BDAT 10 LAST")), 503);  // no MAIL
  run(s, "MAIL FROM:<a@example.com>");
  EXPECT_EQ(code(run(s, "BDAT 10 LAST")), 554);  // no valid recipients
  run(s, "RCPT TO:<b@example.com>");
  EXPECT_EQ(code(run(s, "BDAT 10")), 0);
  // RFC 3030 §3: no DATA in a transaction that started with BDAT.
  auto r = run(s, "DATA");
  EXPECT_EQ(code(r), 503);
  EXPECT_EQ(r->enhanced, "5.5.1");
  EXPECT_EQ(code(run(s, "RCPT TO:<c@example.com>")), 503);
  EXPECT_EQ(code(run(s, "MAIL FROM:<a@example.com>")), 503);
  EXPECT_EQ(s.state(), Session::State::InChunks);
  EXPECT_EQ(code(run(s, "RSET")), 0);
  EXPECT_EQ(s.state(), Session::State::Greeted);
  EXPECT_EQ(s.chunked_octets(), 0u);
}

TEST(Session, BdatSizeIsCheckedBeforeTheChunkIsRead) {
  SessionLimits limits;
  limits.max_message_size = 1000;
  Session s(limits, trusted_client(), "h");
  run(s, "EHLO x");
  run(s, "MAIL FROM:<a@example.com>");
  run(s, "RCPT TO:<b@example.com>");
  EXPECT_EQ(code(run(s, "BDAT 1001 LAST")), 552);
  EXPECT_EQ(code(run(s, "BDAT 600")), 0);
  EXPECT_EQ(code(run(s, "BDAT 400")), 0);  // exactly the limit
  auto r = run(s, "BDAT 1");
  EXPECT_EQ(code(r), 552);
  EXPECT_EQ(r->enhanced, "5.3.4");
  // A size near 2^64 must not wrap around the sum.
  EXPECT_EQ(code(run(s, "BDAT 9999999999999999999")), 552);
  EXPECT_EQ(code(run(s, "BDAT 0 LAST")), 0);
}

TEST(Session, LocalReplies) {
  Session s({}, trusted_client(), "h");
  EXPECT_EQ(s.local_reply(parse_command("VRFY bob")).code, 252);
  EXPECT_EQ(s.local_reply(parse_command("HELP")).code, 214);
  EXPECT_EQ(s.local_reply(parse_command("NOOP")).code, 250);
  EXPECT_EQ(s.local_reply(parse_command("QUIT")).code, 221);
  EXPECT_EQ(s.local_reply(parse_command("DATA")).code, 354);
}

TEST(Session, Xforward) {
  Session s({}, trusted_client(), "h");
  run(s, "EHLO postfix");
  EXPECT_EQ(code(run(s, "XFORWARD NAME=mail.example.com ADDR=192.0.2.7")), 0);
  EXPECT_EQ(code(run(s, "XFORWARD helo=client.example PROTO=ESMTP")), 0);
  ASSERT_TRUE(s.xforward().find("ADDR"));
  EXPECT_EQ(*s.xforward().find("ADDR"), "192.0.2.7");
  EXPECT_EQ(*s.xforward().find("HELO"), "client.example");
  EXPECT_EQ(code(run(s, "XFORWARD COLOR=blue")), 501);
  EXPECT_EQ(code(run(s, "XFORWARD")), 501);
  run(s, "MAIL FROM:<a@example.com>");
  EXPECT_EQ(code(run(s, "XFORWARD ADDR=1.2.3.4")), 503);  // not inside a transaction
  run(s, "RSET");
  run(s, "EHLO again");
  EXPECT_EQ(s.xforward().find("ADDR"), nullptr);  // EHLO starts afresh
}

TEST(Session, EhloResetsTheTransaction) {
  Session s({}, trusted_client(), "h");
  run(s, "EHLO x");
  run(s, "MAIL FROM:<a@example.com>");
  run(s, "EHLO y");
  EXPECT_EQ(s.state(), Session::State::Greeted);
  EXPECT_TRUE(s.envelope().mail_from.empty());
}

}  // namespace
}  // namespace stampd::smtp
