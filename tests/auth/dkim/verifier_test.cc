// Verifier: the RFC 8463 and RFC 6376 (errata applied) examples verify
// through the resolver interface; tampering, revoked and missing keys, DNS
// failures, expiry, l=, malformed signatures and key flags give the right
// status and reason.
#include "auth/dkim/verifier.h"

#include <gtest/gtest.h>

#include "auth/dkim/base64.h"
#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/header_hash.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/signature.h"
#include "tests/support/dkim_corpus.h"
#include "tests/support/dkim_fake_resolver.h"
#include "tests/support/dkim_signing.h"
#include "tests/support/run_coroutine.h"

namespace stampd::auth {
namespace {

using test::read_test_file;
using test::sign_message;

constexpr std::int64_t kNow = 1772445600;

std::string trimmed(const std::string& file) {
  std::string s = read_test_file(file);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

test::DkimFakeResolver rfc8463_dns() {
  test::DkimFakeResolver dns;
  dns.add_txt("brisbane._domainkey.football.example.com",
              trimmed("dkim/rfc8463/brisbane._domainkey.football.example.com.txt"));
  dns.add_txt("test._domainkey.football.example.com",
              trimmed("dkim/rfc8463/test._domainkey.football.example.com.txt"));
  return dns;
}

std::vector<SignatureResult> verify(std::string message, net::Resolver& dns,
                                    std::int64_t now = kNow) {
  return test::run_coroutine<std::vector<SignatureResult>>(
      [&](boost::asio::io_context&) { return verify_message(message, dns, VerifyOptions{now}); });
}

void replace(std::string& s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  ASSERT_NE(pos, std::string::npos) << from;
  s.replace(pos, from.size(), to);
}

TEST(DkimVerifier, Rfc8463SignedMessagePassesBoth) {
  auto dns = rfc8463_dns();
  const auto results = verify(read_test_file("dkim/rfc8463/message-signed.eml"), dns);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, VerifyStatus::Pass) << results[0].reason;
  EXPECT_EQ(results[0].algorithm, "ed25519-sha256");
  EXPECT_EQ(results[0].selector, "brisbane");
  EXPECT_EQ(results[1].status, VerifyStatus::Pass) << results[1].reason;
  EXPECT_EQ(results[1].algorithm, "rsa-sha256");
  EXPECT_EQ(results[1].domain, "football.example.com");
  EXPECT_EQ(results[1].identity, "@football.example.com");
  EXPECT_EQ(dns.queries(), 2);
}

TEST(DkimVerifier, Rfc6376AppendixAWithErrataVerifies) {
  test::DkimFakeResolver dns;
  dns.add_txt("brisbane._domainkey.example.com",
              trimmed("dkim/rfc6376/brisbane._domainkey.example.com.txt"));
  const auto ok = verify(read_test_file("dkim/rfc6376/appendix-a-signed-errata-applied.eml"), dns);
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].status, VerifyStatus::Pass) << ok[0].reason;
  // As printed (erratum 3192 not applied) the body hash does not match.
  const auto bad =
      verify(read_test_file("dkim/rfc6376/appendix-a-signed-with-double-space.eml"), dns);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].status, VerifyStatus::Fail);
  EXPECT_EQ(bad[0].reason, "body hash mismatch");
}

TEST(DkimVerifier, TamperedHeaderOrBodyFailsWithTheRightReason) {
  auto dns = rfc8463_dns();
  std::string body = read_test_file("dkim/rfc8463/message-signed.eml");
  replace(body, "We lost the game.", "We won the game.");
  for (const auto& r : verify(body, dns)) {
    EXPECT_EQ(r.status, VerifyStatus::Fail);
    EXPECT_EQ(r.reason, "body hash mismatch");
  }
  std::string header = read_test_file("dkim/rfc8463/message-signed.eml");
  replace(header, "Subject: Is dinner ready?", "Subject: Is lunch ready?");
  for (const auto& r : verify(header, dns)) {
    EXPECT_EQ(r.status, VerifyStatus::Fail);
    EXPECT_EQ(r.reason, "signature mismatch");
  }
  std::string sig = read_test_file("dkim/rfc8463/message-signed.eml");
  replace(sig, "t=1528637909", "t=1528637910");
  const auto edited = verify(sig, dns);  // only the first signature's t= changed
  EXPECT_EQ(edited[0].reason, "signature mismatch");
  EXPECT_EQ(edited[1].status, VerifyStatus::Pass);
  // Relaxed canonicalization tolerates re-folding and whitespace changes.
  std::string refolded = read_test_file("dkim/rfc8463/message-signed.eml");
  replace(refolded, "Subject: Is dinner ready?", "Subject:   Is dinner\r\n\tready?  ");
  replace(refolded, "We lost the game.  Are", "We lost the game.\t Are");
  for (const auto& r : verify(refolded, dns)) EXPECT_EQ(r.status, VerifyStatus::Pass) << r.reason;
}

