// Signer: RFC 8463 Appendix A reproduced byte for byte (b= and bh= of both
// signatures, and the exact header-hash input), header selection and
// oversigning, folding to 78 columns, several signatures sharing body
// hashes, and option checks.
#include "auth/dkim/signer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "auth/dkim/base64.h"
#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/header_hash.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/keys.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/signature.h"
#include "auth/dkim/tag_list.h"
#include "auth/dkim/verifier.h"
#include "tests/support/dkim_corpus.h"
#include "tests/support/dkim_signing.h"

namespace stampd::auth {
namespace {

using test::read_test_file;
using test::sign_message;

constexpr std::int64_t kRfcTime = 1528637909;
constexpr std::int64_t kNow = 1772445600;  // 2026-03-02

std::shared_ptr<const PrivateKey> load_key(const std::string& file) {
  auto key = load_private_key_pem(read_test_file(file));
  if (!key.ok()) throw std::runtime_error(key.error().message());
  return std::make_shared<const PrivateKey>(std::move(key).value());
}

HeaderBlock parse_header(const std::string& message) {
  auto block = HeaderBlock::parse(std::string(split_message(message).header));
  if (!block.ok()) throw std::runtime_error(block.error().message());
  return std::move(block).value();
}

std::string tag_value(const std::string& field, const std::string& name) {
  auto tags = parse_tag_list(std::string_view(field).substr(field.find(':') + 1));
  if (!tags.ok()) return "<parse error>";
  const Tag* t = find_tag(*tags, name);
  return t == nullptr ? "<absent>" : remove_fws(t->value);
}

std::vector<std::string> lines_of(const std::string& field) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < field.size()) {
    const auto eol = field.find("\r\n", pos);
    out.push_back(field.substr(pos, eol - pos));
    pos = eol + 2;
  }
  return out;
}

SignOptions rfc8463_options() {
  SignOptions o;
  o.canonicalization = {Canonicalization::Relaxed, Canonicalization::Relaxed};
  o.timestamp = kRfcTime;
  o.identity = "@football.example.com";
  o.explicit_headers = {"from", "to", "subject", "date", "message-id", "from", "subject", "date"};
  o.header_list_style = HeaderListStyle::Spaced;
  o.query_method = true;
  return o;
}

struct Rfc8463Case {
  const char* key_file;
  const char* selector;
  const char* hash_input_file;
  const char* b;
};

