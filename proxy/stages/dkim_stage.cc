#include "proxy/stages/dkim_stage.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <string_view>

#include "auth/dkim/header_block.h"
#include "auth/dkim/verifier.h"
#include "proxy/spool.h"

namespace stampd::proxy {

namespace {

class DkimStage final : public Stage {
 public:
  DkimStage(std::shared_ptr<const auth::SigningKeys> keys,
            std::shared_ptr<const DkimSettings> settings, std::shared_ptr<const MustSign> must_sign,
            std::shared_ptr<const SelfVerification> self_verification,
            std::shared_ptr<const ArcSettings> arc, const DkimCounters& counters,
            const ArcCounters& arc_counters)
      : keys_(keys),
        settings_(settings),
        signer_(std::move(keys), std::move(settings)),
        must_sign_(std::move(must_sign)),
        self_verification_(std::move(self_verification)),
        arc_(std::move(arc)),
        counters_(counters),
        arc_counters_(arc_counters) {}

  const char* name() const override { return "dkim"; }
  void on_header_block(Transaction&, std::string_view header_block) override {
    signer_.header(header_block, static_cast<std::int64_t>(std::time(nullptr)));
    if (signer_.arc_key() != nullptr) {
      auth::ArcVerifyOptions options;
      options.signatures.now = static_cast<std::int64_t>(std::time(nullptr));
      options.max_sets = arc_->max_sets;
      sealer_.emplace(options);
      sealer_->header(signer_.block());
    }
  }
  void on_body(std::span<const char> chunk) override {
    const std::string_view text(chunk.data(), chunk.size());
    signer_.body(text);
    if (sealer_) sealer_->body(text);
  }
  boost::asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message& message) override;

 private:
  std::optional<Verdict> refuse_unsigned(Transaction& tx, const auth::SigningOutcome& outcome);
  std::optional<std::string> self_verify(const Transaction& tx, const Message& message,
                                         const auth::SigningOutcome& outcome,
                                         std::size_t first_field) const;
  std::optional<Verdict> self_verify_failed(Transaction& tx, const auth::SigningOutcome& outcome,
                                            std::size_t first_field, const std::string& why);

