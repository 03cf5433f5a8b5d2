#include "proxy/stages/sender_rights_stage.h"

#include "auth/dkim/author.h"
#include "auth/dkim/header_block.h"
#include "auth/mail_address.h"

namespace stampd::proxy {
namespace {

smtp::Reply not_allowed(std::string_view what) {
  return smtp::make_reply(550, "5.7.1", std::string(what) + " not allowed for this login");
}

class SenderRightsStage final : public Stage {
 public:
  explicit SenderRightsStage(std::shared_ptr<const Config> config) : config_(std::move(config)) {}
  const char* name() const override { return "sender-rights"; }

  boost::asio::awaitable<Verdict> on_mail_from(Transaction& tx) override {
    const std::string& login = tx.session->login();
    if (login.empty()) co_return Verdict::next();
    // The null sender is for bounces, which an app does not send.
    if (!sender_allowed(config_->auth, login, tx.mail_from)) {
      co_return Verdict::stop(not_allowed("Sender address"),
                              "mail-from-not-allowed login=" + login);
    }
    co_return Verdict::next();
  }

  void on_header_block(Transaction& tx, std::string_view header_block) override {
    const std::string& login = tx.session->login();
    if (login.empty()) return;
    auto block = auth::HeaderBlock::parse(std::string(header_block));
    if (!block) {
      problem_ = "unreadable-header";
      return;
    }
    // Exactly one From address (RFC 5322 §3.6.2), the one DKIM signs for.
    auto from = auth::author_address(*block);
    if (!from) {
      problem_ = "no-single-from";
      return;
    }
    const std::string address = from->local + "@" + from->domain;
    if (!sender_allowed(config_->auth, login, address)) problem_ = "from-not-allowed";
  }

  boost::asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message&) override {
    const std::string& login = tx.session->login();
    if (login.empty()) co_return Verdict::next();
    if (!problem_.empty()) {
      co_return Verdict::stop(not_allowed("From: header address"), problem_ + " login=" + login);
    }
    co_return Verdict::next();
  }

 private:
  std::shared_ptr<const Config> config_;
  // Set when the header block (always shown, even when empty) broke a rule.
  std::string problem_;
};

}  // namespace

bool sender_allowed(const AuthConfig& auth, std::string_view login, std::string_view address) {
  const AuthUser* user = auth.find_user(login);
  if (user == nullptr) return false;
  const auto split = auth::split_address(address);
  if (!split) return false;
  for (const auto& pattern : user->senders) {
    if (pattern.matches(*split)) return true;
  }
  return false;
}

std::vector<std::unique_ptr<Stage>> SenderRightsStageFactory::make_stages() const {
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(std::make_unique<SenderRightsStage>(config_));
  return stages;
}

}  // namespace stampd::proxy