TEST(DkimVerifier, KeyProblems) {
  const std::string message = read_test_file("dkim/rfc8463/message-signed.eml");
  test::DkimFakeResolver dns;
  dns.add_txt("brisbane._domainkey.football.example.com", "v=DKIM1; k=ed25519; p=");  // revoked
  dns.fail("test._domainkey.football.example.com", net::DnsStatus::ServFail);
  auto results = verify(message, dns);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, VerifyStatus::Fail);
  EXPECT_EQ(results[0].reason, "key revoked");
  EXPECT_EQ(results[1].status, VerifyStatus::TempError);
  EXPECT_NE(results[1].reason.find("servfail"), std::string::npos) << results[1].reason;

  test::DkimFakeResolver empty;  // NXDOMAIN for everything
  for (const auto& r : verify(message, empty)) {
    EXPECT_EQ(r.status, VerifyStatus::PermError);
    EXPECT_EQ(r.reason, "no key record");
  }

  test::DkimFakeResolver timeout;
  timeout.fail("brisbane._domainkey.football.example.com", net::DnsStatus::Timeout);
  EXPECT_EQ(verify(message, timeout)[0].status, VerifyStatus::TempError);

  test::DkimFakeResolver swapped;  // rsa key where ed25519 is expected, and junk
  swapped.add_txt("brisbane._domainkey.football.example.com",
                  trimmed("dkim/rfc8463/test._domainkey.football.example.com.txt"));
  swapped.add_txt("test._domainkey.football.example.com", "v=DKIM1; k=rsa; p=bm9wZQ==");
  results = verify(message, swapped);
  EXPECT_EQ(results[0].status, VerifyStatus::PermError);
  EXPECT_NE(results[0].reason.find("does not match"), std::string::npos) << results[0].reason;
  EXPECT_EQ(results[1].status, VerifyStatus::PermError);
  EXPECT_NE(results[1].reason.find("malformed key record"), std::string::npos) << results[1].reason;

  // Of several records, the first that parses is used.
  test::DkimFakeResolver several;
  several.add_txt("brisbane._domainkey.football.example.com", "not a key record");
  several.add_txt("brisbane._domainkey.football.example.com",
                  trimmed("dkim/rfc8463/brisbane._domainkey.football.example.com.txt"));
  EXPECT_EQ(verify(message, several)[0].status, VerifyStatus::Pass);
}

