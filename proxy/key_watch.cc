#include "proxy/key_watch.h"

#include <array>
#include <ctime>

#include "auth/dkim/published_key.h"
#include "auth/dkim/verifier.h"
#include "obs/log.h"

namespace stampd::proxy {

namespace {

constexpr std::array<const char*, 8> kStates = {"matches",   "missing", "several",   "truncated",
                                                "malformed", "revoked", "other-key", "unknown"};

}  // namespace

boost::asio::awaitable<void> KeyWatch::check(const auth::SigningKeys& keys,
                                             net::Resolver& resolver) {
  for (const auto& key : keys.keys()) {
    if (!key.signing_key) continue;
    const std::string name = auth::key_record_name(key.spec.selector, key.spec.domain);
    const net::DnsAnswer answer = co_await resolver.query(name, net::RrType::Txt);
    if (answer.status == net::DnsStatus::ServFail || answer.status == net::DnsStatus::Timeout) {
      record(key.spec.domain, key.spec.selector, "unknown",
             std::string("lookup of ") + name + " failed: " + net::to_string(answer.status) +
                 (answer.detail.empty() ? "" : " (" + answer.detail + ")"));
      // A failed lookup proves nothing either way: a gate stays as it was,
      // so a DNS outage neither starts nor stops a key.
      continue;
    }
    const std::vector<std::string> none;
    const auto verdict = auth::check_published_key(answer.ok() ? answer.txt : none,
                                                   key.signing_key->key->public_key());
    record(key.spec.domain, key.spec.selector, auth::to_string(verdict.state), verdict.detail);
    const bool matches = verdict.state == auth::PublishedKeyState::Matches;
    keys.set_record_matches(key, matches);
    if (key.gated()) gate(keys, key, auth::to_string(verdict.state));
  }
}

void KeyWatch::gate(const auth::SigningKeys& keys, const auth::SigningKeys::Key& key,
                    const std::string& record_state) {
  const bool open = record_state == "matches";
  const auto id = std::make_pair(key.spec.domain, key.spec.selector);
  const auto last = gates_.find(id);
  if (last != gates_.end() && last->second == open) return;
  gates_[id] = open;
  if (!log_) return;
  std::string detail;
  if (open) {
    detail = "its record matches: it signs in place of key \"" + key.replaces->spec.name + "\"";
  } else {
    const auto instead = keys.signing_key(key, static_cast<std::int64_t>(std::time(nullptr)));
    detail = "its record does not publish its public key (" + record_state + "); " +
             (instead ? "key \"" + (*instead)->spec.name + "\" signs in its place"
                      : instead.error().detail);
  }
  const std::vector<obs::LogField> fields{
      {"domain", key.spec.domain}, {"selector", key.spec.selector},
      {"key", key.spec.name},      {"replaces", key.replaces->spec.name},
      {"record", record_state},    {"signs", open ? "yes" : "no"},
      {"detail", detail}};
  obs::Logger::write(open ? obs::LogLevel::Info : obs::LogLevel::Warning, "dkim-key-gate", fields);
}

void KeyWatch::restore(const auth::SigningKeys& keys) const {
  for (const auto& key : keys.keys()) {
    if (key.signing_key && state(key.spec.domain, key.spec.selector) == "matches")
      keys.set_record_matches(key, true);
  }
}

void KeyWatch::record(const std::string& domain, const std::string& selector,
                      const std::string& state, const std::string& detail) {
  for (const char* s : kStates) {
    metrics_.dkim_key_dns_state.Add({{"domain", domain}, {"selector", selector}, {"state", s}})
        .Set(state == s ? 1 : 0);
  }
  std::string& last = states_[{domain, selector}];
  if (last == state || (last.empty() && state == "matches")) {
    last = state;
    return;
  }
  const std::string before = last.empty() ? "first check" : last;
  last = state;
  if (!log_) return;
  if (state == "matches") {
    obs::log_info("dkim-key-dns",
                  {{"domain", domain}, {"selector", selector}, {"state", state}, {"was", before}});
  } else {
    obs::log_warning("dkim-key-dns", {{"domain", domain},
                                      {"selector", selector},
                                      {"state", state},
                                      {"was", before},
                                      {"detail", detail}});
  }
}

std::string KeyWatch::state(const std::string& domain, const std::string& selector) const {
  const auto it = states_.find({domain, selector});
  return it == states_.end() ? "" : it->second;
}

}  // namespace stampd::proxy
