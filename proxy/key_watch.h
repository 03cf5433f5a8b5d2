// key_watch.h: whether the DNS still publishes each signing key. The daemon
// asks at start, after each reload and every [dkim] dns_check_interval; the
// answer is the stampd_dkim_key_dns_state gauge (what alerts watch) and a
// log line whenever a key's state changes. Verdicts come from
// auth::check_published_key, the same as `stampd dns-check`.
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
  explicit KeyWatch(obs::Metrics& metrics) : metrics_(metrics) {}

  // check asks for every usable key of keys and updates the gauge; a state
  // that changed (or is seen for the first time and is not "matches") is
  // logged. resolver must outlive the call.
  boost::asio::awaitable<void> check(const auth::SigningKeys& keys, net::Resolver& resolver);

  // state is the last state of (domain, selector); "" before the first check.
  std::string state(const std::string& domain, const std::string& selector) const;

 private:
  void record(const std::string& domain, const std::string& selector, const std::string& state,
              const std::string& detail);

  obs::Metrics& metrics_;
  std::map<std::pair<std::string, std::string>, std::string> states_;
};

}  // namespace stampd::proxy
