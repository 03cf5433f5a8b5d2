// MessageSigner, the one signing path of the proxy and `stampd sign`: the
// rule picked by the From address, every reason not to sign with its label,
// t=, x= and i=, fail-closed against send-unsigned, and the same fields
// whether the message comes whole or in chunks cut anywhere (split by
// HeaderSplitter, as the proxy's MessageAssembler feeds it).
#include "auth/dkim/message_signer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "auth/dkim/message_splitter.h"
#include "auth/dkim/verifier.h"
#include "tests/support/dkim_corpus.h"

namespace stampd::auth {
namespace {

using test::read_test_file;

constexpr std::int64_t kNow = 1772445600;

KeySpec key_spec(const std::string& name, const std::string& domain, const std::string& selector,
                 const std::string& pem_file) {
  KeySpec k;
  k.name = name;
  k.domain = domain;
  k.selector = selector;
  k.private_key_pem = pem_file.empty()
                          ? "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
                          : read_test_file(pem_file);
  k.origin = "test:" + name;
  return k;
}

SigningRule rule(const std::string& from, std::vector<std::string> keys,
                 OnError on_error = OnError::FailClosed) {
  SigningRule r;
  r.from = *FromPattern::parse(from);
  r.keys = std::move(keys);
  r.on_error = on_error;
  r.origin = "rules:" + from;
  return r;
}

// keyring holds an Ed25519 and an RSA key for example.com, a relay domain's
// key, a key that did not load and one whose d= cannot be signed with.
std::shared_ptr<const SigningKeys> keyring(std::vector<SigningRule> rules) {
  const std::string ed = "dkim/rfc8463/ed25519.private.pkcs8.pem";
  KeyringOptions keep;
  keep.keep_broken_keys = true;
  auto ring = SigningKeys::build(
      {key_spec("ed", "example.com", "ed2026", ed),
       key_spec("rsa", "example.com", "rsa2026", "dkim/rfc8463/rsa.private.pkcs8.pem"),
       key_spec("relay", "relay.example.org", "relay", ed),
       key_spec("broken", "example.org", "x", ""), key_spec("bad-domain", "bad domain", "s", ed)},
      std::move(rules), keep);
  EXPECT_TRUE(ring.ok()) << ring.error().message();
  return *ring;
}

std::shared_ptr<const SignerSettings> settings(std::chrono::seconds lifetime = {}) {
  auto s = std::make_shared<SignerSettings>();
  s->signature_lifetime = lifetime;
  return s;
}

SigningOutcome sign_whole(const std::shared_ptr<const SigningKeys>& ring,
                          const std::shared_ptr<const SignerSettings>& s,
                          std::string_view message) {
  MessageSigner signer(ring, s);
  const SplitMessage parts = split_message(message);
  signer.header(parts.header, kNow);
  signer.body(parts.body);
  return signer.finish(kNow);
}

// sign_in_chunks feeds message cut at each of cuts, the way the proxy does.
SigningOutcome sign_in_chunks(const std::shared_ptr<const SigningKeys>& ring,
                              const std::shared_ptr<const SignerSettings>& s,
                              std::string_view message, std::vector<std::size_t> cuts) {
  MessageSigner signer(ring, s);
  HeaderSplitter splitter;
  std::size_t pos = 0;
  cuts.push_back(message.size());
  for (std::size_t cut : cuts) {
    cut = std::min(cut, message.size());
    if (cut < pos) continue;
    const bool in_header = !splitter.header_complete();
    auto body = splitter.feed(message.substr(pos, cut - pos));
    EXPECT_TRUE(body.ok());
    if (in_header && splitter.header_complete()) signer.header(splitter.header(), kNow);
    signer.body(*body);
    pos = cut;
  }
  if (!splitter.header_complete()) {
    EXPECT_TRUE(splitter.finish().ok());
    signer.header(splitter.header(), kNow);
  }
  return signer.finish(kNow);
}

std::vector<std::string> fields(const SigningOutcome& out) {
  std::vector<std::string> f;
  for (const auto& s : out.signatures) f.push_back(s.field);
  return f;
}

std::vector<SignatureResult> verify(const SigningKeys& ring, const SigningOutcome& out,
                                    const std::string& message) {
  std::string signed_message;
  for (const auto& s : out.signatures) signed_message += s.field;
  signed_message += message;
  const KeyLookupFunction lookup = [&](const std::string& domain, const std::string& selector) {
    KeyLookup found;
    for (const auto& k : ring.keys()) {
      if (k.signing_key && k.spec.domain == domain && k.spec.selector == selector) {
        const auto& key = *k.signing_key->key;
        found.record = KeyRecord{key.type(), key.public_key(), false, false, {}};
      }
    }
    return found;
  };
  return verify_message_with_lookup(signed_message, lookup, {kNow});
}

TEST(DkimMessageSigner, SignsWithEachKeyOfTheRule) {
  const auto ring = keyring({rule("*@example.com", {"rsa", "ed"})});
  const std::string message = read_test_file("dkim-corpus/01-plain-text.eml");
  const SigningOutcome out = sign_whole(ring, settings(), message);
  ASSERT_TRUE(out.is_signed()) << out.detail;
  ASSERT_EQ(out.signatures.size(), 2u);
  EXPECT_EQ(out.signatures[0].key->spec.name, "rsa");
  EXPECT_EQ(out.signatures[1].key->spec.name, "ed");
  EXPECT_EQ(out.rule, &ring->rules()[0]);
  for (const auto& s : out.signatures) {
    EXPECT_EQ(s.field.rfind("DKIM-Signature:", 0), 0u);
    EXPECT_NE(s.field.find("t=" + std::to_string(kNow) + ";"), std::string::npos) << s.field;
    EXPECT_EQ(s.field.find("x="), std::string::npos) << s.field;
    EXPECT_EQ(s.field.find("i="), std::string::npos) << s.field;
  }
  const auto results = verify(*ring, out, message);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].algorithm, "rsa-sha256");
  EXPECT_EQ(results[1].algorithm, "ed25519-sha256");
  for (const auto& r : results) EXPECT_EQ(r.status, VerifyStatus::Pass) << r.reason;
}

