// Robustness of what reads client bytes: the command parser, the DATA
// decoder and the PROXY protocol header, fed thousands of random and
// mutated inputs (tests/support/mutator.h, fixed seeds). Besides "no crash"
// (the ASan+UBSan build runs this too) the properties that make smuggling
// impossible are checked on every input:
// - the data ends exactly at the first <CRLF>.<CRLF> (the start of DATA
//   counts as a CRLF), whatever the chunking;
// - what comes out has no bare CR or LF, and stuffing it again for the
//   upstream and decoding that gives the same message back.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "net/proxy_protocol.h"
#include "proxy/data_decoder.h"
#include "proxy/dot_stuffer.h"
#include "proxy/smtp_command.h"
#include "tests/support/mutator.h"

namespace stampd::proxy {
namespace {

struct Decoded {
  std::string message;
  std::size_t used = 0;
  bool done = false;
  DataDecoder::Problem problem = DataDecoder::Problem::None;
};

// decode feeds input in random chunks.
Decoded decode(std::string_view input, test::Mutator& m, DataDecoder::Options options = {}) {
  DataDecoder d(options);
  Decoded out;
  std::size_t pos = 0;
  while (pos < input.size() && !d.done()) {
    const std::size_t n = 1 + m.below(std::min<std::size_t>(input.size() - pos, 40));
    out.used += d.feed(input.substr(pos, n), out.message);
    pos += n;
  }
  out.done = d.done();
  out.problem = d.problem();
  return out;
}

bool has_bare_line_ending(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
  }
  return false;
}

TEST(ParserRobustness, DataEndsOnlyAtTheFirstCrlfDotCrlf) {
  test::Mutator m(11);
  const std::vector<std::string> seeds = {"Subject: x\r\n\r\nline\r\n..dot\r\n.\r\nQUIT\r\n",
                                          "a\n.\nb\r.\rc\r\n.\nd\n.\r\ne\r\n.\r\n", ".\r\n",
                                          "\r\n.\r\n"};
  int ended = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = i % 2 ? m.from_alphabet("\r\n.a ", 60) : m.mutate_one_of(seeds);
    const Decoded d = decode(input, m);
    ASSERT_EQ(d.problem, DataDecoder::Problem::None);  // normalize, no limits reached
    const auto end = ("\r\n" + input).find("\r\n.\r\n");
    ASSERT_EQ(d.done, end != std::string::npos) << testing::PrintToString(input);
    if (d.done) {
      ++ended;
      ASSERT_EQ(d.used, end + 3) << testing::PrintToString(input);
    }
    ASSERT_FALSE(has_bare_line_ending(d.message)) << testing::PrintToString(input);
    if (d.done && !d.message.empty()) {
      ASSERT_TRUE(d.message.ends_with("\r\n")) << testing::PrintToString(input);
    }
    // What we send upstream decodes to the same message, ending where we end it.
    DotStuffer stuffer;
    std::string wire;
    stuffer.feed(d.message, wire);
    stuffer.finish(wire);
    const Decoded again = decode(wire, m);
    ASSERT_TRUE(again.done);
    ASSERT_EQ(again.used, wire.size());
    std::string expected = d.message;
    if (!expected.empty() && !expected.ends_with("\r\n")) expected += "\r\n";
    ASSERT_EQ(again.message, expected) << testing::PrintToString(input);
  }
  EXPECT_GT(ended, 1000);  // the generator does reach the end-of-data
}

TEST(ParserRobustness, RejectModeNeverNormalizesAndAgreesAcrossChunkings) {
  test::Mutator m(12);
  DataDecoder::Options reject;
  reject.normalize_bare_line_endings = false;
  reject.max_line_length = 20;
  reject.max_size = 200;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = m.from_alphabet("\r\n.ab", 300);
    const Decoded a = decode(input, m, reject);
    const Decoded b = decode(input, m, reject);
    ASSERT_EQ(a.done, b.done);
    ASSERT_EQ(a.used, b.used);
    ASSERT_EQ(a.problem, b.problem) << testing::PrintToString(input);
    if (a.problem == DataDecoder::Problem::None) {
      ASSERT_EQ(a.message, b.message);
    }
    // The end is found even after a problem, so the session stays in step.
    const auto end = ("\r\n" + input).find("\r\n.\r\n");
    ASSERT_EQ(a.done, end != std::string::npos);
  }
}

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
    const Command c = parse_command(line);
    const Command again = parse_command(line);
    ASSERT_EQ(c.verb, again.verb);
    ASSERT_EQ(c.syntax_error.has_value(), again.syntax_error.has_value());
    if (!c.syntax_error && (c.verb == Verb::Mail || c.verb == Verb::Rcpt)) {
      // An accepted path never carries bytes that could break the upstream's line.
      ASSERT_EQ(c.argument.find_first_of("\r\n", 0), std::string::npos) << line;
      ASSERT_LE(c.argument.size(), kMaxPath);
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
