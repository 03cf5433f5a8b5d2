// The worst verdict over the egress addresses (auth/spf/egress.h).
#include "auth/spf/egress.h"

#include <gtest/gtest.h>

#include "tests/support/fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::auth {
namespace {

using boost::asio::ip::make_address;

SpfEgressEntry entry(const char* ip, SpfVerdict v) {
  SpfEgressEntry e;
  e.ip = make_address(ip);
  e.result.verdict = v;
  return e;
}

TEST(SpfEgress, SeverityOrder) {
  const std::vector<SpfVerdict> best_to_worst = {
      SpfVerdict::Pass,      SpfVerdict::None, SpfVerdict::Neutral,  SpfVerdict::SoftFail,
      SpfVerdict::TempError, SpfVerdict::Fail, SpfVerdict::PermError};
  for (std::size_t i = 1; i < best_to_worst.size(); ++i) {
    EXPECT_TRUE(is_worse(best_to_worst[i], best_to_worst[i - 1])) << to_string(best_to_worst[i]);
    EXPECT_FALSE(is_worse(best_to_worst[i - 1], best_to_worst[i]));
  }
}

TEST(SpfEgress, WorstVerdictAndTheAddressThatGaveIt) {
  auto r =
      worst_of({entry("192.0.2.1", SpfVerdict::Pass), entry("192.0.2.2", SpfVerdict::SoftFail),
                entry("2001:db8::1", SpfVerdict::Fail), entry("192.0.2.3", SpfVerdict::TempError)});
  EXPECT_EQ(r.worst, SpfVerdict::Fail);
  EXPECT_EQ(r.worst_ip, make_address("2001:db8::1"));
  ASSERT_NE(r.worst_result(), nullptr);
  EXPECT_EQ(r.worst_result()->verdict, SpfVerdict::Fail);
  EXPECT_EQ(r.unauthorized().size(), 3u);

  // A tie names the first address; permerror beats everything.
  r = worst_of(
      {entry("192.0.2.1", SpfVerdict::SoftFail), entry("192.0.2.2", SpfVerdict::SoftFail)});
  EXPECT_EQ(r.worst_ip, make_address("192.0.2.1"));
  r = worst_of({entry("192.0.2.1", SpfVerdict::Fail), entry("192.0.2.2", SpfVerdict::PermError)});
  EXPECT_EQ(r.worst, SpfVerdict::PermError);
  r = worst_of({entry("192.0.2.1", SpfVerdict::Pass)});
  EXPECT_EQ(r.worst, SpfVerdict::Pass);
  EXPECT_TRUE(r.unauthorized().empty());
  r = worst_of({});
  EXPECT_EQ(r.worst, SpfVerdict::None);
  EXPECT_EQ(r.worst_result(), nullptr);
}

TEST(SpfEgress, ChecksEveryAddressThroughTheResolver) {
  test::FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 ip4:192.0.2.0/24 ~all");
  const std::vector<boost::asio::ip::address> ips = {
      make_address("192.0.2.5"), make_address("198.51.100.7"), make_address("2001:db8::25")};
  const auto report = test::run_coroutine<SpfEgressReport>(
      [&](auto&) { return check_egress(dns, ips, "bounce@example.com", "out.example.com"); });
  ASSERT_EQ(report.entries.size(), 3u);
  EXPECT_EQ(report.entries[0].result.verdict, SpfVerdict::Pass);
  EXPECT_EQ(report.entries[1].result.verdict, SpfVerdict::SoftFail);
  EXPECT_EQ(report.worst, SpfVerdict::SoftFail);
  EXPECT_EQ(report.worst_ip, make_address("198.51.100.7"));
  EXPECT_EQ(report.unauthorized(),
            (std::vector<boost::asio::ip::address>{make_address("198.51.100.7"),
                                                   make_address("2001:db8::25")}));
}

}  // namespace
}  // namespace stampd::auth
