// Signing rules: From address extraction, pattern syntax and matching
// (including the documented choice that *@*.domain does not match domain),
// first match wins and the keyring's checks. Signing by these rules, with
// fail-closed / send-unsigned, is in message_signer_test.cc.
#include "auth/dkim/signing_rules.h"

#include <gtest/gtest.h>

#include "auth/dkim/author.h"
#include "auth/dkim/keyring.h"
#include "tests/support/dkim_corpus.h"

namespace stampd::auth {
namespace {

using test::read_test_file;

MailAddress addr(const std::string& a) { return *split_address(a); }

FromPattern pattern(const std::string& p) {
  auto r = FromPattern::parse(p);
  if (!r.ok()) throw std::runtime_error(r.error().message());
  return *r;
}

TEST(DkimAuthor, ExtractsTheOneFromAddress) {
  struct Case {
    std::string value;
    std::string want;
  };
  const std::vector<Case> ok = {
      {"alice@example.com", "alice@example.com"},
      {"Alice Example <alice@example.com>", "alice@example.com"},
      {"\"Example, Alice (Sales)\" <alice@example.com> (comment)", "alice@example.com"},
      {"alice@example.com (Alice, with comma)", "alice@example.com"},
      {"=?utf-8?q?=C3=85lice?= <Alice@Example.COM>", "Alice@example.com"},
      {"Ålice <alice@example.com>", "alice@example.com"},
      {"<@route.example:alice@example.com>", "alice@example.com"},
      {"\"john doe\"@example.com", "\"john doe\"@example.com"},
      {"Team: alice@example.com;", "alice@example.com"},
      {" Alice\r\n <alice@example.com>", "alice@example.com"},
  };
  for (const auto& c : ok) {
    auto block = HeaderBlock::parse("From:" + c.value + "\r\n");
    ASSERT_TRUE(block.ok()) << c.value;
    auto a = author_address(*block);
    ASSERT_TRUE(a.ok()) << c.value << ": " << a.error().detail;
    EXPECT_EQ(a->local + "@" + a->domain, c.want) << c.value;
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"To: x@example.com\r\n", "no From"},
      {"From: a@example.com\r\nFrom: b@example.com\r\n", "more than one From"},
      {"From: a@example.com, b@example.com\r\n", "2 addresses"},
      {"From: undisclosed-recipients:;\r\n", "no address"},
      {"From: Alice <alice@example.com\r\n", "unbalanced"},
      {"From: alice\r\n", "not local@domain"},
  };
  for (const auto& [header, reason] : bad) {
    auto block = HeaderBlock::parse(header);
    ASSERT_TRUE(block.ok());
    auto a = author_address(*block);
    ASSERT_FALSE(a.ok()) << header;
    EXPECT_NE(a.error().detail.find(reason), std::string::npos) << a.error().detail;
  }
}

TEST(DkimSigningRules, PatternSyntaxAndMatching) {
  EXPECT_TRUE(pattern("ceo@example.com").matches(addr("ceo@example.com")));
  EXPECT_TRUE(pattern("ceo@example.com").matches(addr("CEO@Example.COM")));  // case-insensitive
  EXPECT_FALSE(pattern("ceo@example.com").matches(addr("cfo@example.com")));
  EXPECT_TRUE(pattern("*@example.com").matches(addr("anyone@EXAMPLE.com")));
  EXPECT_FALSE(pattern("*@example.com").matches(addr("anyone@sub.example.com")));
  EXPECT_FALSE(pattern("*@example.com").matches(addr("anyone@notexample.com")));
  EXPECT_TRUE(pattern("*@*.example.com").matches(addr("a@sub.example.com")));
  EXPECT_TRUE(pattern("*@*.example.com").matches(addr("a@deep.sub.example.com")));
  // Documented choice (as OpenDKIM's refile): subdomains only.
  EXPECT_FALSE(pattern("*@*.example.com").matches(addr("a@example.com")));
  EXPECT_FALSE(pattern("*@*.example.com").matches(addr("a@badexample.com")));
  EXPECT_TRUE(pattern("*").matches(addr("x@y.z")));
  EXPECT_TRUE(pattern("*@*").matches(addr("x@y.z")));

  for (const char* bad : {"example.com", "@example.com", "a*b@example.com", "*@", "*@exa mple.com",
                          "*@*example.com", "*@.example.com", "*@*.*.example.com"}) {
    auto r = FromPattern::parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().detail.find(bad), std::string::npos) << r.error().detail;
    }
  }
  EXPECT_EQ(parse_on_error("send-unsigned"), OnError::SendUnsigned);
  EXPECT_EQ(parse_on_error("fail-closed"), OnError::FailClosed);
  EXPECT_FALSE(parse_on_error("ignore").has_value());
}

