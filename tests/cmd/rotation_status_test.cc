#include "cmd/rotation_status.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/dkim_corpus.h"

namespace stampd::cmd {
namespace {

using auth::KeySpec;
using auth::SigningKeys;

KeySpec key(std::string name, std::string selector, std::string replaces) {
  KeySpec k;
  k.name = std::move(name);
  k.domain = "example.com";
  k.selector = std::move(selector);
  k.private_key_pem = test::read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem");
  k.origin = "test:1";
  k.replaces = std::move(replaces);
  return k;
}

std::string status(const SigningKeys& ring, const char* name, std::int64_t now,
                   std::chrono::seconds lifetime = {}) {
  return rotation_status(ring, *ring.find_key(name), now, lifetime).value_or("(none)");
}

constexpr std::int64_t kDay = 86400;

TEST(RotationStatus, FollowsTheGateAndSaysWhenTheOldRecordMayGo) {
  auto old_key = key("old", "s1", "");
  old_key.retire_after = 100 * kDay;
  auth::SigningRule rule;
  rule.from = auth::FromPattern::glob("*@example.com");
  rule.keys = {"old"};
  rule.origin = "test:9";
  auto built =
      SigningKeys::build({old_key, key("new", "s2", "old"), key("alone", "s3", "")}, {rule});
  ASSERT_TRUE(built.ok()) << built.error().message();
  const SigningKeys& ring = **built;

  EXPECT_EQ(status(ring, "alone", 0), "(none)");  // in no chain
  // The new record not seen yet.
  EXPECT_EQ(status(ring, "old", 0),
            "rotation: signs now; \"new\" takes over once its record is published; retires at "
            "1970-04-11T00:00:00Z");
  EXPECT_EQ(status(ring, "new", 0),
            "rotation: does not sign yet: \"old\" signs until this key's record publishes its "
            "public key");
  // Seen: the old key's record may go 5 days after its retirement, or
  // after the signatures' lifetime when that is longer.
  ring.set_record_matches(*ring.find_key("new"), true);
  EXPECT_EQ(status(ring, "new", 0), "rotation: signs now in place of \"old\"");
  EXPECT_EQ(status(ring, "old", 0),
            "rotation: no longer signs (\"new\" signs in its place); its record may be removed "
            "after 1970-04-16T00:00:00Z");
  EXPECT_NE(status(ring, "old", 0, std::chrono::hours(24 * 30)).find("1970-05-11T00:00:00Z"),
            std::string::npos);
  // Old retired and the new record gone: nothing of the chain may sign.
  ring.set_record_matches(*ring.find_key("new"), false);
  EXPECT_EQ(status(ring, "old", 101 * kDay).rfind("rotation: no key of its chain may sign: ", 0),
            0u);
}

TEST(RotationStatus, WithoutRetireAfterItAdvisesToSetIt) {
  auth::SigningRule rule;
  rule.from = auth::FromPattern::glob("*@example.com");
  rule.keys = {"old"};
  rule.origin = "test:9";
  auto built = SigningKeys::build({key("old", "s1", ""), key("new", "s2", "old")}, {rule});
  ASSERT_TRUE(built.ok()) << built.error().message();
  const SigningKeys& ring = **built;
  ring.set_record_matches(*ring.find_key("new"), true);
  EXPECT_EQ(status(ring, "old", 0),
            "rotation: no longer signs (\"new\" signs in its place); set retire_after on it to "
            "stop it signing for good (it signs again if the newer record stops matching); its "
            "record may be removed 5 days after its last signature");
}

}  // namespace
}  // namespace stampd::cmd