TEST(DkimMessageSigner, ExpirationAndIdentity) {
  // "%" is the From domain, in the key name and in i=; i= goes only on the
  // signatures whose d= covers it.
  auto ours = rule("*@example.com", {"ed", "relay"});
  ours.identity = "postmaster@%";
  const auto ring = keyring({ours});
  const std::string message = "From: x@example.com\r\nSubject: s\r\n\r\nhi\r\n";
  const SigningOutcome out = sign_whole(ring, settings(std::chrono::hours(1)), message);
  ASSERT_TRUE(out.is_signed()) << out.detail;
  ASSERT_EQ(out.signatures.size(), 2u);
  const std::string x = "x=" + std::to_string(kNow + 3600) + ";";
  EXPECT_NE(out.signatures[0].field.find(x), std::string::npos) << out.signatures[0].field;
  EXPECT_NE(out.signatures[1].field.find(x), std::string::npos) << out.signatures[1].field;
  EXPECT_NE(out.signatures[0].field.find("i=postmaster@example.com;"), std::string::npos);
  EXPECT_EQ(out.signatures[1].field.find("i="), std::string::npos) << out.signatures[1].field;
  for (const auto& r : verify(*ring, out, message)) {
    EXPECT_EQ(r.status, VerifyStatus::Pass) << r.reason;
  }
}

