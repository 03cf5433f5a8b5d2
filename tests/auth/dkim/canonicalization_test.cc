// Canonicalization (RFC 6376 §3.4): the §3.4.5 examples, the empty-body
// hashes of erratum 1376, and body edge cases checked against a plain
// whole-body reference implementation written from the RFC text.
#include "auth/dkim/canonicalization.h"

#include <gtest/gtest.h>

#include <string>

#include "auth/dkim/base64.h"
#include "auth/dkim/body_canonicalizer.h"
#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/message_splitter.h"
#include "tests/support/dkim_corpus.h"

namespace stampd::auth {
namespace {

using test::read_test_file;

std::string b64(const Sha256Digest& d) {
  return base64_encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

// Reference canonicalizers: the RFC's wording applied to whole lines, the
// obvious (slow) way. The incremental ones must agree byte for byte.
std::vector<std::string> split_lines(std::string_view body, bool& ends_with_crlf) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  ends_with_crlf = false;
  while (pos < body.size()) {
    const auto eol = body.find("\r\n", pos);
    if (eol == std::string_view::npos) {
      lines.emplace_back(body.substr(pos));
      return lines;
    }
    lines.emplace_back(body.substr(pos, eol - pos));
    pos = eol + 2;
  }
  ends_with_crlf = !body.empty();
  return lines;
}

std::string reference_simple(std::string_view body) {
  bool crlf = false;
  auto lines = split_lines(body, crlf);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  return out.empty() ? "\r\n" : out;
}

std::string reference_relaxed(std::string_view body) {
  bool crlf = false;
  auto lines = split_lines(body, crlf);
  for (auto& l : lines) {
    std::string out;
    for (const char c : l) {
      const bool wsp = c == ' ' || c == '\t';
      if (wsp && !out.empty() && out.back() == ' ') continue;  // a run becomes one SP
      out += wsp ? ' ' : c;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    l = out;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::string out;
  for (const auto& l : lines) out += l + "\r\n";
  return out;
}

TEST(DkimCanonicalization, Rfc6376Section345Example) {
  const std::string input = read_test_file("dkim/rfc6376/canon-example-input.eml");
  const SplitMessage parts = split_message(input);
  auto block = HeaderBlock::parse(std::string(parts.header));
  ASSERT_TRUE(block.ok());
  std::string relaxed;
  std::string simple;
  for (std::size_t i = 0; i < block->size(); ++i) {
    append_canonical_header(Canonicalization::Relaxed, block->field(i).raw, relaxed);
    append_canonical_header(Canonicalization::Simple, block->field(i).raw, simple);
  }
  EXPECT_EQ(relaxed, read_test_file("dkim/rfc6376/canon-example-relaxed-header.bin"));
  EXPECT_EQ(simple, read_test_file("dkim/rfc6376/canon-example-simple-header.bin"));
  EXPECT_EQ(canonicalize_body(Canonicalization::Relaxed, parts.body),
            read_test_file("dkim/rfc6376/canon-example-relaxed-body.bin"));
  EXPECT_EQ(canonicalize_body(Canonicalization::Simple, parts.body),
            read_test_file("dkim/rfc6376/canon-example-simple-body.bin"));
  EXPECT_EQ(b64(body_hash(Canonicalization::Relaxed, parts.body)),
            "unak6JHq0wL+Q1HP7dW1tjBx9FLA6DffoZ0qrLwbbpo=");
  EXPECT_EQ(b64(body_hash(Canonicalization::Simple, parts.body)),
            "NOeivbQlDH9TmNKJUw7D53wZfsk8YMZ/hTuVVwTgi8s=");
}

TEST(DkimCanonicalization, EmptyBodyHashesErratum1376) {
  // simple: an empty body is one CRLF; relaxed: nothing at all.
  EXPECT_EQ(b64(body_hash(Canonicalization::Simple, "")),
            "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  EXPECT_EQ(b64(body_hash(Canonicalization::Relaxed, "")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  // Only empty lines, or lines of only WSP (relaxed), are an empty body too.
  EXPECT_EQ(b64(body_hash(Canonicalization::Simple, "\r\n\r\n\r\n")),
            "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  EXPECT_EQ(b64(body_hash(Canonicalization::Relaxed, " \t\r\n\r\n  \r\n")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  EXPECT_EQ(b64(body_hash(Canonicalization::Relaxed, "  ")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST(DkimCanonicalization, Rfc8463BodyHashes) {
  const std::string body = read_test_file("dkim/rfc8463/body.bin");
  EXPECT_EQ(canonicalize_body(Canonicalization::Relaxed, body),
            read_test_file("dkim/rfc8463/body.relaxed.bin"));
  EXPECT_EQ(b64(body_hash(Canonicalization::Relaxed, body)),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
  EXPECT_EQ(b64(body_hash(Canonicalization::Simple, body)),
            "4bLNXImK9drULnmePzZNEBleUanJCX5PIsDIFoH4KTQ=");
}

struct BodyCase {
  const char* name;
  std::string body;
  std::string simple;
  std::string relaxed;
};

TEST(DkimCanonicalization, BodyEdgeCases) {
  const std::vector<BodyCase> cases = {
      {"no final CRLF", "abc", "abc\r\n", "abc\r\n"},
      {"no final CRLF, trailing WSP", "abc \t", "abc \t\r\n", "abc\r\n"},
      {"trailing empty lines", "a\r\n\r\n\r\n", "a\r\n", "a\r\n"},
      {"leading empty lines kept", "\r\n\r\na\r\n", "\r\n\r\na\r\n", "\r\n\r\na\r\n"},
      {"inner empty lines kept", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n", "a\r\n\r\n\r\nb\r\n"},
      {"WSP-only line inside", "a\r\n \t \r\nb\r\n", "a\r\n \t \r\nb\r\n", "a\r\n\r\nb\r\n"},
      {"WSP-only lines at end", "a\r\n  \r\n\t\r\n", "a\r\n  \r\n\t\r\n", "a\r\n"},
      {"leading WSP becomes one SP", "  \t a\r\n", "  \t a\r\n", " a\r\n"},
      {"inner runs", "a  b\t\tc \t d\r\n", "a  b\t\tc \t d\r\n", "a b c d\r\n"},
      {"bare CR is content", "a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},
      {"bare LF is content", "a\nb\r\n", "a\nb\r\n", "a\nb\r\n"},
      {"CR CR LF", "a\r\r\n", "a\r\r\n", "a\r\r\n"},
      {"WSP before bare CR", "a \rb\r\n", "a \rb\r\n", "a \rb\r\n"},
      {"trailing bare CR", "a\r", "a\r\r\n", "a\r\r\n"},
      {"dots", ".\r\n..\r\n", ".\r\n..\r\n", ".\r\n..\r\n"},
      {"only CRLF", "\r\n", "\r\n", ""},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(canonicalize_body(Canonicalization::Simple, c.body), c.simple) << c.name;
    EXPECT_EQ(canonicalize_body(Canonicalization::Relaxed, c.body), c.relaxed) << c.name;
    EXPECT_EQ(reference_simple(c.body), c.simple) << "reference disagrees: " << c.name;
    EXPECT_EQ(reference_relaxed(c.body), c.relaxed) << "reference disagrees: " << c.name;
  }
}

TEST(DkimCanonicalization, CorpusAgreesWithReference) {
  for (const auto& [name, message] : test::committed_corpus_messages()) {
    const std::string_view body = split_message(message).body;
    EXPECT_EQ(canonicalize_body(Canonicalization::Simple, body), reference_simple(body)) << name;
    EXPECT_EQ(canonicalize_body(Canonicalization::Relaxed, body), reference_relaxed(body)) << name;
  }
}

TEST(DkimCanonicalization, RelaxedHeader) {
  EXPECT_EQ(canonicalize_header(Canonicalization::Relaxed, "SUBJECT \t:  a  b\t\r\n c  \r\n"),
            "subject:a b c\r\n");
  EXPECT_EQ(canonicalize_header(Canonicalization::Relaxed, "X-Empty:\r\n"), "x-empty:\r\n");
  EXPECT_EQ(canonicalize_header(Canonicalization::Relaxed, "X-Folded-Empty:\r\n \r\n"),
            "x-folded-empty:\r\n");
  // Without the final CRLF (the DKIM-Signature field itself), none is added.
  EXPECT_EQ(canonicalize_header(Canonicalization::Relaxed, "DKIM-Signature: v=1;\r\n b="),
            "dkim-signature:v=1; b=");
  EXPECT_EQ(canonicalize_header(Canonicalization::Simple, "DKIM-Signature: v=1;\r\n b="),
            "DKIM-Signature: v=1;\r\n b=");
  // 8-bit bytes are left alone.
  EXPECT_EQ(canonicalize_header(Canonicalization::Relaxed, "Subject: Grüße  aus\r\n"),
            "subject:Grüße aus\r\n");
}

TEST(DkimCanonicalization, ParseTag) {
  auto both = parse_canonicalization("relaxed/relaxed");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->header, Canonicalization::Relaxed);
  EXPECT_EQ(both->body, Canonicalization::Relaxed);
  auto one = parse_canonicalization("relaxed");  // §3.5: body defaults to simple
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->header, Canonicalization::Relaxed);
  EXPECT_EQ(one->body, Canonicalization::Simple);
  EXPECT_EQ(to_string(*one), "relaxed/simple");
  EXPECT_FALSE(parse_canonicalization("relaxed/nowsp").ok());
  EXPECT_FALSE(parse_canonicalization("").ok());
}

}  // namespace
}  // namespace stampd::auth
