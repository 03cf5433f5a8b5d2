// OpenDKIM migration: KeyTable and SigningTable parsing (comments, blank
// lines, continuations, refile wildcards, plain lookup order) with
// file:line errors, and loading real files with relative key paths.
#include "auth/dkim/opendkim_tables.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "auth/dkim/keyring.h"
#include "tests/support/dkim_corpus.h"

namespace stampd::auth {
namespace {

MailAddress addr(const std::string& a) { return *split_address(a); }

std::string first_key(const std::vector<SigningRule>& rules, const std::string& address) {
  const SigningRule* r = match_rule(rules, addr(address));
  return r == nullptr ? "<none>" : r->keys.front();
}

TEST(DkimOpenDkimTables, KeyTable) {
  const std::string text =
      "# KeyTable written by the how-to\n"
      "\n"
      "mail._domainkey.example.com example.com:mail:/etc/opendkim/keys/example.com/mail.private\n"
      "   ed._domainkey.example.com   example.com:ed:./keys/ed.private   # trailing comment\r\n"
      "rel example.org:sel:\\\n"
      "  ../keys/org.private\n";
  auto keys = parse_opendkim_key_table(text, "KeyTable", "/srv/dkim");
  ASSERT_TRUE(keys.ok()) << keys.error().message();
  ASSERT_EQ(keys->size(), 3u);
  EXPECT_EQ((*keys)[0].name, "mail._domainkey.example.com");
  EXPECT_EQ((*keys)[0].domain, "example.com");
  EXPECT_EQ((*keys)[0].selector, "mail");
  EXPECT_EQ((*keys)[0].private_key_path, "/etc/opendkim/keys/example.com/mail.private");
  EXPECT_EQ((*keys)[0].origin, "KeyTable:3");
  EXPECT_EQ((*keys)[1].private_key_path, "/srv/dkim/./keys/ed.private");
  EXPECT_EQ((*keys)[2].name, "rel");
  EXPECT_EQ((*keys)[2].private_key_path, "/srv/dkim/../keys/org.private");
  EXPECT_EQ((*keys)[2].origin, "KeyTable:5");
}

TEST(DkimOpenDkimTables, KeyTableErrorsNameFileAndLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"# c\nname\n", "KeyTable:2: key \"name\" has no value"},
      {"name example.com:sel\n", "KeyTable:1: expected"},
      {"\n\nname example.com::/k\n", "KeyTable:3: expected"},
      {"name %:sel:/k\n", "KeyTable:1: a '%' domain"},
      {"name example.com:sel:MIIEvQIBADANBgkq\n", "KeyTable:1: inline key data"},
      {"a example.com:s:/k\nb example.com:s:/k\na example.com:t:/k\n",
       "KeyTable:3: key name \"a\" already defined at KeyTable:1"},
  };
  for (const auto& [text, want] : cases) {
    auto r = parse_opendkim_key_table(text, "KeyTable", "/");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.error().detail.find(want), std::string::npos)
        << "want " << want << "\ngot " << r.error().detail;
  }
}

TEST(DkimOpenDkimTables, RefileSigningTable) {
  const std::string text =
      "# refile: wildcards, first match wins\n"
      "ceo@example.com      ceo-key\n"
      "*@example.com        rsa-key\n"
      "*@example.com        ed-key\n"
      "*@*.example.com      sub-key:postmaster@example.com\n"
      "*                    catch-all\n";
  auto rules = parse_opendkim_signing_table(text, "SigningTable", /*refile=*/true);
  ASSERT_TRUE(rules.ok()) << rules.error().message();
  ASSERT_EQ(rules->size(), 4u);
  EXPECT_EQ(first_key(*rules, "ceo@example.com"), "ceo-key");
  EXPECT_EQ(first_key(*rules, "CEO@EXAMPLE.COM"), "ceo-key");
  // Same pattern twice: one rule, two keys (dual signing).
  const SigningRule* main = match_rule(*rules, addr("bob@example.com"));
  ASSERT_NE(main, nullptr);
  EXPECT_EQ(main->keys, (std::vector<std::string>{"rsa-key", "ed-key"}));
  EXPECT_EQ(main->origin, "SigningTable:3");
  EXPECT_EQ(main->on_error, OnError::FailClosed);
  const SigningRule* sub = match_rule(*rules, addr("bob@mail.example.com"));
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->keys.front(), "sub-key");
  EXPECT_EQ(sub->identity, "postmaster@example.com");
  // *@*.example.com does not cover example.com itself (OpenDKIM semantics),
  // and everything else falls to '*'.
  EXPECT_EQ(first_key(*rules, "bob@other.org"), "catch-all");

  auto bad = parse_opendkim_signing_table("*@example.com\n", "SigningTable", true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().detail.find("SigningTable:1:"), std::string::npos) << bad.error().detail;
}

