#include "cmd/health_command.h"

#include <gtest/gtest.h>

namespace stampd::cmd {
namespace {

TEST(HealthCommand, AsksWhereMetricsListen) {
  auto a = probe_address("127.0.0.1:9464");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "9464");
  auto b = probe_address("[::1]:19464");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, "19464");
  auto c = probe_address("192.0.2.7:80");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "192.0.2.7");
}

TEST(HealthCommand, WildcardAddressesAreAskedOnLoopback) {
  auto v4 = probe_address("0.0.0.0:9464");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, "9464");
  auto v6 = probe_address("[::]:9500");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "9500");
}

TEST(HealthCommand, NothingToAsk) {
  EXPECT_FALSE(probe_address("").ok());
  EXPECT_FALSE(probe_address("127.0.0.1:0").ok());
  EXPECT_FALSE(probe_address("localhost:9464").ok());
  EXPECT_FALSE(probe_address("127.0.0.1").ok());
  EXPECT_NE(probe_address("").error().detail.find("[metrics] listen"), std::string::npos);
}

TEST(HealthCommand, ParsesReplies) {
  auto ok = parse_health_reply(
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nready\n");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->text, "ready");
  auto no = parse_health_reply(
      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nnot ready: draining\nmore\n");
  ASSERT_TRUE(no.ok());
  EXPECT_EQ(no->status, 503);
  EXPECT_EQ(no->text, "not ready: draining");
  auto bare = parse_health_reply("HTTP/1.0 404 Not Found\r\n");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->status, 404);
  EXPECT_EQ(bare->text, "");
}

TEST(HealthCommand, RefusesWhatIsNotHttp) {
  EXPECT_FALSE(parse_health_reply("").ok());
  EXPECT_FALSE(parse_health_reply("220 smtp.example.com ESMTP\r\n").ok());
  EXPECT_FALSE(parse_health_reply("HTTP/1.1 2x0 OK\r\n\r\n").ok());
  EXPECT_FALSE(parse_health_reply("HTTP/1.1 20").ok());
}

}  // namespace
}  // namespace stampd::cmd