TEST(DkimSigningRules, FirstMatchWins) {
  std::vector<SigningRule> rules(3);
  rules[0].from = pattern("ceo@example.com");
  rules[0].keys = {"ceo"};
  rules[1].from = pattern("*@example.com");
  rules[1].keys = {"main"};
  rules[2].from = pattern("*@*.example.com");
  rules[2].keys = {"subs"};
  EXPECT_EQ(match_rule(rules, addr("ceo@example.com"))->keys[0], "ceo");
  EXPECT_EQ(match_rule(rules, addr("bob@example.com"))->keys[0], "main");
  EXPECT_EQ(match_rule(rules, addr("bob@mail.example.com"))->keys[0], "subs");
  EXPECT_EQ(match_rule(rules, addr("bob@example.org")), nullptr);
}

std::vector<KeySpec> rfc_keys() {
  return {
      KeySpec{"ed",
              "example.com",
              "ed2026",
              "",
              read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem"),
              "test:1",
              {},
              {},
              {}},
      KeySpec{"rsa",
              "example.com",
              "rsa2026",
              "",
              read_test_file("dkim/rfc8463/rsa.private.pkcs8.pem"),
              "test:2",
              {},
              {},
              {}},
      KeySpec{"broken",
              "example.org",
              "x",
              "",
              "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
              "test:3",
              {},
              {},
              {}},
  };
}

TEST(DkimKeyring, BuildChecks) {
  // A broken key is an error unless the keyring is told to keep it.
  auto strict = SigningKeys::build(rfc_keys(), {});
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.error().detail.find("test:3"), std::string::npos) << strict.error().detail;
  EXPECT_NE(strict.error().detail.find("broken"), std::string::npos);

  KeyringOptions keep;
  keep.keep_broken_keys = true;
  auto ring = SigningKeys::build(rfc_keys(), {}, keep);
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  EXPECT_EQ((*ring)->keys().size(), 3u);
  ASSERT_EQ((*ring)->warnings().size(), 1u);  // the 1024-bit RSA key
  EXPECT_NE((*ring)->warnings()[0].find("\"rsa\""), std::string::npos);

  auto dup = rfc_keys();
  dup[1].name = "ed";
  EXPECT_FALSE(SigningKeys::build(dup, {}, keep).ok());

  SigningRule unknown;
  unknown.from = pattern("*@example.com");
  unknown.keys = {"nope"};
  unknown.origin = "stampd.toml:12";
  auto bad_rule = SigningKeys::build(rfc_keys(), {unknown}, keep);
  ASSERT_FALSE(bad_rule.ok());
  EXPECT_NE(bad_rule.error().detail.find("stampd.toml:12"), std::string::npos);
  EXPECT_NE(bad_rule.error().detail.find("nope"), std::string::npos);
  SigningRule none;
  none.from = pattern("*@example.com");
  EXPECT_FALSE(SigningKeys::build(rfc_keys(), {none}, keep).ok());
}

