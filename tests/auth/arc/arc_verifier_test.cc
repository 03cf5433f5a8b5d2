// The ARC verifier and sealer beyond the suite: streaming in chunks cut
// anywhere, the cap on sets examined (no key asked for), temporary key
// failures, what goes into the ARC-Authentication-Results, what the sealer
// refuses.
#include "auth/arc/arc_verifier.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>

#include "auth/arc/arc_sealer.h"
#include "auth/arc/message_sealer.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/message_splitter.h"
#include "cmd/dkim_commands.h"

namespace stampd::auth {
namespace {

const std::string kDir = std::string(STAMPD_TESTDATA_DIR) + "/arc/";

// SuiteMessage is one validation test's message and its scenario's keys.
struct SuiteMessage {
  std::string message;
  std::map<std::string, std::string> txt;
};

SuiteMessage suite_message(const std::string& id) {
  for (const YAML::Node& scenario :
       YAML::LoadAllFromFile(kDir + "arc-draft-validation-tests.yml")) {
    if (!scenario.IsMap() || !scenario["tests"][id]) continue;
    SuiteMessage out;
    out.message = cmd::to_crlf(scenario["tests"][id]["message"].as<std::string>());
    for (const auto& kv : scenario["txt-records"]) {
      std::string value = kv.second.as<std::string>();
      std::erase(value, '\n');
      out.txt[kv.first.as<std::string>()] = value;
    }
    return out;
  }
  ADD_FAILURE() << "no suite test " << id;
  return {};
}

// CountingLookup serves the records and counts the lookups.
struct CountingLookup {
  std::map<std::string, std::string> txt;
  int calls = 0;
  VerifyStatus failure = VerifyStatus::PermError;  // what a missing record gives

