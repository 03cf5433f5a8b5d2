#include "proxy/stages/dkim_stage.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <optional>
#include <string_view>

#include "auth/dkim/header_block.h"

namespace stampd::proxy {

namespace {

class DkimStage final : public Stage {
 public:
  DkimStage(std::shared_ptr<const auth::SigningKeys> keys,
            std::shared_ptr<const DkimSettings> settings,
            std::shared_ptr<const MustSign> must_sign, const DkimCounters& counters)
      : keys_(keys),
        signer_(std::move(keys), std::move(settings)),
        must_sign_(std::move(must_sign)),
        counters_(counters) {}

  const char* name() const override { return "dkim"; }
  void on_header_block(Transaction&, std::string_view header_block) override {
    signer_.header(header_block);
  }
  void on_body(std::span<const char> chunk) override {
    signer_.body(std::string_view(chunk.data(), chunk.size()));
  }
  boost::asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message& message) override;

 private:
  std::optional<Verdict> refuse_unsigned(Transaction& tx, const auth::SigningOutcome& outcome);

  std::shared_ptr<const auth::SigningKeys> keys_;
  auth::MessageSigner signer_;
  std::shared_ptr<const MustSign> must_sign_;
  const DkimCounters& counters_;  // the factory's, which outlives its stages
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

boost::asio::awaitable<Verdict> DkimStage::on_end_of_data(Transaction& tx, const Message&) {
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
  std::string names;
  for (std::size_t i = 0; i < outcome.signatures.size(); ++i) {
    auto& [field, key] = outcome.signatures[i];
    counters_.signatures.at(static_cast<std::size_t>(key - keys_->keys().data()))->Increment();
    names += (i ? "," : "") + key->spec.domain + ":" + key->spec.selector;
    tx.prepend_fields.push_back(std::move(field));
  }
  tx.log_fields.emplace_back("dkim", "signed");
  tx.log_fields.emplace_back("dkim_keys", names);
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
                                   DkimSettings settings, MustSign must_sign,
                                   obs::Metrics& metrics)
    : keys_(std::move(keys)),
      settings_(std::make_shared<const DkimSettings>(std::move(settings))),
      must_sign_(std::make_shared<const MustSign>(std::move(must_sign))) {
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
}

std::vector<std::unique_ptr<Stage>> DkimStageFactory::make_stages() const {
  std::vector<std::unique_ptr<Stage>> out;
  out.push_back(std::make_unique<DkimStage>(keys_, settings_, must_sign_, counters_));
  return out;
}

}  // namespace stampd::proxy