TEST(DkimKeyring, PercentKeyNameAndIdentity) {
  std::vector<KeySpec> keys = {KeySpec{"example.com",
                                       "example.com",
                                       "s",
                                       "",
                                       read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem"),
                                       "",
                                       {},
                                       {},
                                       {}}};
  SigningRule rule;
  rule.from = FromPattern::glob("*");
  rule.keys = {"%"};
  rule.identity = "postmaster@%";
  auto ring = SigningKeys::build(keys, {rule});
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  const auto sel = (*ring)->select(addr("x@example.com"), 0);
  ASSERT_TRUE(sel.has_value());
  ASSERT_FALSE(sel->error.has_value());
  EXPECT_EQ(sel->identity, "postmaster@example.com");
  const auto missing = (*ring)->select(addr("x@example.net"), 0);
  ASSERT_TRUE(missing.has_value());
  ASSERT_TRUE(missing->error.has_value());
  EXPECT_NE(missing->error->detail.find("example.net"), std::string::npos);
}

// chain_keys: "old" (RSA), "new" replacing it (Ed25519) and "newer"
// replacing "new" (RSA again), all of example.com; one rule naming "old".
std::vector<KeySpec> chain_keys() {
  auto keys = rfc_keys();
  keys.pop_back();  // the broken one
  KeySpec old = keys[1];
  old.name = "old";
  old.selector = "s202611";
  KeySpec next = keys[0];
  next.name = "new";
  next.selector = "s202612";
  next.replaces = "old";
  next.origin = "test:5";
  KeySpec newer = keys[1];
  newer.name = "newer";
  newer.selector = "s202701";
  newer.replaces = "new";
  return {old, next, newer};
}

SigningRule rule_for(std::vector<std::string> keys) {
  SigningRule rule;
  rule.from = FromPattern::glob("*@example.com");
  rule.keys = std::move(keys);
  rule.origin = "test:9";
  return rule;
}

std::string signer_at(const SigningKeys& ring, std::int64_t now) {
  const auto sel = ring.select(MailAddress{"a", "example.com"}, now);
  if (!sel) return "no rule";
  if (sel->error) return "error: " + sel->error->detail;
  std::string names;
  for (const auto* k : sel->keys) names += (names.empty() ? "" : ",") + k->spec.name;
  return names;
}

TEST(DkimKeyring, ReplacementWaitsForTheRecord) {
  auto ring = SigningKeys::build(chain_keys(), {rule_for({"old"})});
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  const SigningKeys& r = **ring;
  const auto& old = *r.find_key("old");
  const auto& next = *r.find_key("new");
  const auto& newer = *r.find_key("newer");
  EXPECT_FALSE(old.gated());
  EXPECT_TRUE(next.gated());
  EXPECT_EQ(next.replaces, &old);
  EXPECT_EQ(old.replaced_by, &next);
  // Neither successor's record seen yet: the old key signs.
  EXPECT_EQ(signer_at(r, 0), "old");
  // The newest whose record matches signs; a rule naming any key of the
  // chain gets it.
  r.set_record_matches(next, true);
  EXPECT_EQ(signer_at(r, 0), "new");
  r.set_record_matches(newer, true);
  EXPECT_EQ(signer_at(r, 0), "newer");
  // Its record gone again: back to the one before.
  r.set_record_matches(newer, false);
  EXPECT_EQ(signer_at(r, 0), "new");
  auto named_new = SigningKeys::build(chain_keys(), {rule_for({"new", "old"})});
  ASSERT_TRUE(named_new.ok());
  EXPECT_EQ(signer_at(**named_new, 0), "old");  // the same key once, not twice
}

TEST(DkimKeyring, RetiredKeysStopSigning) {
  auto keys = chain_keys();
  keys[0].retire_after = 1000;
  auto ring = SigningKeys::build(keys, {rule_for({"old"})});
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  EXPECT_EQ(signer_at(**ring, 999), "old");
  // Retired, and its successors wait for their records: nothing may sign,
  // and the error says why for each key, newest first.
  const std::string none = signer_at(**ring, 1000);
  EXPECT_EQ(none.rfind("error: no key may sign: key \"newer\" waits for its DNS record "
                       "(s202701._domainkey.example.com)",
                       0),
            0u)
      << none;
  EXPECT_NE(none.find("key \"old\" retired at 1970-01-01T00:16:40Z"), std::string::npos) << none;
  (*ring)->set_record_matches(*(*ring)->find_key("new"), true);
  EXPECT_EQ(signer_at(**ring, 1000), "new");
}

