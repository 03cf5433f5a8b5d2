// Unit tests of AUTH's parts in proxy/: the users file, sender rights, the
// failure throttle and the [auth] config.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "proxy/auth_throttle.h"
#include "proxy/config.h"
#include "proxy/stages/sender_rights_stage.h"
#include "proxy/users_file.h"

namespace stampd::proxy {
namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(UsersFile, HashesVerifyAndWrongOnesDoNot) {
  for (const char* method : {"$y$", "$6$", "$2b$"}) {
    SCOPED_TRACE(method);
    const std::string hash = hash_password("correct horse", method);
    ASSERT_TRUE(hash.starts_with(method)) << hash;
    auto db = UserDb::parse("# apps\n\nalice:" + hash + "\n", "users");
    EXPECT_EQ(db->size(), 1u);
    EXPECT_TRUE(db->verify("alice", "correct horse"));
    EXPECT_FALSE(db->verify("alice", "correct horsf"));
    EXPECT_FALSE(db->verify("alice", ""));
    EXPECT_FALSE(db->verify("bob", "correct horse"));
  }
}

TEST(UsersFile, AcceptsMkpasswdOutput) {
  // Written by Debian's mkpasswd -m yescrypt / sha512crypt / bcrypt, password "pw".
  auto db = UserDb::parse(
      "y:$y$j9T$dHGVZQOX2UNY1A/S3Ot34.$i3qWj195HA5J/uOGeSrRTWrk4O08BRh5PAbvJZcTyk7\r\n"
      "s:$6$xTNqWhGOR8eraWGM$YqlEkJU.TpnA1VWAVfsBtw7HzvSF36HH2f6sVYW3jbK0fmZgus3weewOtTApEoFxVr2svL"
      "Q82l6vHFOcwyVeW0\n"
      "b:$2b$05$mLOnHaQAxUL6rBzn/ChbU.C3F3UH7efk2bU5Pl0tMb65xXkukXAWm\n",
      "users");
  EXPECT_EQ(db->size(), 3u);
  for (const char* user : {"y", "s", "b"}) {
    EXPECT_TRUE(db->verify(user, "pw")) << user;
    EXPECT_FALSE(db->verify(user, "pW")) << user;
  }
}

TEST(UsersFile, BadLinesNameFileAndLine) {
  const auto hash = hash_password("pw");
  EXPECT_EQ(error_of([] { UserDb::parse("alice\n", "/etc/u"); }), "/etc/u:1: expected user:hash");
  EXPECT_EQ(error_of([&] { UserDb::parse("\n:" + hash + "\n", "/etc/u"); }),
            "/etc/u:2: bad user name (no spaces or control characters)");
  EXPECT_NE(error_of([] {
              UserDb::parse("a:plaintext\n", "/etc/u");
            }).find("/etc/u:1: user 'a': not a crypt hash"),
            std::string::npos);
  // MD5-crypt is legacy: refused.
  EXPECT_NE(error_of([] {
              UserDb::parse("a:$1$abcdefgh$abcdefghijklmnopqrstuv\n", "/etc/u");
            }).find("/etc/u:1: user 'a': weak hash"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { UserDb::parse("a:" + hash + "\na:" + hash + "\n", "/etc/u"); }),
            "/etc/u:2: user 'a' appears twice");
}

TEST(UsersFile, WorldReadableFileIsRefused) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("stampd-users-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto path = (dir / "users").string();
  std::ofstream(path) << "alice:" << hash_password("pw") << "\n";
  ::chmod(path.c_str(), 0644);
  EXPECT_NE(error_of([&] { UserDb::load(path); }).find("mode 0644"), std::string::npos);
  ::chmod(path.c_str(), 0640);
  EXPECT_TRUE(UserDb::load(path)->verify("alice", "pw"));
  std::filesystem::remove_all(dir);
}

TEST(SenderRights, MatchAddressesAndDomains) {
  auto c = parse_config(R"(
[auth]
users_file = "users"
[[auth.user]]
name = "app"
senders = ["billing@example.com", "*@example.org", "*@*.example.net"]
)",
                        "/x/test.toml");
  const auto& a = c->auth;
  EXPECT_TRUE(sender_allowed(a, "app", "billing@example.com"));
  EXPECT_TRUE(sender_allowed(a, "app", "Billing@EXAMPLE.com"));
  EXPECT_FALSE(sender_allowed(a, "app", "ceo@example.com"));
  EXPECT_TRUE(sender_allowed(a, "app", "x@example.org"));
  EXPECT_FALSE(sender_allowed(a, "app", "x@sub.example.org"));
  EXPECT_TRUE(sender_allowed(a, "app", "x@mail.example.net"));
  EXPECT_FALSE(sender_allowed(a, "app", "x@example.net"));
  EXPECT_FALSE(sender_allowed(a, "app", "x@evil.test"));
  EXPECT_FALSE(sender_allowed(a, "app", ""));  // the null sender
  EXPECT_FALSE(sender_allowed(a, "other", "billing@example.com"));
}