  std::shared_ptr<const auth::SigningKeys> keys_;
  std::shared_ptr<const DkimSettings> settings_;
  auth::MessageSigner signer_;
  std::optional<auth::MessageSealer> sealer_;  // when the rule seals
  std::shared_ptr<const MustSign> must_sign_;
  std::shared_ptr<const SelfVerification> self_verification_;
  std::shared_ptr<const ArcSettings> arc_;
  const DkimCounters& counters_;  // the factory's, which outlives its stages
  const ArcCounters& arc_counters_;
};

// refuse_unsigned refuses a message about to leave unsigned when its From
// domain is a must-sign one; nullopt lets it go.
std::optional<Verdict> DkimStage::refuse_unsigned(Transaction& tx,
                                                  const auth::SigningOutcome& outcome) {
  if (!outcome.from || !must_sign_->covers(*outcome.from)) return std::nullopt;
  const std::string& domain = outcome.from->domain;
  counters_.must_sign->Increment();
  tx.log_fields.emplace_back("dkim", "failed");
  return Verdict::stop(
      smtp::make_reply(451, "4.7.0",
                       "Mail from " + domain + " must be signed and could not be, try again later"),
      "must-sign domain " + domain + " not signed: " + outcome.detail);
}

// self_verify checks the signatures just made (the fields from first_field
// on, in front of the message as spooled: the bytes the upstream is handed)
// with each key's public half; nullopt when all pass, else why not.
std::optional<std::string> DkimStage::self_verify(const Transaction& tx, const Message& message,
                                                  const auth::SigningOutcome& outcome,
                                                  std::size_t first_field) const {
  const auto& records = self_verification_->records;
  const auto* base = keys_->keys().data();
  const auth::KeyLookupFunction lookup = [&](const std::string& domain,
                                             const std::string& selector) {
    for (const auto& signature : outcome.signatures) {
      const auto& record = records.at(static_cast<std::size_t>(signature.key - base));
      if (record && signature.key->spec.domain == domain &&
          signature.key->spec.selector == selector) {
        return auth::KeyLookup{*record, auth::VerifyStatus::Pass, {}};
      }
    }
    return auth::KeyLookup{std::nullopt, auth::VerifyStatus::PermError, "not a key of ours"};
  };
  auth::MessageVerifier verifier(
      auth::VerifyOptions{static_cast<std::int64_t>(std::time(nullptr))},
      auth::MessageVerifier::FieldRange{first_field, outcome.signatures.size()});
  for (const std::string& field : tx.prepend_fields) verifier.update(field);
  std::string buffer;
  for (std::uint64_t offset = 0; offset < message.size;) {
    auto chunk = message.spool->read(offset, buffer);
    if (!chunk) return "cannot read the spool: " + chunk.error().message();
    if (chunk->empty()) return std::string("the spool ends early");
    verifier.update(*chunk);
    offset += chunk->size();
  }
  const auto results = verifier.finish(lookup);
  if (results.size() != outcome.signatures.size()) {
    return "found " + std::to_string(results.size()) + " of the " +
           std::to_string(outcome.signatures.size()) + " signatures made";
  }
  for (const auto& r : results) {
    if (r.status != auth::VerifyStatus::Pass) {
      return "d=" + r.domain + " s=" + r.selector + ": " + r.reason;
    }
  }
  return std::nullopt;
}

// self_verify_failed handles a signature that does not verify as the rule's
// on_error says a signing failure is handled; nullopt relays the message
// without the signatures.
std::optional<Verdict> DkimStage::self_verify_failed(Transaction& tx,
                                                     const auth::SigningOutcome& outcome,
                                                     std::size_t first_field,
                                                     const std::string& why) {
  counters_.self_verify_fail->Increment();
  tx.log_fields.emplace_back("dkim_self_verify", "fail");
  const auto first = tx.prepend_fields.begin() + static_cast<std::ptrdiff_t>(first_field);
  tx.prepend_fields.erase(first, first + static_cast<std::ptrdiff_t>(outcome.signatures.size()));
  if (outcome.rule->on_error == auth::OnError::FailClosed) {
    tx.log_fields.emplace_back("dkim", "failed");
    return Verdict::stop(
        smtp::make_reply(451, "4.7.5", "Message could not be signed, try again later"),
        "self-verification failed (" + outcome.rule->origin + " is fail-closed): " + why);
  }
  if (auto refused = refuse_unsigned(tx, outcome)) return refused;
  tx.log_fields.emplace_back("dkim", "unsigned");
  tx.log_fields.emplace_back("dkim_reason",
                             "self-verification failed, rule says send-unsigned: " + why);
  counters_.send_unsigned->Increment();
  return std::nullopt;
}

boost::asio::awaitable<Verdict> DkimStage::on_end_of_data(Transaction& tx, const Message& message) {
  auth::SigningOutcome outcome = signer_.finish(static_cast<std::int64_t>(std::time(nullptr)));
  if (outcome.not_signed && !outcome.fail_closed()) {
    if (auto refused = refuse_unsigned(tx, outcome)) co_return std::move(*refused);
  }
  if (outcome.not_signed && !outcome.failed()) {
    tx.log_fields.emplace_back("dkim", "unsigned");
    tx.log_fields.emplace_back("dkim_reason", outcome.detail);
    counters_.skipped[static_cast<std::size_t>(*outcome.not_signed)]->Increment();
    co_return Verdict::next();
  }
  if (outcome.failed()) {
    counters_.failures[static_cast<std::size_t>(*outcome.not_signed)]->Increment();
    if (!outcome.fail_closed()) {
      tx.log_fields.emplace_back("dkim", "unsigned");
      tx.log_fields.emplace_back("dkim_reason",
                                 "signing failed, rule says send-unsigned: " + outcome.detail);
      counters_.send_unsigned->Increment();
      co_return Verdict::next();
    }
    tx.log_fields.emplace_back("dkim", "failed");
    co_return Verdict::stop(
        smtp::make_reply(451, "4.7.5", "Message could not be signed, try again later"),
        "signing failed (" + outcome.rule->origin + " is fail-closed): " + outcome.detail);
  }
  const std::size_t first_field = tx.prepend_fields.size();
  for (auto& signature : outcome.signatures)
    tx.prepend_fields.push_back(std::move(signature.field));
  if (self_verification_->wanted()) {
    if (auto why = self_verify(tx, message, outcome, first_field)) {
      if (auto verdict = self_verify_failed(tx, outcome, first_field, *why)) {
        co_return std::move(*verdict);
      }
      co_return Verdict::next();
    }
    counters_.self_verify_pass->Increment();
    tx.log_fields.emplace_back("dkim_self_verify", "pass");
  }
  std::string names;
  for (std::size_t i = 0; i < outcome.signatures.size(); ++i) {
    const auto* key = outcome.signatures[i].key;
    counters_.signatures.at(static_cast<std::size_t>(key - keys_->keys().data()))->Increment();
    names += (i ? "," : "") + key->spec.domain + ":" + key->spec.selector;
  }
  tx.log_fields.emplace_back("dkim", "signed");
  tx.log_fields.emplace_back("dkim_keys", names);
  if (sealer_ && signer_.arc_key() != nullptr) {
    // The seal goes on last, over our signatures: the ARC-Message-Signature
    // covers the DKIM-Signature fields too.
    auth::ArcSealOptions options;
    options.timestamp = static_cast<std::int64_t>(std::time(nullptr));
    options.headers = settings_->options.headers;
    options.headers.sign.emplace_back("DKIM-Signature");
    const auth::Sha256Digest body_hash = *signer_.body_hash(auth::Canonicalization::Relaxed);
    auto refused = co_await seal_arc(tx, *sealer_, body_hash, *signer_.arc_key()->signing_key,
                                     *outcome.rule, *arc_, arc_counters_, std::move(options));
    if (refused) co_return std::move(*refused);
  }
  co_return Verdict::next();
}

}  // namespace