TEST(DkimOpenDkimTables, PlainSigningTableFollowsOpenDkimLookupOrder) {
  // Written in "wrong" order on purpose: the lookup order decides, not the file.
  const std::string text =
      "*                     any\n"
      "user@*                user-anywhere\n"
      ".com                  dot-com\n"
      ".example.com          dot-example\n"
      "user@.com             user-dot-com\n"
      "user@.example.com     user-dot-example\n"
      "example.com           host\n"
      "user@example.com      exact\n";
  auto rules = parse_opendkim_signing_table(text, "SigningTable", /*refile=*/false);
  ASSERT_TRUE(rules.ok()) << rules.error().message();
  EXPECT_EQ(first_key(*rules, "user@example.com"), "exact");
  EXPECT_EQ(first_key(*rules, "other@example.com"), "host");
  EXPECT_EQ(first_key(*rules, "user@foo.example.com"), "user-dot-example");
  EXPECT_EQ(first_key(*rules, "user@foo.other.com"), "user-dot-com");
  EXPECT_EQ(first_key(*rules, "other@foo.example.com"), "dot-example");
  EXPECT_EQ(first_key(*rules, "other@foo.other.com"), "dot-com");
  EXPECT_EQ(first_key(*rules, "user@example.org"), "user-anywhere");
  EXPECT_EQ(first_key(*rules, "other@example.org"), "any");

  auto wildcard = parse_opendkim_signing_table("*@example.com key\n", "SigningTable", false);
  ASSERT_FALSE(wildcard.ok());
  EXPECT_NE(wildcard.error().detail.find("SigningTable:1:"), std::string::npos);
  EXPECT_NE(wildcard.error().detail.find("refile"), std::string::npos);
}

TEST(DkimOpenDkimTables, LoadFilesAndBuildKeyring) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "stampd-odkim-XXXXXX").string();
  const std::string dir = mkdtemp(tmpl.data());
  std::filesystem::create_directories(dir + "/keys");
  const std::string key_path = dir + "/keys/ed.private";
  std::ofstream(key_path) << test::read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem");
  chmod(key_path.c_str(), 0600);
  std::ofstream(dir + "/KeyTable")
      << "ed._domainkey.example.com example.com:ed:./keys/ed.private\n";
  std::ofstream(dir + "/SigningTable") << "*@example.com ed._domainkey.example.com\n";

  auto keys = load_opendkim_key_table("file:" + dir + "/KeyTable");
  ASSERT_TRUE(keys.ok()) << keys.error().message();
  auto rules = load_opendkim_signing_table("refile:" + dir + "/SigningTable");
  ASSERT_TRUE(rules.ok()) << rules.error().message();
  auto ring = SigningKeys::build(*keys, *rules);
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  const auto sel = (*ring)->select(addr("a@example.com"), 0);
  ASSERT_TRUE(sel && !sel->error);
  EXPECT_EQ(sel->keys.front()->signing_key->selector, "ed");

  // A group-readable key is refused at build time, with the KeyTable line.
  chmod(key_path.c_str(), 0644);
  auto refused = SigningKeys::build(*keys, *rules);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().detail.find("KeyTable:1"), std::string::npos) << refused.error().detail;
  EXPECT_NE(refused.error().detail.find("readable by group or others"), std::string::npos);
  KeyringOptions allow;
  allow.allow_group_readable_keys = true;
  EXPECT_TRUE(SigningKeys::build(*keys, *rules, allow).ok());

  EXPECT_FALSE(load_opendkim_key_table(dir + "/missing").ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stampd::auth
