#include "proxy/stages/dkim_stage.h"

#include <chrono>
#include <ctime>
#include <string_view>

#include "auth/dkim/author.h"
#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/signature.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace stampd::proxy {

namespace {

class DkimStage final : public Stage {
 public:
  DkimStage(std::shared_ptr<const auth::SigningKeys> keys, const DkimSettings& settings)
      : keys_(std::move(keys)), settings_(settings) {}

  const char* name() const override { return "dkim"; }
  void on_header_block(Transaction& tx, std::string_view header_block) override;
  void on_body(std::span<const char> chunk) override {
    if (signing_) hashes_.update(std::string_view(chunk.data(), chunk.size()));
  }
  boost::asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message& message) override;

 private:
  // skip records why the message leaves unsigned (reason is a bounded label).
  void skip(Transaction& tx, const char* reason, std::string detail);

  std::shared_ptr<const auth::SigningKeys> keys_;
  const DkimSettings& settings_;
  auth::HeaderBlock block_;
  std::optional<auth::SigningKeys::Selection> selection_;
  auth::BodyHashSet hashes_;
  bool signing_ = false;
  const char* skip_reason_ = nullptr;
};

void DkimStage::skip(Transaction& tx, const char* reason, std::string detail) {
  skip_reason_ = reason;
  tx.log_fields.emplace_back("dkim", "unsigned");
  tx.log_fields.emplace_back("dkim_reason", std::move(detail));
}

void DkimStage::on_header_block(Transaction& tx, std::string_view header_block) {
  auto block = auth::HeaderBlock::parse(std::string(header_block));
  if (!block) {
    skip(tx, "malformed-header", "malformed header: " + block.error().detail);
    return;
  }
  block_ = std::move(*block);
  auto from = auth::author_address(block_);
  if (!from) {
    const bool none = block_.count("from") == 0;
    const bool several = block_.count("from") > 1;
    skip(tx, none ? "no-from" : several ? "several-from" : "bad-from", from.error().detail);
    return;
  }
  selection_ = keys_->select(*from);
  if (!selection_) {
    skip(tx, "no-rule", "no signing rule for the From domain " + from->domain);
    return;
  }
  if (selection_->error) return;  // decided at end of data, by the rule's on_error
  // All keys of one config share the body canonicalization: one hash.
  hashes_.add(settings_.options.canonicalization.body);
  signing_ = true;
}

boost::asio::awaitable<Verdict> DkimStage::on_end_of_data(Transaction& tx, const Message&) {
  auto& m = obs::metrics();
  if (!selection_ && !skip_reason_) {
    // The assembler always shows the header block before the end; nothing to sign.
    skip(tx, "malformed-header", "no header block");
  }
  if (skip_reason_) {
    m.dkim_skipped.Add({{"reason", skip_reason_}}).Increment();
    co_return Verdict::next();
  }
  std::vector<std::string> signatures;
  std::string failure;
  if (selection_->error) {
    failure = selection_->error->detail;
  } else {
    hashes_.finish();
    const auto digest = hashes_.digest(settings_.options.canonicalization.body);
    auth::SignOptions options = settings_.options;
    options.timestamp = static_cast<std::int64_t>(std::time(nullptr));
    if (settings_.signature_lifetime.count() > 0) {
      options.expiration =
          options.timestamp +
          std::chrono::duration_cast<std::chrono::seconds>(settings_.signature_lifetime).count();
    }
    for (const auto* key : selection_->keys) {
      // A rule's i= goes only on the signatures whose d= covers it: a relay
      // domain's key next to ours signs without one (dkim_signing_rules.h).
      options.identity.reset();
      if (selection_->identity && auth::identity_within(*selection_->identity, key->spec.domain)) {
        options.identity = selection_->identity;
      }
      auto signature = auth::sign_header_block(block_, *digest, *key->signing_key, options);
      if (!signature) {
        failure = key->spec.name + ": " + signature.error().message();
        break;
      }
      signatures.push_back(std::move(*signature));
    }
  }
  if (!failure.empty()) {
    m.dkim_failures.Add({{"reason", selection_->error ? "key-unavailable" : "signing-error"}})
        .Increment();
    if (selection_->rule->on_error == auth::OnError::SendUnsigned) {
      tx.log_fields.emplace_back("dkim", "unsigned");
      tx.log_fields.emplace_back("dkim_reason",
                                 "signing failed, rule says send-unsigned: " + failure);
      m.dkim_skipped.Add({{"reason", "send-unsigned"}}).Increment();
      co_return Verdict::next();
    }
    tx.log_fields.emplace_back("dkim", "failed");
    co_return Verdict::stop(
        smtp::make_reply(451, "4.7.5", "Message could not be signed, try again later"),
        "signing failed (" + selection_->rule->origin + " is fail-closed): " + failure);
  }
  std::string names;
  for (std::size_t i = 0; i < signatures.size(); ++i) {
    const auto& key = *selection_->keys[i];
    m.dkim_signatures
        .Add({{"domain", key.spec.domain},
              {"selector", key.spec.selector},
              {"algorithm", auth::algorithm_name(key.signing_key->key->type())}})
        .Increment();
    names += (i ? "," : "") + key.spec.domain + ":" + key.spec.selector;
    tx.prepend_fields.push_back(std::move(signatures[i]));
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
  s.signature_lifetime = config.signature_lifetime;
  return s;
}

std::vector<std::unique_ptr<Stage>> DkimStageFactory::make_stages() const {
  std::vector<std::unique_ptr<Stage>> out;
  out.push_back(std::make_unique<DkimStage>(keys_, settings_));
  return out;
}

}  // namespace stampd::proxy
