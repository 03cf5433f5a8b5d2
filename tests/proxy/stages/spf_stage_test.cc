#include "proxy/stages/spf_stage.h"

#include <gtest/gtest.h>

#include "tests/support/fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::proxy {
namespace {

// StageRun holds one MAIL FROM through the SPF stage.
struct StageRun {
  Verdict verdict;
  Transaction tx;
};

boost::asio::awaitable<StageRun> run_stage(std::shared_ptr<const Config> config,
                                           std::shared_ptr<net::Resolver> resolver,
                                           const smtp::Session* session, std::string mail_from) {
  obs::Metrics metrics;
  SpfStageFactory factory(config, resolver, metrics);
  auto stages = factory.make_stages();
  StageRun out;
  out.tx.session = session;
  out.tx.mail_from = std::move(mail_from);
  out.verdict = co_await stages.at(0)->on_mail_from(out.tx);
  co_return out;
}

class SpfStageTest : public testing::Test {
 protected:
  SpfStageTest() {
    resolver_->add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 -all");
    resolver_->add_txt("soft.example", "v=spf1 ip4:192.0.2.0/24 ~all");
    resolver_->add_txt("helo.example", "v=spf1 ip4:198.51.100.1 -all");
    resolver_->add_timeout("slow.example");
  }

  StageRun run(const std::string& toml, const std::string& client_ip, const std::string& mail_from,
               const std::vector<std::string>& extra = {}) {
    auto config = parse_config(toml + "\n[server]\nhostname = \"relay.test\"\n", "test.toml");
    smtp::Session session({}, smtp::ClientInfo{*net::parse_ip(client_ip), 2525, true},
                          "relay.test");
    session.apply(smtp::parse_command("EHLO helo.example"));
    for (const auto& line : extra) session.apply(smtp::parse_command(line));
    return test::run_coroutine<StageRun>([&](boost::asio::io_context&) {
      return run_stage(config, resolver_, &session, mail_from);
    });
  }

  std::shared_ptr<test::FakeResolver> resolver_ = std::make_shared<test::FakeResolver>();
};

TEST_F(SpfStageTest, TagAddsReceivedSpf) {
  auto r = run("[spf]\nmode = \"tag\"", "192.0.2.10", "a@example.com");
  EXPECT_FALSE(r.verdict.stopped());
  ASSERT_EQ(r.tx.prepend_fields.size(), 1u);
  const auto& f = r.tx.prepend_fields[0];
  EXPECT_TRUE(f.starts_with(
      "Received-SPF: pass (relay.test: domain of a@example.com designates 192.0.2.10"))
      << f;
  EXPECT_NE(f.find("client-ip=192.0.2.10;"), std::string::npos);
  EXPECT_NE(f.find("envelope-from=\"a@example.com\";"), std::string::npos);
  EXPECT_NE(f.find("identity=mailfrom;"), std::string::npos);
  EXPECT_TRUE(f.ends_with("\r\n"));
}

TEST_F(SpfStageTest, EnforceRejectsFail) {
  auto r = run("[spf]\nmode = \"enforce\"", "203.0.113.5", "a@example.com");
  ASSERT_TRUE(r.verdict.stopped());
  EXPECT_EQ(r.verdict.reply->code, 550);
  EXPECT_EQ(r.verdict.reply->enhanced, "5.7.23");
  EXPECT_TRUE(r.tx.prepend_fields.empty());
}

TEST_F(SpfStageTest, EnforceTagsSoftfail) {
  auto r = run("[spf]\nmode = \"enforce\"", "203.0.113.5", "a@soft.example");
  EXPECT_FALSE(r.verdict.stopped());
  ASSERT_EQ(r.tx.prepend_fields.size(), 1u);
  EXPECT_TRUE(r.tx.prepend_fields[0].starts_with("Received-SPF: softfail"));
}

TEST_F(SpfStageTest, TemperrorTempfails) {
  auto r = run("[spf]\nmode = \"enforce\"", "192.0.2.10", "a@slow.example");
  ASSERT_TRUE(r.verdict.stopped());
  EXPECT_EQ(r.verdict.reply->code, 451);
  EXPECT_EQ(r.verdict.reply->enhanced, "4.7.24");
}

TEST_F(SpfStageTest, OffEvaluatesNothing) {
  auto r = run("[spf]\nmode = \"off\"", "203.0.113.5", "a@example.com");
  EXPECT_FALSE(r.verdict.stopped());
  EXPECT_TRUE(r.tx.prepend_fields.empty());
  EXPECT_TRUE(resolver_->queries().empty());
}

TEST_F(SpfStageTest, XforwardAddrIsTheClient) {
  // A Postfix content filter at 127.0.0.1 relays for the real client 192.0.2.10.
  auto r = run("[spf]\nmode = \"enforce\"", "127.0.0.1", "a@example.com",
               {"XFORWARD ADDR=192.0.2.10 HELO=client.example"});
  EXPECT_FALSE(r.verdict.stopped());
  EXPECT_NE(r.tx.prepend_fields.at(0).find("client-ip=192.0.2.10;"), std::string::npos);
  EXPECT_NE(r.tx.prepend_fields.at(0).find("helo=client.example;"), std::string::npos);
}

TEST_F(SpfStageTest, EgressUsesTheWorstAddress) {
  auto r = run(
      "[spf]\nmode = \"enforce\"\nip = \"egress\"\negress_ips = [\"192.0.2.1\", \"203.0.113.9\"]",
      "127.0.0.1", "a@example.com");
  ASSERT_TRUE(r.verdict.stopped());
  EXPECT_EQ(r.verdict.reply->code, 550);
  bool logged = false;
  for (const auto& [k, v] : r.tx.log_fields)
    logged = logged || (k == "spf_ip" && v == "203.0.113.9");
  EXPECT_TRUE(logged);
}

TEST_F(SpfStageTest, NullSenderUsesHelo) {
  auto r = run("[spf]\nmode = \"enforce\"", "203.0.113.5", "");
  ASSERT_TRUE(r.verdict.stopped());  // helo.example authorizes only 198.51.100.1
  auto ok = run("[spf]\nmode = \"enforce\"", "198.51.100.1", "");
  EXPECT_FALSE(ok.verdict.stopped());
  EXPECT_NE(ok.tx.prepend_fields.at(0).find("envelope-from=\"postmaster@helo.example\""),
            std::string::npos);
}

TEST(XforwardAddress, Forms) {
  EXPECT_EQ(xforward_address("192.0.2.1")->to_string(), "192.0.2.1");
  EXPECT_EQ(xforward_address("IPV6:2001:db8::1")->to_string(), "2001:db8::1");
  EXPECT_FALSE(xforward_address("[UNAVAILABLE]"));
}

}  // namespace
}  // namespace stampd::proxy
