// Keys: PEM loading (PKCS#1, PKCS#8, Ed25519), file mode refusal, clear
// errors for bad input, RSA size rules, key generation, key records and the
// zone-file line, and a generate -> publish -> sign -> verify round trip.
#include "auth/dkim/keys.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "auth/dkim/base64.h"
#include "auth/dkim/key_record.h"
#include "auth/dkim/keygen.h"
#include "auth/dkim/verifier.h"
#include "tests/support/dkim_corpus.h"
#include "tests/support/dkim_signing.h"

namespace stampd::auth {
namespace {

using test::read_test_file;
using test::sign_message;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "stampd-dkim-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content, mode_t mode) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    chmod(p.c_str(), mode);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string trimmed(const std::string& file) {
  std::string s = read_test_file(file);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

TEST(DkimKeys, LoadsRfc8463KeysInEveryForm) {
  auto pkcs1 = load_private_key_pem(read_test_file("dkim/rfc8463/rsa.private.pkcs1.pem"));
  ASSERT_TRUE(pkcs1.ok()) << pkcs1.error().message();
  EXPECT_EQ(pkcs1->type(), KeyType::Rsa);
  EXPECT_EQ(pkcs1->bits(), 1024);
  auto pkcs8 = load_private_key_pem(read_test_file("dkim/rfc8463/rsa.private.pkcs8.pem"));
  ASSERT_TRUE(pkcs8.ok());
  EXPECT_TRUE(pkcs1->public_key().same_key(pkcs8->public_key()));
  auto ed = load_private_key_pem(read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem"));
  ASSERT_TRUE(ed.ok()) << ed.error().message();
  EXPECT_EQ(ed->type(), KeyType::Ed25519);
  EXPECT_FALSE(ed->weak());
  // The derived public keys are the published ones.
  EXPECT_EQ(base64_encode(ed->public_key().p_value()),
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  auto pub = PublicKey::from_pem(read_test_file("dkim/rfc8463/rsa.public.pem"));
  ASSERT_TRUE(pub.ok());
  EXPECT_TRUE(pub->same_key(pkcs1->public_key()));
}

TEST(DkimKeys, WeakRsaKeyIsAcceptedWithAWarning) {
  auto key = load_private_key_pem(read_test_file("dkim/rfc8463/rsa.private.pkcs1.pem"));
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(key->weak());
  const auto warning = key_warning(*key);
  ASSERT_TRUE(warning.has_value());
  EXPECT_TRUE(has(*warning, "1024 bits")) << *warning;
  EXPECT_TRUE(has(*warning, "2048")) << *warning;

  auto strong = generate_private_key(KeyAlgorithm::Rsa2048);
  ASSERT_TRUE(strong.ok());
  EXPECT_FALSE(strong->weak());
  EXPECT_FALSE(key_warning(*strong).has_value());
}

TEST(DkimKeys, RsaSizesOutsideTheRangeAreRejected) {
  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(768));
  ASSERT_NE(small, nullptr);
  auto r = PrivateKey::from_evp(small);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, net::make_error_code(net::Errc::Unsupported));
  EXPECT_TRUE(has(r.error().detail, "768 bits")) << r.error().detail;
  EXPECT_FALSE(generate_rsa_key(8192).ok());
}

TEST(DkimKeys, ClearErrorsForBadPem) {
  struct Case {
    std::string pem;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"", "no PEM block"},
      {"just some text", "no PEM block"},
      {read_test_file("dkim/rfc8463/rsa.public.pem"), "public key"},
      {"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
       "encrypted"},
      {"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "cannot parse"},
      {"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "not a private key"},
  };
  for (const auto& c : cases) {
    auto r = load_private_key_pem(c.pem);
    ASSERT_FALSE(r.ok()) << c.expect;
    EXPECT_TRUE(has(r.error().detail, c.expect)) << "got: " << r.error().detail;
  }
  // An EC key is a valid PEM key but not a DKIM key.
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(ec, nullptr);
  auto r = PrivateKey::from_evp(ec);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.error().detail, "RSA or Ed25519")) << r.error().detail;
}

TEST(DkimKeys, FilePermissions) {
  TempDir dir;
  const std::string pem = read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem");
  const std::string ok_path = dir.file("ok.private", pem, 0600);
  EXPECT_TRUE(load_private_key_file(ok_path).ok());
  EXPECT_TRUE(load_private_key_file(dir.file("ro.private", pem, 0400)).ok());

  for (const mode_t mode : {0640, 0604, 0644}) {
    const std::string path = dir.file("open.private", pem, mode);
    auto r = load_private_key_file(path);
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_EQ(r.error().code, net::make_error_code(net::Errc::PermissionDenied));
    EXPECT_TRUE(has(r.error().detail, "readable by group or others")) << r.error().detail;
    EXPECT_TRUE(has(r.error().detail, "chmod 600")) << r.error().detail;
    EXPECT_TRUE(has(r.error().detail, path)) << r.error().detail;
    EXPECT_TRUE(load_private_key_file(path, /*allow_group_readable=*/true).ok());
  }

  auto missing = load_private_key_file(dir.path() + "/missing.private");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, net::make_error_code(net::Errc::NotFound));
  auto not_file = load_private_key_file(dir.path());
  ASSERT_FALSE(not_file.ok());
  auto garbage = load_private_key_file(dir.file("garbage.private", "hello", 0600));
  ASSERT_FALSE(garbage.ok());
  EXPECT_TRUE(has(garbage.error().detail, "garbage.private")) << garbage.error().detail;
}