TEST(DkimKeyring, BrokenSuccessorLeavesTheOldKeySigning) {
  auto keys = chain_keys();
  keys[1].private_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  KeyringOptions keep;
  keep.keep_broken_keys = true;
  auto ring = SigningKeys::build(keys, {rule_for({"new"})}, keep);
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  (*ring)->set_record_matches(*(*ring)->find_key("new"), true);  // cannot sign anyway
  EXPECT_EQ(signer_at(**ring, 0), "old");
}

TEST(DkimKeyring, ReplacesIsChecked) {
  const auto error_of = [](std::vector<KeySpec> keys) {
    auto ring = SigningKeys::build(std::move(keys), {});
    return ring.ok() ? std::string("built") : ring.error().detail;
  };
  auto unknown = chain_keys();
  unknown[1].replaces = "nope";
  EXPECT_EQ(error_of(unknown), "test:5: key \"new\" replaces unknown key \"nope\"");
  auto itself = chain_keys();
  itself[1].replaces = "new";
  EXPECT_EQ(error_of(itself), "test:5: key \"new\" replaces itself");
  auto twice = chain_keys();
  twice[2].replaces = "old";
  EXPECT_EQ(error_of(twice),
            "test:2: key \"newer\" replaces \"old\", which \"new\" already replaces");
  auto other_domain = chain_keys();
  other_domain[0].domain = "example.net";
  EXPECT_EQ(error_of(other_domain),
            "test:5: key \"new\" replaces \"old\" of domain example.net; a key can only "
            "replace one of its own domain");
  auto loop = chain_keys();
  loop[0].replaces = "newer";
  EXPECT_NE(error_of(loop).find("in a loop of keys replacing each other"), std::string::npos)
      << error_of(loop);
}

TEST(DkimKeyring, ArcSealKeyIsCheckedAndSelected) {
  const auto error_of = [](const std::string& seal) {
    SigningRule rule = rule_for({"rsa"});
    rule.arc_seal = seal;
    rule.origin = "test:9";
    auto keys = rfc_keys();
    keys.pop_back();
    auto ring = SigningKeys::build(std::move(keys), {rule});
    return ring.ok() ? std::string("built") : ring.error().detail;
  };
  EXPECT_EQ(error_of("rsa"), "built");
  EXPECT_EQ(error_of("nope"), "test:9: rule \"*@example.com\" seals with unknown key \"nope\"");
  EXPECT_EQ(error_of("ed"),
            "test:9: rule \"*@example.com\" seals with key \"ed\", which is not RSA (ARC signs "
            "with rsa-sha256 only)");

  // The sealing key of a rotation chain is the one that signs now.
  SigningRule rule = rule_for({"old"});
  rule.arc_seal = "old";
  auto keys = chain_keys();
  keys[1] = keys[2];  // "new" is RSA too
  keys[1].name = "new";
  keys[1].replaces = "old";
  keys[2].replaces = "new";
  auto ring = SigningKeys::build(keys, {rule});
  ASSERT_TRUE(ring.ok()) << ring.error().detail;
  const auto sel = (*ring)->select(addr("a@example.com"), 0);
  ASSERT_TRUE(sel && !sel->error);
  EXPECT_EQ(sel->arc_key->spec.name, "old");
  (*ring)->set_record_matches(*(*ring)->find_key("new"), true);
  EXPECT_EQ((*ring)->select(addr("a@example.com"), 0)->arc_key->spec.name, "new");
}

}  // namespace
}  // namespace stampd::auth