TEST(DkimVerifier, KeyFlagsAndSize) {
  const std::string message = read_test_file("dkim/rfc8463/message-signed.eml");
  auto tampered = message;
  replace(tampered, "Joe.", "Jim.");
  test::DkimFakeResolver testing;
  testing.add_txt("brisbane._domainkey.football.example.com",
                  "v=DKIM1; k=ed25519; t=y; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  EXPECT_EQ(verify(message, testing)[0].status, VerifyStatus::Pass);
  const auto neutral = verify(tampered, testing)[0];
  EXPECT_EQ(neutral.status, VerifyStatus::Neutral);
  EXPECT_NE(neutral.reason.find("testing"), std::string::npos);

  // RSA keys below the verifier's minimum never pass.
  auto dns = rfc8463_dns();
  const auto strict =
      test::run_coroutine<std::vector<SignatureResult>>([&](boost::asio::io_context&) {
        return verify_message(message, dns, VerifyOptions{kNow, 2048});
      });
  EXPECT_EQ(strict[1].status, VerifyStatus::PermError);
  EXPECT_NE(strict[1].reason.find("too small"), std::string::npos);

  // t=s: i= must be exactly d=.
  auto key = generate_private_key(KeyAlgorithm::Ed25519);
  ASSERT_TRUE(key.ok());
  const SigningKey sk{"example.com", "s", std::make_shared<const PrivateKey>(*key)};
  SignOptions o;
  o.timestamp = kNow;
  o.identity = "user@sub.example.com";
  auto signed_message =
      sign_message(read_test_file("dkim-corpus/01-plain-text.eml"), std::span(&sk, 1), o);
  ASSERT_TRUE(signed_message.ok());
  test::DkimFakeResolver s_flag;
  s_flag.add_txt("s._domainkey.example.com", make_key_record(key->public_key()) + "; t=s");
  const auto r = verify(*signed_message, s_flag)[0];
  EXPECT_EQ(r.status, VerifyStatus::PermError);
  EXPECT_NE(r.reason.find("t=s"), std::string::npos) << r.reason;
}

TEST(DkimVerifier, ExpiryAndBodyLength) {
  auto key = generate_private_key(KeyAlgorithm::Ed25519);
  ASSERT_TRUE(key.ok());
  KeyRecord record;
  record.type = KeyType::Ed25519;
  record.key = key->public_key();
  const SigningKey sk{"example.com", "s", std::make_shared<const PrivateKey>(*key)};
  const std::string message = read_test_file("dkim-corpus/01-plain-text.eml");

  SignOptions o;
  o.timestamp = kNow;
  o.expiration = kNow + 3600;
  auto signed_message = sign_message(message, std::span(&sk, 1), o);
  ASSERT_TRUE(signed_message.ok());
  EXPECT_EQ(verify_message_with_key(*signed_message, record, {kNow + 3600})[0].status,
            VerifyStatus::Pass);
  const auto expired = verify_message_with_key(*signed_message, record, {kNow + 3601})[0];
  EXPECT_EQ(expired.status, VerifyStatus::Fail);
  EXPECT_EQ(expired.reason, "signature expired");

  // t= ahead of the verifier's clock: within the drift allowance it passes,
  // beyond it the signature fails (§3.5).
  EXPECT_EQ(verify_message_with_key(*signed_message, record, {kNow - 300})[0].status,
            VerifyStatus::Pass);
  const auto future = verify_message_with_key(*signed_message, record, {kNow - 301})[0];
  EXPECT_EQ(future.status, VerifyStatus::Fail);
  EXPECT_EQ(future.reason, "signature timestamp is in the future");

  // We never write l=, but honour it when verifying: a signature over the
  // first 20 canonical octets still passes after text is appended, and an
  // l= beyond the body is a permerror. The field is built by hand here.
  const std::string body = "Hello Bob,\r\n\r\nThis is a plain message.\r\n\r\nAlice\r\n";
  const std::string header =
      "From: Alice Example <alice@example.com>\r\nTo: Bob <bob@example.net>\r\nSubject: l=\r\n";
  auto sign_with_l = [&](const std::string& l) {
    const Sha256Digest bh = [&] {
      BodyHasher h(Canonicalization::Relaxed, std::stoull(l));
      h.update(body);
      return h.finish();
    }();
    std::string field =
        "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=s; l=" + l +
        "; h=from:to:subject; bh=" +
        base64_encode(std::string_view(reinterpret_cast<const char*>(bh.data()), bh.size())) +
        "; b=";
    auto block = HeaderBlock::parse(header);
    const Sha256Digest hh = header_hash(*block, std::vector<std::string>{"from", "to", "subject"},
                                        Canonicalization::Relaxed, field);
    return field + base64_encode(*key->sign_digest(hh)) + "\r\n";
  };
  const std::string field20 = sign_with_l("20");
  EXPECT_EQ(verify_message_with_key(field20 + header + "\r\n" + body, record, {kNow})[0].status,
            VerifyStatus::Pass);
  const auto appended = verify_message_with_key(
      field20 + header + "\r\n" + body + "P.S. added later\r\n", record, {kNow});
  EXPECT_EQ(appended[0].status, VerifyStatus::Pass) << appended[0].reason;
  const auto changed =
      verify_message_with_key(field20 + header + "\r\nHello Rob" + body.substr(9), record, {kNow});
  EXPECT_EQ(changed[0].reason, "body hash mismatch");
  const auto too_long =
      verify_message_with_key(sign_with_l("500") + header + "\r\n" + body, record, {kNow});
  EXPECT_EQ(too_long[0].status, VerifyStatus::PermError);
  EXPECT_EQ(too_long[0].reason, "l= is longer than the body");
}

TEST(DkimVerifier, MalformedSignatures) {
  const std::string base =
      "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from:to; "
      "bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\nFrom: a@example.com\r\n\r\n";
  struct Case {
    std::string from;
    std::string to;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"v=1; ", "", "missing required tag v="},
      {"v=1", "v=2", "unsupported version"},
      {"a=rsa-sha256", "a=rsa-sha1", "unsupported algorithm a=rsa-sha1"},
      {"h=from:to", "h=to:subject", "does not include from"},
      {"d=example.com; ", "", "missing required tag d="},
      {"bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "bh=AAAA", "not a SHA-256"},
      {"s=s;", "s=s; i=user@other.example;", "i= domain"},
      {"s=s;", "s=s; t=200; x=100;", "x= is before t="},
      {"s=s;", "s=s; s=t;", "duplicate tag"},
      {"s=s;", "s=s; q=http;", "query method"},
      {"s=s;", "s=s; c=fancy;", "canonicalization"},
      // Found by fuzz_dkim_signature: an '@' in d= made the default i=
      // ("@" + d=) name another domain than d=.
      {"d=example.com", "d=a.example=@other.example", "d= is not a domain name"},
      {"d=example.com", "d=exa mple.com", "d= is not a domain name"},
  };
  test::DkimFakeResolver dns;
  for (const auto& c : cases) {
    std::string m = base;
    replace(m, c.from, c.to);
    const auto results = verify(m, dns);
    ASSERT_EQ(results.size(), 1u) << c.reason;
    EXPECT_EQ(results[0].status, VerifyStatus::PermError) << c.reason;
    EXPECT_NE(results[0].reason.find(c.reason), std::string::npos)
        << "want " << c.reason << ", got " << results[0].reason;
  }
  EXPECT_EQ(dns.queries(), 0) << "malformed signatures must not cause key lookups";

  // A message without signatures has no results; a broken header one.
  EXPECT_TRUE(verify("From: a@example.com\r\n\r\nbody\r\n", dns).empty());
  const auto broken = verify("no colon here\r\n\r\nbody\r\n", dns);
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_EQ(broken[0].status, VerifyStatus::PermError);
}

TEST(DkimVerifier, OfflineKeyFromText) {
  auto record = parse_public_key_text(read_test_file("dkim/rfc8463/ed25519.public.pem"));
  ASSERT_TRUE(record.ok());
  const auto results =
      verify_message_with_key(read_test_file("dkim/rfc8463/message-signed.eml"), *record, {kNow});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status, VerifyStatus::Pass);
  // The same key offered for the rsa signature does not match its type.
  EXPECT_EQ(results[1].status, VerifyStatus::PermError);
}