TEST(DkimKeys, GenerateWriteAndLoad) {
  TempDir dir;
  for (const auto alg : {KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa3072, KeyAlgorithm::Ed25519}) {
    auto key = generate_private_key(alg);
    ASSERT_TRUE(key.ok()) << to_string(alg);
    const std::string path = dir.path() + "/" + to_string(alg) + ".private";
    ASSERT_TRUE(write_private_key_file(path, *key).ok());
    struct stat st {};
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(write_private_key_file(path, *key).ok()) << "must not overwrite by default";
    ASSERT_TRUE(write_private_key_file(path, *key, /*overwrite=*/true).ok());
    auto loaded = load_private_key_file(path);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message();
    EXPECT_TRUE(loaded->public_key().same_key(key->public_key()));
    EXPECT_EQ(loaded->bits(), alg == KeyAlgorithm::Rsa2048   ? 2048
                              : alg == KeyAlgorithm::Rsa3072 ? 3072
                                                             : 256);
  }
  EXPECT_EQ(parse_key_algorithm("rsa-2048"), KeyAlgorithm::Rsa2048);
  EXPECT_EQ(parse_key_algorithm("ed25519"), KeyAlgorithm::Ed25519);
  EXPECT_FALSE(parse_key_algorithm("rsa-1024").has_value());
}

TEST(DkimKeyRecord, MakeAndParseRecords) {
  auto ed = load_private_key_pem(read_test_file("dkim/rfc8463/ed25519.private.pkcs8.pem"));
  ASSERT_TRUE(ed.ok());
  EXPECT_EQ(make_key_record(ed->public_key()),
            trimmed("dkim/rfc8463/brisbane._domainkey.football.example.com.txt"));
  auto rsa = load_private_key_pem(read_test_file("dkim/rfc8463/rsa.private.pkcs1.pem"));
  ASSERT_TRUE(rsa.ok());
  const std::string published = trimmed("dkim/rfc8463/test._domainkey.football.example.com.txt");
  EXPECT_EQ(make_key_record(rsa->public_key()), published);

  auto rec = parse_key_record(published);
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->type, KeyType::Rsa);
  ASSERT_FALSE(rec->revoked());
  EXPECT_TRUE(rec->key->same_key(rsa->public_key()));

  auto revoked = parse_key_record("v=DKIM1; k=rsa; p=");
  ASSERT_TRUE(revoked.ok());
  EXPECT_TRUE(revoked->revoked());
  auto flags = parse_key_record(
      "v=DKIM1; k=ed25519; t=y:s; h=sha256; s=email; "
      "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  ASSERT_TRUE(flags.ok()) << flags.error().message();
  EXPECT_TRUE(flags->testing);
  EXPECT_TRUE(flags->strict);

  for (const char* bad : {"v=DKIM2; p=", "k=rsa; v=DKIM1; p=", "v=DKIM1; k=rsa", "v=DKIM1; p=!!!",
                          "v=DKIM1; h=sha1; p=", "v=DKIM1; s=tlsrpt; p=",
                          "v=DKIM1; k=ed25519; p=AAAA", "v=DKIM1; k=dsa; p=AAAA"}) {
    EXPECT_FALSE(parse_key_record(bad).ok()) << bad;
  }
}

