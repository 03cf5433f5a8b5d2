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

// The gate: "new" replaces "old"; the rule names "old". The key that signs
// follows what the DNS publishes for "new", and nothing else.
TEST(KeyWatch, ReplacingKeySignsOnlyWhileItsRecordMatches) {
  std::vector<auth::KeySpec> specs;
  std::vector<auth::PrivateKey> privates;
  for (const std::string name : {"old", "new"}) {
    auto key = auth::generate_private_key(auth::KeyAlgorithm::Ed25519);
    ASSERT_TRUE(key.ok());
    auth::KeySpec spec;
    spec.name = name;
    spec.domain = "example.com";
    spec.selector = name;
    spec.private_key_pem = key->to_pem();
    if (name == "new") spec.replaces = "old";
    specs.push_back(std::move(spec));
    privates.push_back(*key);
  }
  auth::SigningRule rule;
  rule.from = auth::FromPattern::glob("*@example.com");
  rule.keys = {"old"};
  auto built = auth::SigningKeys::build(specs, {rule});
  ASSERT_TRUE(built.ok()) << built.error().message();
  const auto keys = *built;
  const auto signer = [&] {
    const auto sel = keys->select(auth::MailAddress{"a", "example.com"}, 0);
    return sel && !sel->error && sel->keys.size() == 1 ? sel->keys[0]->spec.name : "?";
  };
  test::DkimFakeResolver dns;
  obs::Metrics metrics;
  KeyWatch watch(metrics);
  const auto check = [&] {
    test::run_coroutine<bool>([&](boost::asio::io_context&) -> boost::asio::awaitable<bool> {
      co_await watch.check(*keys, dns);
      co_return true;
    });
  };
  const std::string new_record = "new._domainkey.example.com";
  dns.add_txt("old._domainkey.example.com", auth::make_key_record(privates[0].public_key()));
  check();  // no record for "new" yet
  EXPECT_EQ(signer(), "old");
  dns.add_txt(new_record, auth::make_key_record(privates[0].public_key()));
  check();  // a record, but of the other key
  EXPECT_EQ(watch.state("example.com", "new"), "other-key");
  EXPECT_EQ(signer(), "old");
  dns.clear(new_record);
  dns.add_txt(new_record, auth::make_key_record(privates[1].public_key()));
  check();
  EXPECT_EQ(signer(), "new");
  // A failed lookup neither starts nor stops a key.
  dns.fail(new_record, net::DnsStatus::ServFail);
  check();
  EXPECT_EQ(watch.state("example.com", "new"), "unknown");
  EXPECT_EQ(signer(), "new");
  // Keys built anew (a reload) sign as before once restored.
  auto rebuilt = auth::SigningKeys::build(specs, {rule});
  ASSERT_TRUE(rebuilt.ok());
  dns.clear(new_record);
  dns.add_txt(new_record, auth::make_key_record(privates[1].public_key()));
  check();
  watch.restore(**rebuilt);
  EXPECT_TRUE((*rebuilt)->record_matches(*(*rebuilt)->find_key("new")));
  // The record removed: the old key signs again.
  dns.clear(new_record);
  check();
  EXPECT_EQ(watch.state("example.com", "new"), "missing");
  EXPECT_EQ(signer(), "old");
}

}  // namespace
}  // namespace stampd::proxy
