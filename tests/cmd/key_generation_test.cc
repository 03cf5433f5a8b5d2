#include "cmd/key_generation.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace stampd::cmd {
namespace {

namespace fs = std::filesystem;

// KeyGeneration works in a fresh directory with one generate = true key.
class KeyGeneration : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("stampd-keygen-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auth::KeySpec spec;
    spec.name = "main";
    spec.domain = "example.com";
    spec.selector = "s1";
    spec.private_key_path = (dir_ / "keys" / "s1.private").string();
    spec.origin = "stampd.toml:12";
    spec.generate = auth::KeyAlgorithm::Ed25519;
    config_.dkim.keys.push_back(spec);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  proxy::Config config_;
};

TEST_F(KeyGeneration, MakesAMissingKeyOnceWithItsRecord) {
  const auto& path = config_.dkim.keys[0].private_key_path;
  auto made = generate_missing_keys(config_, "");
  ASSERT_EQ(made.size(), 1U);
  EXPECT_EQ(made[0].private_key_path, path);
  EXPECT_EQ(made[0].record_path, (dir_ / "keys" / "s1.txt").string());
  EXPECT_NE(made[0].zone_line.find("s1._domainkey.example.com."), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_TRUE(generate_missing_keys(config_, "").empty());  // never replaced
}

TEST_F(KeyGeneration, AMissingKeyInUseIsAnErrorNotANewKey) {
  const auto path = config_.dkim.keys[0].private_key_path;
  try {
    generate_missing_keys(config_, "", {path});
    FAIL() << "no error";
  } catch (const proxy::ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("stampd.toml:12"), std::string::npos) << what;
    EXPECT_NE(what.find(path + " is missing"), std::string::npos) << what;
    EXPECT_NE(what.find("key in use"), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(path));
  // Another key in use does not stop this one being made.
  EXPECT_EQ(generate_missing_keys(config_, "", {(dir_ / "other.private").string()}).size(), 1U);
  // Present, a key in use is simply there: nothing to do, no error.
  EXPECT_TRUE(generate_missing_keys(config_, "", {path}).empty());
}

}  // namespace
}  // namespace stampd::cmd