TEST(DkimKeyRecord, TxtStringsAndZoneFileLine) {
  auto key = generate_private_key(KeyAlgorithm::Rsa3072);
  ASSERT_TRUE(key.ok());
  const std::string record = make_key_record(key->public_key());
  ASSERT_GT(record.size(), 255u);
  const auto strings = split_txt_strings(record);
  ASSERT_GE(strings.size(), 2u);
  std::string joined;
  for (const auto& s : strings) {
    EXPECT_LE(s.size(), 255u);
    joined += s;
  }
  EXPECT_EQ(joined, record);

  const std::string line = zone_file_line("sel2026", "example.com", record);
  EXPECT_EQ(line.rfind("sel2026._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p=", 0), 0u)
      << line;
  EXPECT_EQ(line.substr(line.size() - 3), "\" )");
  // The zone-file line can be given back as an offline key.
  auto parsed = parse_public_key_text(line + "\n");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_TRUE(parsed->key->same_key(key->public_key()));
}

TEST(DkimKeyRecord, PublicKeyTextForms) {
  const std::string pem = read_test_file("dkim/rfc8463/ed25519.public.pem");
  auto from_pem = parse_public_key_text(pem);
  ASSERT_TRUE(from_pem.ok());
  EXPECT_EQ(from_pem->type, KeyType::Ed25519);
  auto from_private = parse_public_key_text(read_test_file("dkim/rfc8463/rsa.private.pkcs8.pem"));
  ASSERT_TRUE(from_private.ok());
  EXPECT_EQ(from_private->type, KeyType::Rsa);
  auto from_record = parse_public_key_text(
      read_test_file("dkim/rfc8463/brisbane._domainkey.football.example.com.txt"));
  ASSERT_TRUE(from_record.ok());
  EXPECT_TRUE(from_record->key->same_key(*from_pem->key));
  EXPECT_FALSE(parse_public_key_text("nonsense").ok());

  auto from_file = load_public_key_file(test::test_data_path("dkim/rfc8463/ed25519.public.pem"));
  ASSERT_TRUE(from_file.ok()) << from_file.error().message();
  EXPECT_TRUE(from_file->key->same_key(*from_pem->key));
  auto missing = load_public_key_file(test::test_data_path("dkim/no-such-file.pem"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().detail.find("no-such-file.pem"), std::string::npos);
}

// generate -> TXT record -> sign -> verify with that record as the key.
TEST(DkimKeys, KeygenRoundTrip) {
  const std::string message = read_test_file("dkim/rfc8463/message-unsigned.eml");
  for (const auto alg : {KeyAlgorithm::Rsa2048, KeyAlgorithm::Ed25519}) {
    auto key = generate_private_key(alg);
    ASSERT_TRUE(key.ok());
    const std::string zone =
        zone_file_line("gen", "example.com", make_key_record(key->public_key()));
    SigningKey sk{"example.com", "gen", std::make_shared<const PrivateKey>(*key)};
    SignOptions options;
    options.timestamp = 1772445600;
    auto signed_message = sign_message(message, std::span<const SigningKey>(&sk, 1), options);
    ASSERT_TRUE(signed_message.ok()) << signed_message.error().message();
    auto record = parse_public_key_text(zone);
    ASSERT_TRUE(record.ok());
    const auto results =
        verify_message_with_key(*signed_message, *record, VerifyOptions{1772445600});
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status, VerifyStatus::Pass) << to_string(alg) << ": " << results[0].reason;
  }
}

}  // namespace
}  // namespace stampd::auth
