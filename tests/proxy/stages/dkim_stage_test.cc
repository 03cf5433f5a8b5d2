// DKIM stage, [dkim] self_verify: the signatures just made are verified over
// the fields and the spooled message before they leave. A signing path that
// hashed other bytes than those spooled (the bug class self-verification is
// for) is caught, counted, logged and handled by the rule's on_error.
#include "proxy/stages/dkim_stage.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "auth/dkim/keygen.h"
#include "auth/dkim/verifier.h"
#include "proxy/spool.h"
#include "tests/support/run_coroutine.h"

namespace stampd::proxy {
namespace {

const std::string kHeader =
    "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: self-verify\r\n";
const std::string kBody = "Hello Bob,\r\n\r\nthe body as spooled.\r\n";

std::shared_ptr<const auth::SigningKeys> signing_keys(auth::OnError on_error) {
  std::vector<auth::KeySpec> specs;
  for (const auto& [name, algorithm] :
       {std::pair{"rsa", auth::KeyAlgorithm::Rsa2048}, {"ed", auth::KeyAlgorithm::Ed25519}}) {
    auto key = auth::generate_private_key(algorithm);
    EXPECT_TRUE(key.ok());
    auth::KeySpec spec;
    spec.name = name;
    spec.domain = "example.com";
    spec.selector = name;
    spec.private_key_pem = key->to_pem();
    spec.origin = "test";
    specs.push_back(std::move(spec));
  }
  auth::SigningRule rule;
  rule.from = *auth::FromPattern::parse("*@example.com");
  rule.keys = {"rsa", "ed"};
  rule.on_error = on_error;
  rule.origin = "test.toml:1";
  auto keys = auth::SigningKeys::build(std::move(specs), {rule});
  EXPECT_TRUE(keys.ok()) << keys.error().message();
  return *keys;
}

struct StageRun {
  Verdict verdict;
  Transaction tx;
  std::string sent;  // what the upstream would be handed
};

// run signs a message whose signer sees signed_body while the spool holds
// kBody (the same text unless a test corrupts the signing path).
StageRun run(DkimStageFactory& factory, const std::string& signed_body,
             const std::vector<std::string>& earlier_fields = {}) {
  const char* t = std::getenv("TMPDIR");
  Spool spool(1 << 20, t && *t ? t : "/tmp");
  EXPECT_TRUE(spool.append(kHeader + "\r\n" + kBody).ok());
  auto stages = factory.make_stages();
  StageRun out;
  out.tx.prepend_fields = earlier_fields;
  stages.at(0)->on_header_block(out.tx, kHeader);
  stages.at(0)->on_body(std::span<const char>(signed_body.data(), signed_body.size()));
  const Message message{kHeader, &spool, spool.size()};
  out.verdict = test::run_coroutine<Verdict>(
      [&](boost::asio::io_context&) { return stages.at(0)->on_end_of_data(out.tx, message); });
  for (const auto& field : out.tx.prepend_fields) out.sent += field;
  out.sent += kHeader + "\r\n" + kBody;
  return out;
}

std::string log_field(const Transaction& tx, const std::string& key) {
  for (const auto& [k, v] : tx.log_fields)
    if (k == key) return v;
  return "";
}

double counter(obs::Metrics& metrics, const std::string& result) {
  return metrics.dkim_self_verify.Add({{"result", result}}).Value();
}

// The signatures that leave verify with the keys' public halves.
std::size_t passing_signatures(const auth::SigningKeys& keys, const std::string& message) {
  const auth::KeyLookupFunction lookup = [&](const std::string&, const std::string& selector) {
    const auto* key = keys.find_key(selector);
    auth::KeyRecord record;
    record.type = key->signing_key->key->type();
    record.key = key->signing_key->key->public_key();
    return auth::KeyLookup{record, auth::VerifyStatus::Pass, {}};
  };
  std::size_t n = 0;
  for (const auto& r : auth::verify_message_with_lookup(message, lookup, {std::time(nullptr)}))
    n += r.status == auth::VerifyStatus::Pass;
  return n;
}

TEST(DkimStageSelfVerify, GoodSignaturesPassAndLeave) {
  obs::Metrics metrics;
  auto keys = signing_keys(auth::OnError::FailClosed);
  DkimStageFactory factory(keys, DkimSettings{}, MustSign({}), metrics, SelfVerify::All);
  // A field another stage put in front first does not disturb which fields are checked.
  const auto r = run(factory, kBody, {"Received-SPF: pass (test)\r\n"});
  EXPECT_FALSE(r.verdict.stopped());
  ASSERT_EQ(r.tx.prepend_fields.size(), 3u);
  EXPECT_EQ(log_field(r.tx, "dkim_self_verify"), "pass");
  EXPECT_EQ(log_field(r.tx, "dkim"), "signed");
  EXPECT_EQ(counter(metrics, "pass"), 1);
  EXPECT_EQ(counter(metrics, "fail"), 0);
  EXPECT_EQ(passing_signatures(*keys, r.sent), 2u);
}

TEST(DkimStageSelfVerify, ACorruptedSigningPathIsCaughtFailClosed) {
  obs::Metrics metrics;
  DkimStageFactory factory(signing_keys(auth::OnError::FailClosed), DkimSettings{}, MustSign({}),
                           metrics, SelfVerify::All);
  const auto r = run(factory, "Hello Bob,\r\n\r\nthe body as hashed.\r\n");
  ASSERT_TRUE(r.verdict.stopped());
  EXPECT_EQ(r.verdict.reply->code, 451);
  EXPECT_EQ(r.verdict.reply->enhanced, "4.7.5");
  EXPECT_NE(r.verdict.reason.find("self-verification failed (test.toml:1 is fail-closed)"),
            std::string::npos)
      << r.verdict.reason;
  EXPECT_NE(r.verdict.reason.find("body hash mismatch"), std::string::npos) << r.verdict.reason;
  EXPECT_TRUE(r.tx.prepend_fields.empty());
  EXPECT_EQ(log_field(r.tx, "dkim_self_verify"), "fail");
  EXPECT_EQ(counter(metrics, "fail"), 1);
  EXPECT_EQ(metrics.dkim_signatures
                .Add({{"domain", "example.com"}, {"selector", "rsa"}, {"algorithm", "rsa-sha256"}})
                .Value(),
            0);
}

TEST(DkimStageSelfVerify, ACorruptedSigningPathSendsUnsignedWhenTheRuleSaysSo) {
  obs::Metrics metrics;
  DkimStageFactory factory(signing_keys(auth::OnError::SendUnsigned), DkimSettings{}, MustSign({}),
                           metrics, SelfVerify::All);
  const auto r =
      run(factory, "Hello Bob,\r\n\r\nthe body as hashed.\r\n", {"Received-SPF: pass (test)\r\n"});
  EXPECT_FALSE(r.verdict.stopped());
  ASSERT_EQ(r.tx.prepend_fields.size(), 1u);  // the other stage's field stays
  EXPECT_EQ(r.tx.prepend_fields[0], "Received-SPF: pass (test)\r\n");
  EXPECT_EQ(log_field(r.tx, "dkim"), "unsigned");
  EXPECT_NE(
      log_field(r.tx, "dkim_reason").find("self-verification failed, rule says send-unsigned"),
      std::string::npos);
  EXPECT_EQ(counter(metrics, "fail"), 1);
  EXPECT_EQ(metrics.dkim_skipped.Add({{"reason", "send-unsigned"}}).Value(), 1);

  // A must-sign domain is never relayed unsigned.
  obs::Metrics metrics2;
  DkimStageFactory must(signing_keys(auth::OnError::SendUnsigned), DkimSettings{},
                        MustSign({"example.com"}), metrics2, SelfVerify::All);
  const auto refused = run(must, "corrupted\r\n");
  ASSERT_TRUE(refused.verdict.stopped());
  EXPECT_EQ(refused.verdict.reply->code, 451);
  EXPECT_EQ(refused.verdict.reply->enhanced, "4.7.0");
}

TEST(DkimStageSelfVerify, OffChecksNothingAndSampleOneInAHundred) {
  obs::Metrics metrics;
  DkimStageFactory off(signing_keys(auth::OnError::FailClosed), DkimSettings{}, MustSign({}),
                       metrics, SelfVerify::Off);
  const auto r = run(off, "not what was spooled\r\n");
  EXPECT_FALSE(r.verdict.stopped());  // off: the broken signatures would leave
  EXPECT_EQ(r.tx.prepend_fields.size(), 2u);
  EXPECT_EQ(counter(metrics, "pass") + counter(metrics, "fail"), 0);

  obs::Metrics sampled;
  DkimStageFactory sample(signing_keys(auth::OnError::FailClosed), DkimSettings{}, MustSign({}),
                          sampled, SelfVerify::Sample);
  for (unsigned i = 0; i < 2 * kSelfVerifySampleEvery; ++i) run(sample, kBody);
  EXPECT_EQ(counter(sampled, "pass"), 2);
  EXPECT_EQ(counter(sampled, "fail"), 0);
}

}  // namespace
}  // namespace stampd::proxy