DkimSettings dkim_settings(const DkimConfig& config) {
  DkimSettings s;
  s.options.canonicalization = config.canonicalization;
  if (!config.sign_headers.empty()) s.options.headers.sign = config.sign_headers;
  if (config.oversign_headers_set) s.options.headers.oversign = config.oversign_headers;
  s.options.headers.oversign_absent = config.oversign_absent;
  // Received-SPF is ours and added after signing; it must never be covered,
  // or a receiver's own Received-SPF handling could break the signature.
  for (auto* list : {&s.options.headers.sign, &s.options.headers.oversign}) {
    std::erase_if(*list, [](const std::string& name) {
      return auth::header_name_equal(name, "received-spf");
    });
  }
  s.signature_lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(config.signature_lifetime);
  return s;
}

bool SelfVerification::wanted() const {
  switch (mode) {
    case SelfVerify::Off:
      return false;
    case SelfVerify::All:
      return true;
    case SelfVerify::Sample:
      return messages.fetch_add(1, std::memory_order_relaxed) % kSelfVerifySampleEvery == 0;
  }
  return false;
}

MustSign::MustSign(const std::vector<std::string>& domains) {
  for (const std::string& domain : domains) {
    auto pattern = auth::FromPattern::parse("*@" + domain);
    if (pattern) patterns_.push_back(std::move(*pattern));
  }
}

bool MustSign::covers(const auth::MailAddress& from) const {
  return std::any_of(patterns_.begin(), patterns_.end(),
                     [&from](const auth::FromPattern& p) { return p.matches(from); });
}

DkimStageFactory::DkimStageFactory(std::shared_ptr<const auth::SigningKeys> keys,
                                   DkimSettings settings, MustSign must_sign, obs::Metrics& metrics,
                                   SelfVerify self_verify, ArcSettings arc)
    : keys_(std::move(keys)),
      settings_(std::make_shared<const DkimSettings>(std::move(settings))),
      must_sign_(std::make_shared<const MustSign>(std::move(must_sign))),
      arc_(std::make_shared<const ArcSettings>(std::move(arc))),
      arc_counters_(ArcCounters::make(metrics)) {
  auto verification = std::make_shared<SelfVerification>();
  verification->mode = self_verify;
  for (const auto& key : keys_->keys()) {
    std::optional<auth::KeyRecord> record;
    if (self_verify != SelfVerify::Off && key.signing_key) {
      record.emplace();
      record->type = key.signing_key->key->type();
      record->key = key.signing_key->key->public_key();
    }
    verification->records.push_back(std::move(record));
  }
  self_verification_ = std::move(verification);
  for (const auto& key : keys_->keys()) {
    counters_.signatures.push_back(
        key.signing_key ? &metrics.dkim_signatures.Add(
                              {{"domain", key.spec.domain},
                               {"selector", key.spec.selector},
                               {"algorithm", auth::algorithm_name(key.signing_key->key->type())}})
                        : nullptr);
  }
  using auth::NotSigned;
  for (NotSigned r : {NotSigned::NoRule, NotSigned::NoFrom, NotSigned::SeveralFrom,
                      NotSigned::BadFrom, NotSigned::MalformedHeader}) {
    counters_.skipped[static_cast<std::size_t>(r)] =
        &metrics.dkim_skipped.Add({{"reason", auth::to_string(r)}});
  }
  for (NotSigned r : {NotSigned::KeyUnavailable, NotSigned::SigningError}) {
    counters_.failures[static_cast<std::size_t>(r)] =
        &metrics.dkim_failures.Add({{"reason", auth::to_string(r)}});
  }
  counters_.send_unsigned = &metrics.dkim_skipped.Add({{"reason", "send-unsigned"}});
  counters_.must_sign = &metrics.dkim_failures.Add({{"reason", "must-sign"}});
  counters_.self_verify_pass = &metrics.dkim_self_verify.Add({{"result", "pass"}});
  counters_.self_verify_fail = &metrics.dkim_self_verify.Add({{"result", "fail"}});
}

std::vector<std::unique_ptr<Stage>> DkimStageFactory::make_stages() const {
  std::vector<std::unique_ptr<Stage>> out;
  out.push_back(std::make_unique<DkimStage>(keys_, settings_, must_sign_, self_verification_, arc_,
                                            counters_, arc_counters_));
  return out;
}

}  // namespace stampd::proxy
