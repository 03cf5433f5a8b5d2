#include "proxy/stages/spf_stage.h"

#include "auth/mail_address.h"
#include "auth/spf/egress.h"
#include "auth/spf/evaluator.h"

namespace stampd::proxy {

namespace {

class SpfStage final : public Stage {
 public:
  SpfStage(std::shared_ptr<const Config> config, std::shared_ptr<net::Resolver> resolver,
           const SpfCounters& counters)
      : config_(std::move(config)), resolver_(std::move(resolver)), counters_(counters) {}
  const char* name() const override { return "spf"; }
  boost::asio::awaitable<Verdict> on_mail_from(Transaction& tx) override;

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<net::Resolver> resolver_;
  const SpfCounters& counters_;  // the factory's, which outlives its stages
};

boost::asio::awaitable<Verdict> SpfStage::on_mail_from(Transaction& tx) {
  const auto& spf = config_->spf;
  const smtp::Session& session = *tx.session;
  // The sender domain: MAIL FROM's, or the HELO name for the null sender (RFC 7208 §2.4).
  const auto sender = auth::split_address(tx.mail_from);
  const std::string domain = sender ? sender->domain : auth::ascii_lower(session.helo());
  if (spf_mode_for(spf, domain) == SpfMode::Off) co_return Verdict::next();

  auth::SpfOptions options;
  options.receiver = config_->server.hostname;
  options.record_trace = false;
  std::string helo = session.helo();
  net::IpAddress ip = session.client().address;
  // Postfix content_filter: the original client, not the filter, sent the mail.
  if (const auto* addr = session.xforward().find("ADDR")) {
    if (auto original = xforward_address(*addr)) ip = *original;
  }
  if (const auto* h = session.xforward().find("HELO"); h && !h->empty() && *h != "[UNAVAILABLE]")
    helo = *h;

  auth::SpfResult result;
  std::string identity = "mailfrom";
  if (spf.ip == SpfIpSource::Egress) {
    auto report =
        co_await auth::check_egress(*resolver_, spf.egress_ips, tx.mail_from, helo, options);
    ip = report.worst_ip;
    if (const auto* worst = report.worst_result()) result = *worst;
  } else {
    if (spf.helo_check) {
      auto helo_result = co_await auth::check_helo(*resolver_, ip, helo, options);
      // RFC 7208 §2.3: a definite HELO result may decide on its own.
      if (helo_result.verdict == auth::SpfVerdict::Fail) {
        result = std::move(helo_result);
        identity = "helo";
      }
    }
    if (identity == "mailfrom") {
      result = co_await auth::check_mail_from(*resolver_, ip, tx.mail_from, helo, options);
    }
  }

  const SpfAction action = spf_decide(spf, domain, result.verdict);
  counters_[static_cast<std::size_t>(result.verdict)][static_cast<std::size_t>(action)]
      ->Increment();
  tx.log_fields.emplace_back("spf", auth::to_string(result.verdict));
  tx.log_fields.emplace_back("spf_ip", net::unmap(ip).to_string());
  tx.log_fields.emplace_back("spf_action", to_string(action));
  tx.log_fields.emplace_back("spf_detail", auth::summarize(result));
  switch (action) {
    case SpfAction::Accept:
      break;
    case SpfAction::Tag:
      tx.prepend_fields.push_back(
          received_spf_field(result, ip, helo, config_->server.hostname, identity));
      break;
    case SpfAction::Reject:
    case SpfAction::Tempfail:
      co_return Verdict::stop(spf_refusal(action, result), "spf " + auth::summarize(result));
  }
  co_return Verdict::next();
}

}  // namespace

std::optional<net::IpAddress> xforward_address(std::string_view value) {
  if (value.size() > 5 && (value.substr(0, 5) == "IPV6:" || value.substr(0, 5) == "ipv6:")) {
    value.remove_prefix(5);
  }
  auto ip = net::parse_ip(value);
  if (!ip) return std::nullopt;
  return net::unmap(*ip);
}

SpfStageFactory::SpfStageFactory(std::shared_ptr<const Config> config,
                                 std::shared_ptr<net::Resolver> resolver, obs::Metrics& metrics)
    : config_(std::move(config)), resolver_(std::move(resolver)) {
  for (std::size_t v = 0; v < counters_.size(); ++v) {
    for (std::size_t a = 0; a < counters_[v].size(); ++a) {
      counters_[v][a] =
          &metrics.spf_results.Add({{"result", auth::to_string(static_cast<auth::SpfVerdict>(v))},
                                    {"action", to_string(static_cast<SpfAction>(a))}});
    }
  }
}

std::vector<std::unique_ptr<Stage>> SpfStageFactory::make_stages() const {
  std::vector<std::unique_ptr<Stage>> out;
  out.push_back(std::make_unique<SpfStage>(config_, resolver_, counters_));
  return out;
}

}  // namespace stampd::proxy
