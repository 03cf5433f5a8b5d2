#include "proxy/stages/dkim_stage.h"

#include <chrono>
#include <ctime>
#include <string_view>

#include "auth/dkim/header_block.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace stampd::proxy {

namespace {

class DkimStage final : public Stage {
 public:
  DkimStage(std::shared_ptr<const auth::SigningKeys> keys,
            std::shared_ptr<const DkimSettings> settings)
      : signer_(std::move(keys), std::move(settings)) {}

  const char* name() const override { return "dkim"; }
  void on_header_block(Transaction&, std::string_view header_block) override {
    signer_.header(header_block);
  }
  void on_body(std::span<const char> chunk) override {
    signer_.body(std::string_view(chunk.data(), chunk.size()));
  }
  boost::asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message& message) override;

 private:
  auth::MessageSigner signer_;
};

boost::asio::awaitable<Verdict> DkimStage::on_end_of_data(Transaction& tx, const Message&) {
  auto& m = obs::metrics();
  auth::SigningOutcome outcome = signer_.finish(static_cast<std::int64_t>(std::time(nullptr)));
  if (outcome.not_signed && !outcome.failed()) {
    tx.log_fields.emplace_back("dkim", "unsigned");
    tx.log_fields.emplace_back("dkim_reason", outcome.detail);
    m.dkim_skipped.Add({{"reason", auth::to_string(*outcome.not_signed)}}).Increment();
    co_return Verdict::next();
  }
  if (outcome.failed()) {
    m.dkim_failures.Add({{"reason", auth::to_string(*outcome.not_signed)}}).Increment();
    if (!outcome.fail_closed()) {
      tx.log_fields.emplace_back("dkim", "unsigned");
      tx.log_fields.emplace_back("dkim_reason",
                                 "signing failed, rule says send-unsigned: " + outcome.detail);
      m.dkim_skipped.Add({{"reason", "send-unsigned"}}).Increment();
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
    m.dkim_signatures
        .Add({{"domain", key->spec.domain},
              {"selector", key->spec.selector},
              {"algorithm", auth::algorithm_name(key->signing_key->key->type())}})
        .Increment();
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

std::vector<std::unique_ptr<Stage>> DkimStageFactory::make_stages() const {
  std::vector<std::unique_ptr<Stage>> out;
  out.push_back(std::make_unique<DkimStage>(keys_, settings_));
  return out;
}

}  // namespace stampd::proxy
