// Robustness of the auth/ parsers against hostile bytes: DNS TXT records
// (SPF, DKIM keys, DMARC) and header fields come from strangers. Each parser gets
// thousands of mutated valid inputs (tests/support/mutator.h, fixed seeds);
// it must not crash (the ASan+UBSan build runs this too), must be
// deterministic, and what it accepts must keep the properties stated here.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "auth/arc/arc_verifier.h"
#include "auth/dkim/author.h"
#include "auth/dkim/base64.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/signature.h"
#include "auth/dkim/tag_list.h"
#include "auth/dkim/verifier.h"
#include "auth/dmarc/org_domain.h"
#include "auth/dmarc/record.h"
#include "auth/mail_address.h"
#include "auth/spf/macro.h"
#include "auth/spf/record.h"
#include "tests/support/dkim_corpus.h"
#include "tests/support/mutator.h"

namespace stampd::auth {
namespace {

constexpr int kRounds = 4000;

TEST(ParserRobustness, Base64RoundTripsAndRejectsGarbageSafely) {
  test::Mutator m(1);
  for (int i = 0; i < kRounds; ++i) {
    std::string bytes(m.below(300), '\0');
    for (auto& c : bytes) c = static_cast<char>(m.below(256));
    const std::string text = base64_encode(bytes);
    ASSERT_EQ(base64_decode(text), bytes);
    const std::string bad = m.mutate(text);
    const auto decoded = base64_decode(bad);
    if (decoded) {
      EXPECT_EQ(base64_decode(base64_encode(*decoded)), decoded);
    }
  }
}

TEST(ParserRobustness, TagListsAndDkimSignatures) {
  const std::vector<std::string> seeds = {
      "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; t=1700000000;\r\n"
      " h=From:To:Subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n b=dGVzdA==",
      "v=1; a=ed25519-sha256; d=football.example.com; i=@football.example.com; q=dns/txt;"
      " s=brisbane; x=1700003600; l=0; z=From:foo@eg.example|Subject:demo=20run; h=from; bh=; b=",
      "a=; b=; =; ;;"};
  test::Mutator m(2);
  for (int i = 0; i < kRounds; ++i) {
    const std::string text = m.mutate_one_of(seeds);
    const auto tags = parse_tag_list(text);
    EXPECT_EQ(tags.ok(), parse_tag_list(text).ok());
    if (tags.ok()) {
      for (const auto& t : *tags) EXPECT_FALSE(t.name.empty()) << text;
    }
    const auto sig = parse_signature("DKIM-Signature: " + text + "\r\n");
    if (sig.ok()) {
      EXPECT_FALSE(sig->domain.empty());
      EXPECT_FALSE(sig->selector.empty());
      EXPECT_FALSE(sig->headers.empty());  // h= must name From at least
    }
  }
}

TEST(ParserRobustness, DkimKeyRecords) {
  const std::vector<std::string> seeds = {
      "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
      "v=DKIM1; h=sha256; k=rsa; s=email; t=y:s; n=note; p="
      "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi"
      "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZy"
      "VYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
      "v=DKIM1; p="};
  test::Mutator m(3);
  for (int i = 0; i < kRounds; ++i) {
    const std::string text = m.mutate_one_of(seeds);
    const auto r = parse_key_record(text);
    EXPECT_EQ(r.ok(), parse_key_record(text).ok());
    if (r.ok() && !r->revoked()) {
      EXPECT_TRUE(r->key.has_value()) << text;
    }
  }
}

TEST(ParserRobustness, DmarcRecords) {
  const std::vector<std::string> seeds = {
      "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=25; "
      "rua=mailto:agg@example.com,mailto:other@example.net!10m; ruf=mailto:f@example.com; "
      "fo=1:d; rf=afrf; ri=86400",
      "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com", "p=none; v=DMARC1",
      "mail.example.co.uk"};
  test::Mutator m(5);
  for (int i = 0; i < kRounds; ++i) {
    const std::string text = m.mutate_one_of(seeds);
    const auto r = parse_dmarc_record(text);
    EXPECT_EQ(r.ok(), parse_dmarc_record(text).ok());
    if (r.ok()) {
      EXPECT_TRUE(is_dmarc_candidate(text)) << text;
      EXPECT_GE(r->percent, 0);
      EXPECT_LE(r->percent, 100);
    }
    EXPECT_LE(organizational_domain(text).size(), text.size());
  }
}

TEST(ParserRobustness, SpfRecordsAndMacros) {
  const std::vector<std::string> seeds = {
      "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx/24//64 ptr:%{d} include:_spf.%{d2} "
      "exists:%{ir}.%{l1r+-}._spf.%{d} redirect=%{o} exp=explain._spf.%{d} ~all",
      "v=spf1 -a:%{h}.%{v}.arpa ?mx:example.com//48 +all", "v=spf1"};
  test::Mutator m(4);
  SpfMacroValues values;
  values.sender = "strong-bad@email.example.com";
  values.local_part = "strong-bad";
  values.sender_domain = values.domain = "email.example.com";
  values.ip = boost::asio::ip::make_address("2001:db8::cb01");
  values.helo = "mx.example.org";
  for (int i = 0; i < kRounds; ++i) {
    const std::string text = m.mutate_one_of(seeds);
    const auto r = parse_spf_record(text);
    EXPECT_EQ(r.ok(), parse_spf_record(text).ok());
    const std::string macro = m.mutate("%{ir}.%{l1r+-}._spf.%{d2}.%{v}%%%_%-");
    for (auto scope : {MacroScope::DomainSpec, MacroScope::Explanation}) {
      if (check_macro_string(macro, scope).ok()) {
        // What the checker accepts, the expander can expand.
        EXPECT_TRUE(expand_macro_string(macro, values, scope).ok()) << macro;
      } else {
        (void)expand_macro_string(macro, values, scope);
      }
    }
  }
}

TEST(ParserRobustness, HeaderBlocksAddressesAndAuthors) {
  const std::vector<std::string> seeds = {
      "From: \"Alice, Example\" <alice@example.com>\r\nTo: bob@example.net,\r\n"
      " carol@example.org (Carol)\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n",
      "From: Group: a@b.example, c@d.example;\r\nSender: <x@y.example>\r\n", "from:a@b\r\n"};
  test::Mutator m(5);
  for (int i = 0; i < kRounds; ++i) {
    const std::string text = m.mutate_one_of(seeds);
    auto block = HeaderBlock::parse(text);
    if (block.ok()) {
      for (std::size_t f = 0; f < block->size(); ++f) {
        const auto field = block->field(f);
        EXPECT_FALSE(field.name.empty());
        EXPECT_EQ(field.raw.substr(0, field.name.size()), field.name);
      }
      const auto author = author_address(*block);
      if (author.ok()) {
        EXPECT_FALSE(author->domain.empty()) << text;
      }
    }
    const std::string value = m.mutate("\"A, B\" <a@b.example>, (c) d@e.example");
    (void)parse_mailbox_list(value);
    const auto address = split_address(m.mutate("local.part+tag@sub.example.com"));
    if (address) {
      EXPECT_FALSE(address->domain.empty());
    }
  }
}

TEST(ParserRobustness, VerifierOnMutatedSignedMessages) {
  // The RFC 8463 message with both signatures, mutated anywhere: the
  // verifier gives a verdict per signature and never crashes.
  const std::string message = test::read_test_file("dkim/rfc8463/message-signed.eml");
  auto key = parse_key_record("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  ASSERT_TRUE(key.ok());
  ASSERT_EQ(verify_message_with_key(message, *key, {1528637909})[0].status, VerifyStatus::Pass);
  test::Mutator m(6);
  int passed = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string mutated = m.mutate(message);
    for (const auto& r : verify_message_with_key(mutated, *key, {1528637909})) {
      EXPECT_FALSE(r.reason.empty());
      if (r.status == VerifyStatus::Pass) ++passed;
    }
  }
  // Some mutations touch only unsigned parts (or whitespace relaxed
  // canonicalization ignores); most break the signature.
  EXPECT_LT(passed, 1000);
}

TEST(ParserRobustness, ArcVerifierOnMutatedChains) {
  // A three-set chain from the ARC suite, mutated anywhere: the verifier
  // gives a verdict with a reason, never reads an instance outside 0-50,
  // and never asks for more keys than the sets it examines.
  const std::string message = test::read_test_file("../fuzz/corpus/arc_chain/cv_pass_i3_1.eml");
  auto key = parse_key_record(
      "v=DKIM1; k=rsa; "
      "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6w"
      "y5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvH"
      "O9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
  ASSERT_TRUE(key.ok());
  int lookups = 0;
  const KeyLookupFunction lookup = [&](const std::string&, const std::string&) {
    ++lookups;
    return KeyLookup{*key, VerifyStatus::Pass, {}};
  };
  ArcVerifyOptions options;
  options.signatures.now = 1'700'000'000;
  ASSERT_EQ(verify_arc_message(message, lookup, options).result, ChainValidation::Pass);
  test::Mutator m(7);
  int passed = 0;
  for (int i = 0; i < 1000; ++i) {
    lookups = 0;
    const ArcVerdict verdict = verify_arc_message(m.mutate(message), lookup, options);
    EXPECT_GE(verdict.highest, 0);
    EXPECT_LE(verdict.highest, kMaxArcInstance);
    EXPECT_LE(lookups, 1 + options.max_sets);
    if (verdict.result == ChainValidation::Fail) {
      EXPECT_FALSE(verdict.reason.empty());
    }
    if (verdict.result == ChainValidation::Pass) ++passed;
  }
  EXPECT_LT(passed, 1000);
}

}  // namespace
}  // namespace stampd::auth