TEST(DkimSigner, ReproducesRfc8463AppendixAByteForByte) {
  const std::string message = read_test_file("dkim/rfc8463/message-unsigned.eml");
  const HeaderBlock block = parse_header(message);
  const Sha256Digest bh = body_hash(Canonicalization::Relaxed, split_message(message).body);
  const Rfc8463Case cases[] = {
      {"dkim/rfc8463/ed25519.private.pkcs8.pem", "brisbane",
       "dkim/rfc8463/ed25519.header-hash-input.bin",
       "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw=="},
      {"dkim/rfc8463/rsa.private.pkcs1.pem", "test", "dkim/rfc8463/rsa.header-hash-input.bin",
       "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+"
       "FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2"
       "JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8="},
  };
  for (const auto& c : cases) {
    const SigningKey key{"football.example.com", c.selector, load_key(c.key_file)};
    auto field = sign_header_block(block, bh, key, rfc8463_options());
    ASSERT_TRUE(field.ok()) << field.error().message();
    EXPECT_EQ(tag_value(*field, "bh"), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
    EXPECT_EQ(tag_value(*field, "b"), c.b) << c.selector << "\n" << *field;
    // The bytes we hashed are the published header-hash input exactly.
    auto parsed = parse_signature(*field);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    EXPECT_EQ(header_hash_input(block, parsed->headers, Canonicalization::Relaxed,
                                parsed->field_without_b),
              read_test_file(c.hash_input_file));
    for (const auto& line : lines_of(*field))
      EXPECT_LE(line.size(), kMaxSignatureLineLength) << line;
  }
}

TEST(DkimSigner, Ed25519WithoutPrehashWouldDiffer) {
  // The pitfall of RFC 8463 §3: signing the header data itself instead of
  // its SHA-256 digest gives another (wrong) b=. sign_digest gets the digest.
  const std::string input = read_test_file("dkim/rfc8463/ed25519.header-hash-input.bin");
  const auto key = load_key("dkim/rfc8463/ed25519.private.pkcs8.pem");
  auto sig = key->sign_digest(sha256(input));
  ASSERT_TRUE(sig.ok());
  EXPECT_EQ(
      base64_encode(*sig),
      "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==");
}

TEST(DkimSigner, DefaultHeaderSelectionAndOversigning) {
  const HeaderBlock block = parse_header(
      "Received: x\r\nFrom: a@example.com\r\nTo: b@example.net\r\nTo: c@example.net\r\nSubject: "
      "s\r\n"
      "Date: d\r\nX-Other: o\r\nMIME-Version: 1.0\r\n\r\n");
  const auto names = select_signed_headers(block, HeaderPolicy{});
  auto count = [&](const std::string& n) { return std::count(names.begin(), names.end(), n); };
  EXPECT_EQ(count("from"), 2);  // signed + oversigned
  EXPECT_EQ(count("to"), 3);    // two present + one oversign
  EXPECT_EQ(count("subject"), 2);
  EXPECT_EQ(count("date"), 2);
  EXPECT_EQ(count("mime-version"), 2);
  EXPECT_EQ(count("received"), 0);  // not in the sign list
  EXPECT_EQ(count("x-other"), 0);
  EXPECT_EQ(count("reply-to"), 0);  // absent, and absent names are not oversigned by default
  EXPECT_EQ(names.front(), "from");

  HeaderPolicy absent;
  absent.oversign_absent = true;
  const auto with_absent = select_signed_headers(block, absent);
  EXPECT_EQ(std::count(with_absent.begin(), with_absent.end(), "reply-to"), 1);

  // From is signed and oversigned whatever the lists say.
  HeaderPolicy empty;
  empty.sign = {"Subject"};
  empty.oversign = {};
  const auto minimal = select_signed_headers(block, empty);
  EXPECT_EQ(minimal, (std::vector<std::string>{"subject", "from", "from"}));
  // Names are case-insensitive; a name given twice counts once.
  HeaderPolicy odd;
  odd.sign = {"TO", "to", "SUBJECT"};
  odd.oversign = {"TO"};
  EXPECT_EQ(select_signed_headers(block, odd),
            (std::vector<std::string>{"to", "to", "subject", "from", "from", "to"}));
}

TEST(DkimSigner, OversigningBreaksTheSignatureWhenAFromIsAdded) {
  const std::string message = read_test_file("dkim/rfc8463/message-unsigned.eml");
  auto key = generate_private_key(KeyAlgorithm::Ed25519);
  ASSERT_TRUE(key.ok());
  KeyRecord record;
  record.type = KeyType::Ed25519;
  record.key = key->public_key();
  const SigningKey sk{"football.example.com", "s", std::make_shared<const PrivateKey>(*key)};
  const std::string evil = "From: Evil <evil@attacker.example>\r\n";

  SignOptions oversigned;
  oversigned.timestamp = kNow;
  auto a = sign_message(message, std::span<const SigningKey>(&sk, 1), oversigned);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(verify_message_with_key(*a, record, {kNow})[0].status, VerifyStatus::Pass);
  // A second From added above the signature: with oversigning it fails.
  const auto broken = verify_message_with_key(evil + *a, record, {kNow});
  EXPECT_EQ(broken[0].status, VerifyStatus::Fail);
  EXPECT_EQ(broken[0].reason, "signature mismatch");

  // Without oversigning the added From would go unnoticed (h= picks the
  // bottom-most From, which is unchanged): that is why we oversign.
  SignOptions plain = oversigned;
  plain.explicit_headers = {"from", "to", "subject", "date", "message-id"};
  auto b = sign_message(message, std::span<const SigningKey>(&sk, 1), plain);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(verify_message_with_key(evil + *b, record, {kNow})[0].status, VerifyStatus::Pass);
}

TEST(DkimSigner, FoldsTo78ColumnsAndKeepsTagsReadable) {
  const std::string message = read_test_file("dkim-corpus/35-many-x-headers.eml");
  const HeaderBlock block = parse_header(message);
  auto key = generate_private_key(KeyAlgorithm::Rsa2048);
  ASSERT_TRUE(key.ok());
  SignOptions o;
  o.timestamp = kNow;
  o.expiration = kNow + 86400 * 7;
  o.identity = "postmaster@mail.a-rather-long-signing-domain-name.example.com";
  for (int i = 0; i < 40; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "X-Custom-%02d", i);
    o.headers.sign.emplace_back(name);
  }
  const SigningKey sk{"a-rather-long-signing-domain-name.example.com", "selector-2026-03-rsa",
                      std::make_shared<const PrivateKey>(*key)};
  const Sha256Digest bh = body_hash(Canonicalization::Relaxed, split_message(message).body);
  auto field = sign_header_block(block, bh, sk, o);
  ASSERT_TRUE(field.ok()) << field.error().message();
  ASSERT_EQ(field->rfind("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 0), 0u) << *field;
  ASSERT_EQ(field->substr(field->size() - 2), "\r\n");
  const auto lines = lines_of(*field);
  EXPECT_GT(lines.size(), 5u);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), kMaxSignatureLineLength) << lines[i];
    if (i > 0) {
      EXPECT_EQ(lines[i][0], ' ') << lines[i];
    }
  }
  // Every tag once, in the documented order, and never l=.
  std::vector<std::string> order;
  auto tags = parse_tag_list(std::string_view(*field).substr(15));
  ASSERT_TRUE(tags.ok());
  for (const auto& t : *tags) order.push_back(t.name);
  EXPECT_EQ(order,
            (std::vector<std::string>{"v", "a", "c", "d", "i", "s", "t", "x", "h", "bh", "b"}));
  EXPECT_EQ(tag_value(*field, "x"), std::to_string(kNow + 86400 * 7));
  EXPECT_EQ(tag_value(*field, "i"), *o.identity);
  // bh= is on one line, b= starts a line.
  const auto bh_line = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.find(" bh=") != std::string::npos;
  });
  ASSERT_NE(bh_line, lines.end());
  EXPECT_NE(bh_line->find("bh=" + tag_value(*field, "bh") + ";"), std::string::npos);
  EXPECT_NE(field->find("\r\n b="), std::string::npos);

  KeyRecord record;
  record.key = key->public_key();
  const auto results = verify_message_with_key(*field + message, record, {kNow});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, VerifyStatus::Pass) << results[0].reason;
}

