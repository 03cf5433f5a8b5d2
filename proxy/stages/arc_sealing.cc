#include "proxy/stages/arc_sealing.h"

#include <map>
#include <utility>

#include "auth/dkim/verifier.h"

namespace stampd::proxy {
namespace {

using KeyMap = std::map<std::pair<std::string, std::string>, auth::KeyLookup>;

boost::asio::awaitable<KeyMap> fetch_keys(std::vector<std::pair<std::string, std::string>> wanted,
                                          std::shared_ptr<net::Resolver> resolver) {
  KeyMap keys;
  for (auto& want : wanted) {
    auth::KeyLookup found{std::nullopt, auth::VerifyStatus::TempError, "no resolver"};
    if (resolver) {
      const net::DnsAnswer answer = co_await resolver->query(
          auth::key_record_name(want.second, want.first), net::RrType::Txt);
      found = auth::key_lookup_from_dns(answer);
    }
    keys.emplace(std::move(want), std::move(found));
  }
  co_return keys;
}

// not_sealed handles a message the rule wanted sealed that cannot be now.
std::optional<Verdict> not_sealed(Transaction& tx, const auth::SigningRule& rule,
                                  prometheus::Counter* counter, const std::string& why) {
  counter->Increment();
  if (rule.on_error == auth::OnError::FailClosed) {
    tx.log_fields.emplace_back("arc_set", "failed");
    return Verdict::stop(
        smtp::make_reply(451, "4.7.5", "Message could not be sealed, try again later"),
        "ARC sealing failed (" + rule.origin + " is fail-closed): " + why);
  }
  tx.log_fields.emplace_back("arc_set", "none");
  tx.log_fields.emplace_back("arc_reason", "rule says send-unsigned: " + why);
  return std::nullopt;
}

}  // namespace

ArcCounters ArcCounters::make(obs::Metrics& metrics) {
  ArcCounters c;
  for (auto cv :
       {auth::ChainValidation::None, auth::ChainValidation::Pass, auth::ChainValidation::Fail}) {
    c.sets[static_cast<std::size_t>(cv)] = &metrics.arc_sets.Add({{"cv", auth::to_string(cv)}});
  }
  c.chain_failed = &metrics.arc_not_sealed.Add({{"reason", "chain-failed"}});
  c.chain_full = &metrics.arc_not_sealed.Add({{"reason", "chain-full"}});
  c.dns_error = &metrics.arc_not_sealed.Add({{"reason", "dns-error"}});
  c.signing_error = &metrics.arc_not_sealed.Add({{"reason", "signing-error"}});
  return c;
}

boost::asio::awaitable<std::optional<Verdict>> seal_arc(
    Transaction& tx, auth::MessageSealer& sealer, auth::Sha256Digest body_hash,
    const auth::SigningKey& key, const auth::SigningRule& rule, const ArcSettings& settings,
    const ArcCounters& counters, auth::ArcSealOptions options) {
  const KeyMap keys = co_await fetch_keys(sealer.wanted_keys(), settings.resolver);
  const auth::KeyLookupFunction lookup = [&keys](const std::string& domain,
                                                 const std::string& selector) {
    const auto it = keys.find({domain, selector});
    if (it != keys.end()) return it->second;
    return auth::KeyLookup{std::nullopt, auth::VerifyStatus::PermError, "no key record"};
  };
  const auth::ArcVerdict& verdict = sealer.verify(lookup);
  tx.log_fields.emplace_back("arc", auth::to_string(verdict.result));
  if (verdict.result == auth::ChainValidation::Fail)
    tx.log_fields.emplace_back("arc_chain", verdict.reason);
  if (verdict.temporary) {
    co_return not_sealed(tx, rule, counters.dns_error,
                         "the ARC chain could not be checked: " + verdict.reason);
  }
  if (!verdict.next_instance()) {
    // §5.1.1: a chain its last sealer declared failed gets no set; the
    // message goes on as it came.
    (verdict.latest_failed ? counters.chain_failed : counters.chain_full)->Increment();
    tx.log_fields.emplace_back("arc_set", "none");
    co_return std::nullopt;
  }
  std::string on_top;
  for (const std::string& field : tx.prepend_fields) on_top += field;
  auto set = sealer.seal(on_top, body_hash, settings.authserv_id, key, options);
  if (!set) co_return not_sealed(tx, rule, counters.signing_error, set.error().message());
  tx.prepend_fields.insert(
      tx.prepend_fields.begin(),
      {std::move(set->seal), std::move(set->message_signature), std::move(set->results)});
  counters.sets[static_cast<std::size_t>(verdict.result)]->Increment();
  tx.log_fields.emplace_back("arc_set", "i=" + std::to_string(*verdict.next_instance()));
  co_return std::nullopt;
}

}  // namespace stampd::proxy
