// key_watch.h: whether the DNS still publishes each signing key. The daemon
// asks at start, after each reload and every [dkim] dns_check_interval; the
// answer is the stampd_dkim_key_dns_state gauge (what alerts watch), a log
// line whenever a key's state changes, and the gate of each key that
// replaces another ([[dkim.key]] replaces): it signs only while its record
// matches. Verdicts come from auth::check_published_key, the same as
// `stampd dns-check`.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <map>
#include <string>
#include <utility>

#include "auth/dkim/keyring.h"
#include "net/resolver.h"
#include "obs/metrics.h"

namespace stampd::proxy {

// KeyDnsState is a key's state: a PublishedKeyState's name ("matches",
// "missing", "several", "truncated", "malformed", "revoked", "other-key") or
// "unknown" when the lookup failed (SERVFAIL, timeout).
class KeyWatch {
 public:
  // log: whether state changes are logged (the daemon); explain looks once, quietly.
  explicit KeyWatch(obs::Metrics& metrics, bool log = true) : metrics_(metrics), log_(log) {}

  // check asks for every usable key of keys, updates the gauge and opens or
  // closes each gated key's gate (SigningKeys::set_record_matches); a state
  // that changed (or is seen for the first time and is not "matches") is
  // logged, and so is a gate that opens or stays closed. resolver must
  // outlive the call.
  boost::asio::awaitable<void> check(const auth::SigningKeys& keys, net::Resolver& resolver);

  // restore opens the gates of keys whose record matched at the last check,
  // so that keys built anew by a reload sign as before until the next check.
  void restore(const auth::SigningKeys& keys) const;

  // state is the last state of (domain, selector); "" before the first check.
  std::string state(const std::string& domain, const std::string& selector) const;

 private:
  void record(const std::string& domain, const std::string& selector, const std::string& state,
              const std::string& detail);
  // gate logs (once per change) whether a replacing key signs, given its
  // record's state.
  void gate(const auth::SigningKeys& keys, const auth::SigningKeys::Key& key,
            const std::string& record_state);

  obs::Metrics& metrics_;
  bool log_;
  std::map<std::pair<std::string, std::string>, bool> gates_;  // last logged, per gated key
  std::map<std::pair<std::string, std::string>, std::string> states_;
};

}  // namespace stampd::proxy