  KeyLookupFunction function() {
    return [this](const std::string& domain, const std::string& selector) {
      ++calls;
      const auto it = txt.find(selector + "._domainkey." + domain);
      if (it == txt.end()) return KeyLookup{std::nullopt, failure, "no key record"};
      return KeyLookup{*parse_key_record(it->second), VerifyStatus::Pass, {}};
    };
  }
};

ArcVerifyOptions options(int max_sets = kDefaultMaxArcSets) {
  ArcVerifyOptions o;
  o.signatures.now = 1'700'000'000;
  o.max_sets = max_sets;
  return o;
}

TEST(ArcVerifier, StreamedInChunksCutAnywhereGivesTheWholeMessagesVerdict) {
  const SuiteMessage m = suite_message("cv_pass_i3_1");
  CountingLookup keys{m.txt};
  ASSERT_EQ(verify_arc_message(m.message, keys.function(), options()).result,
            ChainValidation::Pass);
  const SplitMessage parts = split_message(m.message);
  const std::string body(parts.body);
  for (std::size_t cut = 0; cut <= body.size(); ++cut) {
    ArcVerifier verifier(options());
    verifier.header(*HeaderBlock::parse(std::string(parts.header)));
    verifier.body(std::string_view(body).substr(0, cut));
    verifier.body(std::string_view(body).substr(cut));
    const ArcVerdict verdict = verifier.finish(keys.function());
    ASSERT_EQ(verdict.result, ChainValidation::Pass) << "cut at " << cut << ": " << verdict.reason;
    EXPECT_EQ(verdict.highest, 3);
    EXPECT_EQ(verdict.next_instance(), 4);
  }
}

TEST(ArcVerifier, AChainLongerThanTheCapFailsWithoutAKeyLookup) {
  const SuiteMessage m = suite_message("cv_pass_i3_1");
  CountingLookup keys{m.txt};
  const ArcVerdict verdict = verify_arc_message(m.message, keys.function(), options(2));
  EXPECT_EQ(verdict.result, ChainValidation::Fail);
  EXPECT_NE(verdict.reason.find("more than 6 ARC header fields"), std::string::npos)
      << verdict.reason;
  EXPECT_EQ(keys.calls, 0);
  EXPECT_EQ(verdict.highest, 3);  // a new set still numbers after the chain
  EXPECT_EQ(verdict.next_instance(), 4);

  ArcVerifier verifier(options(2));
  verifier.header(*HeaderBlock::parse(std::string(split_message(m.message).header)));
  EXPECT_TRUE(verifier.wanted_keys().empty());
}

TEST(ArcVerifier, AsksForEachKeyOnceAndTellsATemporaryFailure) {
  const SuiteMessage m = suite_message("cv_pass_i3_1");
  ArcVerifier verifier(options());
  verifier.header(*HeaderBlock::parse(std::string(split_message(m.message).header)));
  const auto wanted = verifier.wanted_keys();
  ASSERT_EQ(wanted.size(), 1u);  // every set of the suite uses one key
  EXPECT_EQ(wanted[0], (std::pair<std::string, std::string>{"example.org", "dummy"}));

  CountingLookup down{{}, 0, VerifyStatus::TempError};
  const ArcVerdict verdict = verify_arc_message(m.message, down.function(), options());
  EXPECT_EQ(verdict.result, ChainValidation::Fail);
  EXPECT_TRUE(verdict.temporary);
  CountingLookup missing{{}, 0, VerifyStatus::PermError};
  EXPECT_FALSE(verify_arc_message(m.message, missing.function(), options()).temporary);
}

TEST(ArcVerifier, NewestSealSayingFailMeansNoNewSet) {
  const SuiteMessage m = suite_message("cv_fail_i2_as2_fail");
  CountingLookup keys{m.txt};
  const ArcVerdict verdict = verify_arc_message(m.message, keys.function(), options());
  EXPECT_EQ(verdict.result, ChainValidation::Fail);
  EXPECT_TRUE(verdict.latest_failed);
  EXPECT_FALSE(verdict.next_instance());
  EXPECT_EQ(keys.calls, 0);
}

HeaderBlock block_of(const std::string& text) { return *HeaderBlock::parse(text); }

TEST(ArcResults, CopiesOnlyOurAuthservIdsResultsWithOurArcVerdict) {
  const HeaderBlock block = block_of(
      "Authentication-Results: mx.example.org; arc=fail; spf=pass\r\n"
      "  smtp.mailfrom=a@b.example (sender; checked)\r\n"
      "Authentication-Results: elsewhere.example; dkim=pass header.d=forged.example\r\n"
      "Authentication-Results: MX.example.org 1; none\r\n"
      "Authentication-Results: mx.example.org; dkim=pass header.b=\"x;y\"; dmarc=pass\r\n"
      "Subject: hi\r\n");
  EXPECT_EQ(arc_results(block, "mx.example.org", ChainValidation::Pass),
            "mx.example.org; arc=pass;\r\n spf=pass\r\n  smtp.mailfrom=a@b.example (sender; "
            "checked);\r\n dkim=pass header.b=\"x;y\";\r\n dmarc=pass");
  EXPECT_EQ(arc_results(block_of("Subject: hi\r\n"), "mx.example.org", ChainValidation::None),
            "mx.example.org; arc=none");
}

SigningKey make_key(KeyAlgorithm algorithm) {
  return SigningKey{"relay.example", "arc1",
                    std::make_shared<const PrivateKey>(generate_private_key(algorithm).value())};
}

TEST(ArcSealer, RefusesWhatMayNotBeSealed) {
  const HeaderBlock block = block_of("From: a@b.example\r\n");
  const Sha256Digest body = body_hash(Canonicalization::Relaxed, "");
  ArcVerdict none;
  ArcSealOptions o;
  o.timestamp = 1;
  EXPECT_FALSE(
      seal_message(block, body, none, "x; arc=none", make_key(KeyAlgorithm::Ed25519), o).ok());
  ArcVerdict failed;
  failed.result = ChainValidation::Fail;
  failed.latest_failed = true;
  failed.highest = 2;
  EXPECT_FALSE(
      seal_message(block, body, failed, "x; arc=fail", make_key(KeyAlgorithm::Rsa2048), o).ok());
  ArcVerdict full;
  full.result = ChainValidation::Fail;
  full.highest = kMaxArcInstance;
  EXPECT_FALSE(
      seal_message(block, body, full, "x; arc=fail", make_key(KeyAlgorithm::Rsa2048), o).ok());
}

TEST(MessageSealer, SealsOverTheFieldsAddedOnTopAndTheSetValidates) {
  const SigningKey key = make_key(KeyAlgorithm::Rsa2048);
  const std::string record = make_key_record(key.key->public_key());
  CountingLookup keys{{{"arc1._domainkey.relay.example", record}}};
  const std::string header =
      "Authentication-Results: mx.relay.example; spf=pass smtp.mailfrom=x@list.example\r\n"
      "From: a@b.example\r\nSubject: hi\r\n";
  const std::string body = "Hello.\r\n";
  const std::string on_top = "DKIM-Signature: v=1; d=relay.example; b=opaque\r\n";
  MessageSealer sealer(options());
  sealer.header(block_of(header));
  sealer.body(body);
  EXPECT_TRUE(sealer.wanted_keys().empty());
  EXPECT_EQ(sealer.verify(keys.function()).result, ChainValidation::None);
  ArcSealOptions o;
  o.timestamp = 1'700'000'000;
  o.headers.sign.emplace_back("DKIM-Signature");
  auto set =
      sealer.seal(on_top, body_hash(Canonicalization::Relaxed, body), "mx.relay.example", key, o);
  ASSERT_TRUE(set.ok()) << set.error().detail;
  EXPECT_NE(set->message_signature.find("dkim-signature"), std::string::npos);
  EXPECT_EQ(set->results,
            "ARC-Authentication-Results: i=1; mx.relay.example; arc=none;\r\n spf=pass "
            "smtp.mailfrom=x@list.example\r\n");
  const std::string sealed =
      set->seal + set->message_signature + set->results + on_top + header + "\r\n" + body;
  const ArcVerdict verdict = verify_arc_message(sealed, keys.function(), options());
  EXPECT_EQ(verdict.result, ChainValidation::Pass) << verdict.reason;
  // Changing the DKIM-Signature we sealed over breaks the message signature.
  std::string changed = sealed;
  changed.replace(changed.find("b=opaque"), 8, "b=OPAQUE");
  EXPECT_EQ(verify_arc_message(changed, keys.function(), options()).result, ChainValidation::Fail);
}

}  // namespace
}  // namespace stampd::auth
