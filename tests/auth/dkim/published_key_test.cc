// dns-check's verdict on a published key record (auth/dkim/published_key.h):
// the field failures the issue names, fed TXT strings as the resolver returns
// them (one per record, character-strings joined).
#include "auth/dkim/published_key.h"

#include <gtest/gtest.h>

#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"

namespace stampd::auth {
namespace {

PrivateKey make(KeyAlgorithm algorithm) {
  auto key = generate_private_key(algorithm);
  EXPECT_TRUE(key.ok());
  return std::move(key).value();
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class PublishedKey : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = new PrivateKey(make(KeyAlgorithm::Rsa2048));
    ed_ = new PrivateKey(make(KeyAlgorithm::Ed25519));
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ed_;
  }
  static PrivateKey* rsa_;
  static PrivateKey* ed_;
};
PrivateKey* PublishedKey::rsa_ = nullptr;
PrivateKey* PublishedKey::ed_ = nullptr;

TEST_F(PublishedKey, OurRecordMatchesAlsoWhenItNeededSeveralStrings) {
  const auto record = make_key_record(rsa_->public_key());
  ASSERT_GT(record.size(), 255u);  // one RSA-2048 record spans two character-strings
  EXPECT_GE(split_txt_strings(record).size(), 2u);
  EXPECT_EQ(check_published_key({record}, rsa_->public_key()).state, PublishedKeyState::Matches);
  auto testing = check_published_key({record + "; t=y"}, rsa_->public_key());
  EXPECT_EQ(testing.state, PublishedKeyState::Matches);
  EXPECT_TRUE(testing.testing);
}

TEST_F(PublishedKey, MissingAndRevoked) {
  EXPECT_EQ(check_published_key({}, ed_->public_key()).state, PublishedKeyState::Missing);
  EXPECT_EQ(check_published_key({"v=DKIM1; k=ed25519; p="}, ed_->public_key()).state,
            PublishedKeyState::Revoked);
}

TEST_F(PublishedKey, SeveralRecordsAtOneSelectorAreNamed) {
  const auto ours = make_key_record(ed_->public_key());
  auto r = check_published_key({ours, ours}, ed_->public_key());
  EXPECT_EQ(r.state, PublishedKeyState::Several);
  EXPECT_TRUE(has(r.detail, "2 TXT records at one selector")) << r.detail;
  // Also when the other one is not a key record at all.
  EXPECT_EQ(check_published_key({ours, "v=spf1 -all"}, ed_->public_key()).state,
            PublishedKeyState::Several);
}

TEST_F(PublishedKey, RecordCutAt255IsTruncated) {
  const auto ours = make_key_record(rsa_->public_key());
  const auto cut = ours.substr(0, 255);  // what a panel with a 255-character field keeps
  auto r = check_published_key({cut}, rsa_->public_key());
  EXPECT_EQ(r.state, PublishedKeyState::Truncated) << r.detail;
  EXPECT_TRUE(has(r.detail, "does not parse")) << r.detail;
  EXPECT_TRUE(has(r.detail, "it is the start of our key")) << r.detail;
  EXPECT_TRUE(has(r.detail, "several quoted strings")) << r.detail;
  // Cut on a base64 quantum (valid base64, short DER): still truncated.
  const auto p = ours.find("p=") + 2;
  const auto cut4 = ours.substr(0, p + 200);
  EXPECT_EQ(check_published_key({cut4}, rsa_->public_key()).state, PublishedKeyState::Truncated);
}

TEST_F(PublishedKey, ShorterKeyIsNamedAsSuch) {
  auto small = generate_rsa_key(1024);
  ASSERT_TRUE(small.ok());
  auto r = check_published_key({make_key_record(small->public_key())}, rsa_->public_key());
  EXPECT_EQ(r.state, PublishedKeyState::Truncated);
  EXPECT_TRUE(has(r.detail, "1024 bits, ours 2048")) << r.detail;
}

TEST_F(PublishedKey, OtherKeyAndMalformed) {
  const auto other = make(KeyAlgorithm::Ed25519);
  EXPECT_EQ(check_published_key({make_key_record(other.public_key())}, ed_->public_key()).state,
            PublishedKeyState::OtherKey);
  // Not base64 at all: malformed, not truncated.
  auto bad = check_published_key({"v=DKIM1; k=ed25519; p=!!not*base64!!"}, ed_->public_key());
  EXPECT_EQ(bad.state, PublishedKeyState::Malformed) << bad.detail;
  EXPECT_EQ(check_published_key({"v=DKIM1; k=rsa"}, rsa_->public_key()).state,
            PublishedKeyState::Malformed);
  EXPECT_EQ(check_published_key({"garbage"}, rsa_->public_key()).state,
            PublishedKeyState::Malformed);
}

}  // namespace
}  // namespace stampd::auth
