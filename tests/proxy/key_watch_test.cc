// KeyWatch: each usable key's DNS record checked (through a scripted
// resolver), the stampd_dkim_key_dns_state gauge set to 1 for exactly one
// state per key, and the state remembered so that changes can be logged.
#include "proxy/key_watch.h"

#include <gtest/gtest.h>

#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "tests/support/dkim_fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::proxy {
namespace {

struct Keys {
  std::shared_ptr<const auth::SigningKeys> keys;
  std::vector<auth::PrivateKey> private_keys;
};

Keys make_keys(const std::vector<std::string>& selectors) {
  Keys out;
  std::vector<auth::KeySpec> specs;
  for (const auto& selector : selectors) {
    auto key = auth::generate_private_key(auth::KeyAlgorithm::Ed25519);
    EXPECT_TRUE(key.ok());
    auth::KeySpec spec;
    spec.name = selector;
    spec.domain = "example.com";
    spec.selector = selector;
    spec.private_key_pem = key->to_pem();
    specs.push_back(std::move(spec));
    out.private_keys.push_back(*key);
  }
  auto keys = auth::SigningKeys::build(std::move(specs), {});
  EXPECT_TRUE(keys.ok());
  out.keys = *keys;
  return out;
}

double gauge(obs::Metrics& m, const std::string& selector, const std::string& state) {
  return m.dkim_key_dns_state
      .Add({{"domain", "example.com"}, {"selector", selector}, {"state", state}})
      .Value();
}

TEST(KeyWatch, EachKeyGetsExactlyOneState) {
  const auto k = make_keys({"good", "gone", "other", "broken", "down"});
  test::DkimFakeResolver dns;
  dns.add_txt("good._domainkey.example.com", auth::make_key_record(k.private_keys[0].public_key()));
  // gone: no record at all.
  dns.add_txt("other._domainkey.example.com",
              auth::make_key_record(k.private_keys[0].public_key()));
  dns.add_txt("broken._domainkey.example.com", "v=DKIM1; k=ed25519; p=");
  dns.fail("down._domainkey.example.com", net::DnsStatus::ServFail);
  obs::Metrics metrics;
  KeyWatch watch(metrics);
  test::run_coroutine<bool>([&](boost::asio::io_context&) -> boost::asio::awaitable<bool> {
    co_await watch.check(*k.keys, dns);
    co_return true;
  });
  const std::map<std::string, std::string> want = {{"good", "matches"},
                                                   {"gone", "missing"},
                                                   {"other", "other-key"},
                                                   {"broken", "revoked"},
                                                   {"down", "unknown"}};
  for (const auto& [selector, state] : want) {
    EXPECT_EQ(watch.state("example.com", selector), state);
    double sum = 0;
    for (const char* s : {"matches", "missing", "several", "truncated", "malformed", "revoked",
                          "other-key", "unknown"}) {
      sum += gauge(metrics, selector, s);
    }
    EXPECT_EQ(sum, 1) << selector;
    EXPECT_EQ(gauge(metrics, selector, state), 1) << selector;
  }

  // The record appears: the next check follows it.
  dns.add_txt("gone._domainkey.example.com", auth::make_key_record(k.private_keys[1].public_key()));
  test::run_coroutine<bool>([&](boost::asio::io_context&) -> boost::asio::awaitable<bool> {
    co_await watch.check(*k.keys, dns);
    co_return true;
  });
  EXPECT_EQ(watch.state("example.com", "gone"), "matches");
  EXPECT_EQ(gauge(metrics, "gone", "matches"), 1);
  EXPECT_EQ(gauge(metrics, "gone", "missing"), 0);
}

}  // namespace
}  // namespace stampd::proxy