TEST(AuthConfig, Errors) {
  const auto error = [](const std::string& text) {
    return error_of([&] { parse_config(text, "t.toml"); });
  };
  EXPECT_EQ(error("[auth]\nplaintext_listen = [\"127.0.0.1:25\"]\n"),
            "t.toml:2: [auth] plaintext_listen: '127.0.0.1:25' is not one of [server] listen");
  EXPECT_EQ(error("[[auth.user]]\nname = \"a\"\nsenders = [\"*@b\"]\n"),
            "t.toml:1: [auth]: [[auth.user]] needs users_file, the logins and their password "
            "hashes");
  EXPECT_NE(error("[auth]\nusers_file = \"u\"\n[[auth.user]]\nname = \"a\"\nsenders = [\"b\"]\n")
                .find("t.toml:5: [[auth.user]] senders: from pattern \"b\""),
            std::string::npos);
  EXPECT_NE(error("[auth]\nusers_file = \"u\"\n[[auth.user]]\nname = \"a\"\nsendrs = [\"*@b\"]\n")
                .find("unknown key 'sendrs'"),
            std::string::npos);
  EXPECT_NE(error("[auth]\nusers_file = \"u\"\n[[auth.user]]\nname = \"a\"\nsenders = [\"*@b\"]\n"
                  "[[auth.user]]\nname = \"a\"\nsenders = [\"*@c\"]\n")
                .find("appears twice"),
            std::string::npos);
}

TEST(AuthThrottle, CountsPerAddressAndUserWithinTheWindow) {
  AuthThrottle t;
  const AuthThrottle::Limits limits{3, std::chrono::minutes(10)};
  const auto t0 = AuthThrottle::Clock::now();
  EXPECT_FALSE(t.blocked("192.0.2.1", "alice", limits, t0));
  EXPECT_EQ(t.failed("192.0.2.1", "alice", limits, t0), 1u);
  EXPECT_EQ(t.failed("192.0.2.2", "alice", limits, t0), 2u);  // the user's count
  EXPECT_FALSE(t.blocked("192.0.2.1", "", limits, t0));
  EXPECT_EQ(t.failed("192.0.2.3", "alice", limits, t0), 3u);
  EXPECT_TRUE(t.blocked("192.0.2.9", "alice", limits, t0));  // the user, from anywhere
  EXPECT_FALSE(t.blocked("192.0.2.9", "bob", limits, t0));
  t.failed("192.0.2.1", "x", limits, t0);
  t.failed("192.0.2.1", "y", limits, t0);
  EXPECT_TRUE(t.blocked("192.0.2.1", "", limits, t0));  // the address, whoever it tries
  // The window passes: forgotten.
  const auto later = t0 + std::chrono::minutes(11);
  EXPECT_FALSE(t.blocked("192.0.2.1", "alice", limits, later));
  // Success forgets the user's failures, not the address's.
  t.failed("192.0.2.5", "carol", limits, later);
  t.failed("192.0.2.5", "carol", limits, later);
  t.failed("192.0.2.5", "carol", limits, later);
  t.succeeded("carol");
  EXPECT_FALSE(t.blocked("192.0.2.6", "carol", limits, later));
  EXPECT_TRUE(t.blocked("192.0.2.5", "", limits, later));
}

}  // namespace
}  // namespace stampd::proxy