TEST(DkimMessageSigner, ReasonsToRelayUnsigned) {
  const auto ring = keyring({rule("*@example.com", {"ed"})});
  struct Case {
    std::string message;
    NotSigned reason;
    std::string label;
    std::string detail;
  };
  const std::vector<Case> cases = {
      {"Subject: s\r\n\r\nbody\r\n", NotSigned::NoFrom, "no-from", "no From field"},
      {"From: a@example.com\r\nFrom: b@example.com\r\n\r\nx\r\n", NotSigned::SeveralFrom,
       "several-from", "more than one From field"},
      {"From: a@example.com, b@example.com\r\n\r\nx\r\n", NotSigned::BadFrom, "bad-from",
       "From holds 2 addresses"},
      {"From: a@example.com\r\nnot a header\r\n\r\nx\r\n", NotSigned::MalformedHeader,
       "malformed-header", "malformed header: header line 2: no colon in header field"},
      {"From: a@example.net\r\n\r\nx\r\n", NotSigned::NoRule, "no-rule",
       "no signing rule for the From domain example.net"},
      {"\r\nno header at all\r\n", NotSigned::NoFrom, "no-from", "no From field"},
  };
  for (const auto& c : cases) {
    const SigningOutcome out = sign_whole(ring, settings(), c.message);
    EXPECT_FALSE(out.is_signed()) << c.message;
    EXPECT_EQ(out.not_signed, c.reason) << c.message;
    EXPECT_STREQ(to_string(*out.not_signed), c.label.c_str());
    EXPECT_EQ(out.detail, c.detail);
    EXPECT_FALSE(out.failed());
    EXPECT_FALSE(out.fail_closed());
    EXPECT_TRUE(out.signatures.empty());
  }
  MessageSigner no_header(ring, settings());
  const SigningOutcome out = no_header.finish(kNow);
  EXPECT_EQ(out.not_signed, NotSigned::MalformedHeader);
  EXPECT_EQ(out.detail, "no header block");
}

TEST(DkimMessageSigner, RuleThatCannotSignFollowsItsOnError) {
  const auto ring = keyring({rule("*@example.org", {"broken"}),
                             rule("*@*.example.org", {"broken"}, OnError::SendUnsigned),
                             rule("*@example.com", {"ed", "bad-domain"})});
  const SigningOutcome closed = sign_whole(ring, settings(), "From: a@example.org\r\n\r\nx\r\n");
  EXPECT_EQ(closed.not_signed, NotSigned::KeyUnavailable);
  EXPECT_STREQ(to_string(*closed.not_signed), "key-unavailable");
  EXPECT_TRUE(closed.failed());
  EXPECT_TRUE(closed.fail_closed());
  ASSERT_NE(closed.rule, nullptr);
  EXPECT_EQ(closed.rule->origin, "rules:*@example.org");
  EXPECT_NE(closed.detail.find("broken"), std::string::npos) << closed.detail;

  const SigningOutcome open = sign_whole(ring, settings(), "From: a@sub.example.org\r\n\r\nx\r\n");
  EXPECT_EQ(open.not_signed, NotSigned::KeyUnavailable);
  EXPECT_TRUE(open.failed());
  EXPECT_FALSE(open.fail_closed());

  // The first key signs, the second cannot: no signature at all.
  const SigningOutcome error = sign_whole(ring, settings(), "From: a@example.com\r\n\r\nx\r\n");
  EXPECT_EQ(error.not_signed, NotSigned::SigningError);
  EXPECT_STREQ(to_string(*error.not_signed), "signing-error");
  EXPECT_TRUE(error.fail_closed());
  EXPECT_TRUE(error.signatures.empty());
  EXPECT_EQ(error.detail.rfind("bad-domain: ", 0), 0u) << error.detail;
}

TEST(DkimMessageSigner, SameFieldsWholeOrInChunks) {
  const auto ring = keyring({rule("*@example.com", {"ed", "rsa"})});
  const auto s = settings(std::chrono::hours(24));
  const std::string small =
      "From: <a@example.com>\r\nSubject:  two  spaces\r\n\r\n.dot\r\n\r\nend  \r\n\r\n";
  const auto want = fields(sign_whole(ring, s, small));
  ASSERT_EQ(want.size(), 2u);
  for (std::size_t i = 0; i <= small.size(); ++i) {
    for (std::size_t j = i; j <= small.size(); j += 5) {
      ASSERT_EQ(fields(sign_in_chunks(ring, s, small, {i, j})), want) << i << "," << j;
    }
  }
  for (const auto& [name, message] : test::committed_corpus_messages()) {
    if (message.find("@example.com") == std::string::npos) continue;
    const SigningOutcome whole = sign_whole(ring, s, message);
    const SigningOutcome chunked = sign_in_chunks(ring, s, message, {1, 7, 100, 1000});
    EXPECT_EQ(whole.not_signed, chunked.not_signed) << name;
    EXPECT_EQ(fields(whole), fields(chunked)) << name;
  }
}

}  // namespace
}  // namespace stampd::auth