// The streaming verifier gives what the whole-message one gives, however the
// message is cut: the RFC examples, tampered copies, l=, a header section
// without a body or a blank line, a broken header.
TEST(DkimVerifier, StreamingAgreesWithWholeMessage) {
  auto ed = parse_public_key_text(read_test_file("dkim/rfc8463/ed25519.public.pem"));
  ASSERT_TRUE(ed.ok());
  const std::string rfc8463 = read_test_file("dkim/rfc8463/message-signed.eml");
  std::string tampered_body = rfc8463;
  replace(tampered_body, "We lost the game.", "We won the game.");
  std::string tampered_header = rfc8463;
  replace(tampered_header, "Subject: Is dinner ready?", "Subject: Is lunch ready?");
  const std::string signature_field = rfc8463.substr(0, rfc8463.find("\r\nFrom:") + 2);
  const std::vector<std::string> messages = {
      rfc8463,
      tampered_body,
      tampered_header,
      read_test_file("dkim/rfc6376/appendix-a-signed-errata-applied.eml"),
      read_test_file("dkim/rfc6376/appendix-a-signed-with-double-space.eml"),
      signature_field + "From: a@example.com\r\n",  // no blank line, no body
      signature_field + "From: a@example.com\r\n\r\n",
      "no colon here\r\n\r\nbody\r\n",
      "From: a@example.com\r\n\r\nno signature\r\n",
  };
  const KeyLookupFunction lookup = [&](const std::string&, const std::string&) {
    return KeyLookup{*ed, VerifyStatus::Pass, {}};
  };
  for (const std::string& message : messages) {
    const auto whole = verify_message_with_lookup(message, lookup, {kNow});
    for (const std::size_t chunk : {1ul, 2ul, 3ul, 7ul, 64ul, 1000ul, message.size() + 1}) {
      MessageVerifier v({kNow});
      for (std::size_t pos = 0; pos < message.size(); pos += chunk) {
        v.update(std::string_view(message).substr(pos, chunk));
      }
      const auto streamed = v.finish(lookup);
      ASSERT_EQ(streamed.size(), whole.size()) << message.substr(0, 60) << " chunk " << chunk;
      for (std::size_t i = 0; i < whole.size(); ++i) {
        EXPECT_EQ(streamed[i].status, whole[i].status) << i << " chunk " << chunk;
        EXPECT_EQ(streamed[i].reason, whole[i].reason) << i << " chunk " << chunk;
        EXPECT_EQ(streamed[i].field_index, whole[i].field_index);
      }
    }
  }
  // The RFC 8463 message has an Ed25519 (pass) and an RSA signature (the
  // Ed25519 key does not fit it): a range picks either.
  MessageVerifier first({kNow}, MessageVerifier::FieldRange{0, 1});
  first.update(rfc8463);
  const auto only_first = first.finish(lookup);
  ASSERT_EQ(only_first.size(), 1u);
  EXPECT_EQ(only_first[0].status, VerifyStatus::Pass);
  MessageVerifier second({kNow}, MessageVerifier::FieldRange{1, 5});
  second.update(rfc8463);
  const auto only_second = second.finish(lookup);
  ASSERT_EQ(only_second.size(), 1u);
  EXPECT_EQ(only_second[0].status, VerifyStatus::PermError);
  EXPECT_EQ(only_second[0].field_index, 1u);
}

}  // namespace
}  // namespace stampd::auth
