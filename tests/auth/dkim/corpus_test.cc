// The corpus signed as the proxy will sign it (RSA-2048 and Ed25519,
// relaxed/relaxed, plus an RSA simple/simple signature to exercise simple
// canonicalization), streamed in chunks, then verified by our verifier.
//
// With STAMPD_DKIM_EXPORT_DIR set, the signed messages and the zone-file
// lines of the keys are written there, for the independent verifiers in
// tests/interop/test_dkim_corpus.py (which runs this test that way).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "auth/dkim/body_hasher.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/message_splitter.h"
#include "auth/dkim/signer.h"
#include "auth/dkim/verifier.h"
#include "tests/support/dkim_corpus.h"

namespace stampd::auth {
namespace {

constexpr std::int64_t kNow = 1772445600;

struct Signer {
  SigningKey key;
  CanonicalizationPair canon;
};

// sign_streaming signs like the proxy: header split from a stream of DATA
// chunks, body hashed per canonicalization as it passes, fields prepended.
std::string sign_streaming(const std::string& message, const std::vector<Signer>& signers) {
  HeaderSplitter splitter;
  BodyHashSet hashes;
  for (const auto& s : signers) hashes.add(s.canon.body);
  constexpr std::size_t kChunk = 65536 + 7;  // odd size, so chunks cut lines anywhere
  for (std::size_t pos = 0; pos < message.size(); pos += kChunk) {
    auto body = splitter.feed(std::string_view(message).substr(pos, kChunk));
    EXPECT_TRUE(body.ok());
    hashes.update(*body);
  }
  hashes.finish();
  auto block = HeaderBlock::parse(splitter.header());
  EXPECT_TRUE(block.ok()) << block.error().message();
  std::string fields;
  for (const auto& s : signers) {
    SignOptions o;
    o.timestamp = kNow;
    o.canonicalization = s.canon;
    auto field = sign_header_block(*block, *hashes.digest(s.canon.body), s.key, o);
    EXPECT_TRUE(field.ok()) << field.error().message();
    fields += *field;
  }
  return fields + message;
}

TEST(DkimCorpus, SignAndVerifyEveryMessage) {
  auto rsa = generate_private_key(KeyAlgorithm::Rsa2048);
  auto ed = generate_private_key(KeyAlgorithm::Ed25519);
  ASSERT_TRUE(rsa.ok() && ed.ok());
  const auto rsa_key = std::make_shared<const PrivateKey>(*rsa);
  const auto ed_key = std::make_shared<const PrivateKey>(*ed);
  const CanonicalizationPair relaxed{Canonicalization::Relaxed, Canonicalization::Relaxed};
  const CanonicalizationPair simple{Canonicalization::Simple, Canonicalization::Simple};
  const std::vector<Signer> signers = {
      {{"example.com", "rsa2026", rsa_key}, relaxed},
      {{"example.com", "ed2026", ed_key}, relaxed},
      {{"example.com", "rsa2026simple", rsa_key}, simple},
  };
  const std::map<std::string, KeyRecord> records = {
      {"rsa2026", *parse_key_record(make_key_record(rsa->public_key()))},
      {"rsa2026simple", *parse_key_record(make_key_record(rsa->public_key()))},
      {"ed2026", *parse_key_record(make_key_record(ed->public_key()))},
  };
  const KeyLookupFunction lookup = [&](const std::string&, const std::string& selector) {
    return KeyLookup{records.at(selector), VerifyStatus::Pass, {}};
  };

  const char* export_dir = std::getenv("STAMPD_DKIM_EXPORT_DIR");
  if (export_dir != nullptr) {
    std::filesystem::create_directories(std::string(export_dir) + "/signed");
    std::ofstream zone(std::string(export_dir) + "/records.zone");
    for (const auto& [selector, rec] : records) {
      zone << zone_file_line(selector, "example.com", make_key_record(*rec.key)) << "\n";
    }
  }

  auto messages = test::committed_corpus_messages();
  ASSERT_GE(messages.size(), 40u);
  messages.emplace_back(test::kLargeMessageName, test::large_corpus_message());
  for (const auto& [name, message] : messages) {
    const std::string signed_message = sign_streaming(message, signers);
    const auto results = verify_message_with_lookup(signed_message, lookup, {kNow});
    ASSERT_EQ(results.size(), 3u) << name;
    for (const auto& r : results)
      EXPECT_EQ(r.status, VerifyStatus::Pass) << name << " s=" << r.selector << ": " << r.reason;
    // The streaming verifier, fed as the spool is read back, agrees.
    MessageVerifier streaming({kNow});
    for (std::size_t pos = 0; pos < signed_message.size(); pos += 4099) {
      streaming.update(std::string_view(signed_message).substr(pos, 4099));
    }
    const auto streamed = streaming.finish(lookup);
    ASSERT_EQ(streamed.size(), 3u) << name;
    for (const auto& r : streamed)
      EXPECT_EQ(r.status, VerifyStatus::Pass) << name << ": " << r.reason;
    if (export_dir != nullptr) {
      std::ofstream(std::string(export_dir) + "/signed/" + name, std::ios::binary)
          << signed_message;
    }
  }
}

}  // namespace
}  // namespace stampd::auth