TEST(DkimSigner, SeveralSignaturesShareOneBodyPassPerCanonicalization) {
  const std::string message = read_test_file("dkim-corpus/06-whitespace-runs.eml");
  const SplitMessage parts = split_message(message);
  const HeaderBlock block = parse_header(message);
  auto rsa = generate_private_key(KeyAlgorithm::Rsa2048);
  auto ed = generate_private_key(KeyAlgorithm::Ed25519);
  ASSERT_TRUE(rsa.ok() && ed.ok());
  struct Sig {
    SigningKey key;
    CanonicalizationPair canon;
  };
  const std::vector<Sig> sigs = {
      {{"example.com", "rsa", std::make_shared<const PrivateKey>(*rsa)},
       {Canonicalization::Relaxed, Canonicalization::Relaxed}},
      {{"example.com", "ed", std::make_shared<const PrivateKey>(*ed)},
       {Canonicalization::Relaxed, Canonicalization::Relaxed}},
      {{"relay.example.net", "rsa", std::make_shared<const PrivateKey>(*rsa)},
       {Canonicalization::Simple, Canonicalization::Simple}},
  };
  // The proxy's way: one BodyHashSet fed chunk by chunk.
  BodyHashSet hashes;
  for (const auto& s : sigs) hashes.add(s.canon.body);
  for (std::size_t pos = 0; pos < parts.body.size(); pos += 5)
    hashes.update(parts.body.substr(pos, 5));
  hashes.finish();
  std::string fields;
  for (const auto& s : sigs) {
    SignOptions o;
    o.timestamp = kNow;
    o.canonicalization = s.canon;
    auto f = sign_header_block(block, *hashes.digest(s.canon.body), s.key, o);
    ASSERT_TRUE(f.ok()) << f.error().message();
    fields += *f;
  }
  const std::string signed_message = fields + message;
  const KeyLookupFunction keys = [&](const std::string& domain, const std::string& selector) {
    KeyLookup k;
    k.record = KeyRecord{};
    k.record->type = selector == "ed" ? KeyType::Ed25519 : KeyType::Rsa;
    k.record->key = selector == "ed" ? ed->public_key() : rsa->public_key();
    (void)domain;
    return k;
  };
  const auto results = verify_message_with_lookup(signed_message, keys, {kNow});
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results)
    EXPECT_EQ(r.status, VerifyStatus::Pass) << r.domain << " " << r.selector << ": " << r.reason;
}

TEST(DkimSigner, RejectsBadOptions) {
  const HeaderBlock block = parse_header("From: a@example.com\r\n\r\n");
  const SigningKey key{"example.com", "s", load_key("dkim/rfc8463/ed25519.private.pkcs8.pem")};
  const Sha256Digest bh{};
  auto expect_error = [&](SignOptions o, const SigningKey& k, const std::string& part) {
    auto r = sign_header_block(block, bh, k, o);
    ASSERT_FALSE(r.ok()) << part;
    EXPECT_NE(r.error().detail.find(part), std::string::npos) << r.error().detail;
  };
  SignOptions o;
  o.timestamp = 100;
  SignOptions bad_i = o;
  bad_i.identity = "user@other.example";
  expect_error(bad_i, key, "i=");
  SignOptions bad_x = o;
  bad_x.expiration = 100;
  expect_error(bad_x, key, "x=");
  SignOptions no_from = o;
  no_from.explicit_headers = {"subject"};
  expect_error(no_from, key, "from");
  expect_error(o, SigningKey{"example.com", "", key.key}, "selector");
  expect_error(o, SigningKey{"exa mple.com", "s", key.key}, "domain");
  expect_error(o, SigningKey{"example.com", "s", nullptr}, "private key");
  SignOptions sub_i = o;
  sub_i.identity = "user@sub.example.com";  // a subdomain of d= is fine
  EXPECT_TRUE(sign_header_block(block, bh, key, sub_i).ok());
}

}  // namespace
}  // namespace stampd::auth
