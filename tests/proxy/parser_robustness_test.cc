// Robustness of what reads client bytes: the command parser and the PROXY
// protocol header, fed thousands of random and mutated inputs
// (tests/support/mutator.h, fixed seeds); besides "no crash" (the ASan+UBSan
// build runs this too) each checks what an accepted input promises. The
// DATA decoder's robustness tests, with the anti-smuggling properties, are
// in data_decoder_test.cc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/proxy_protocol.h"
#include "smtp/command.h"
#include "tests/support/mutator.h"

namespace stampd::proxy {
namespace {

TEST(ParserRobustness, CommandLines) {
  test::Mutator m(13);
  const std::vector<std::string> seeds = {
      "MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By",
      "RCPT TO:<\"quoted local\"@[192.0.2.1]> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b",
      "EHLO client.example",
      "XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP",
      "MAIL FROM:<@relay.example:user@d.example>",
      "RCPT TO:<Postmaster>",
      "DATA",
      "RSET"};
  for (int i = 0; i < 20000; ++i) {
    const std::string line = m.mutate_one_of(seeds);
    const smtp::Command c = smtp::parse_command(line);
    const smtp::Command again = smtp::parse_command(line);
    ASSERT_EQ(c.verb, again.verb);
    ASSERT_EQ(c.syntax_error.has_value(), again.syntax_error.has_value());
    if (!c.syntax_error && (c.verb == smtp::Verb::Mail || c.verb == smtp::Verb::Rcpt)) {
      // An accepted path never carries bytes that could break the upstream's line.
      ASSERT_EQ(c.argument.find_first_of("\r\n", 0), std::string::npos) << line;
      ASSERT_LE(c.argument.size(), smtp::kMaxPath);
      for (const auto& p : c.params) {
        ASSERT_EQ(p.keyword.find_first_of("\r\n ", 0), std::string::npos) << line;
        if (p.value) {
          ASSERT_EQ(p.value->find_first_of("\r\n ", 0), std::string::npos) << line;
        }
      }
    }
  }
}

TEST(ParserRobustness, ProxyProtocolHeaders) {
  test::Mutator m(14);
  std::string v2("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A\x21\x11\x00\x0C",
                 16);  // v2 signature, PROXY, TCP4, 12 bytes
  v2 += std::string("\xC0\x00\x02\x01\xC6\x33\x64\x01\x30\x39\x00\x19", 12);
  const std::vector<std::string> seeds = {
      "PROXY TCP4 192.0.2.1 198.51.100.1 12345 25\r\nEHLO x\r\n",
      "PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n", "PROXY UNKNOWN\r\n", v2 + "EHLO x\r\n"};
  int done = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string data = m.mutate_one_of(seeds);
    const auto r = net::parse_proxy_header(data);
    if (r.status == net::ProxyParse::Status::Done) {
      ++done;
      ASSERT_GT(r.header.length, 0u);
      ASSERT_LE(r.header.length, data.size());
      // A longer stream with the same start parses the same way.
      const auto longer = net::parse_proxy_header(data + "more bytes");
      ASSERT_EQ(longer.status, net::ProxyParse::Status::Done);
      ASSERT_EQ(longer.header.length, r.header.length);
    } else if (r.status == net::ProxyParse::Status::Invalid) {
      ASSERT_FALSE(r.error.empty());
    }
  }
  EXPECT_GT(done, 100);
}

}  // namespace
}  // namespace stampd::proxy
