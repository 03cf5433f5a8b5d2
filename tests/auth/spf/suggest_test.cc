// Suggested SPF records (auth/spf/suggest.h), checked by evaluating them.
#include "auth/spf/suggest.h"

#include <gtest/gtest.h>

#include "auth/spf/evaluator.h"
#include "tests/support/fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::auth {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::make_address;

std::vector<address> ips(std::initializer_list<const char*> list) {
  std::vector<address> out;
  for (const char* s : list) out.push_back(make_address(s));
  return out;
}

TEST(SpfSuggest, NewRecordWhenNoneIsPublished) {
  const auto s =
      suggest_spf_record(std::nullopt, ips({"192.0.2.1", "2001:db8::25", "::ffff:198.51.100.9"}));
  EXPECT_EQ(s.record, "v=spf1 ip4:192.0.2.1 ip6:2001:db8::25 ip4:198.51.100.9 ~all");
  EXPECT_EQ(s.added_terms,
            (std::vector<std::string>{"ip4:192.0.2.1", "ip6:2001:db8::25", "ip4:198.51.100.9"}));
  EXPECT_NE(s.note.find("no SPF record"), std::string::npos);
}

TEST(SpfSuggest, MissingTermsGoFirstInTheExistingRecord) {
  auto s = suggest_spf_record("v=spf1 include:_spf.provider.example -all",
                              ips({"192.0.2.1", "192.0.2.1"}));
  EXPECT_EQ(s.record, "v=spf1 ip4:192.0.2.1 include:_spf.provider.example -all");
  EXPECT_EQ(s.added_terms, std::vector<std::string>{"ip4:192.0.2.1"});
  s = suggest_spf_record("v=spf1 ip4:198.51.100.0/24 +ip6:2001:db8:1::/48 mx ~all",
                         ips({"2001:db8::25"}));
  EXPECT_EQ(s.record, "v=spf1 ip4:198.51.100.0/24 +ip6:2001:db8:1::/48 ip6:2001:db8::25 mx ~all");
  // A "-" term for the address does not count as present: ours goes before it.
  s = suggest_spf_record("v=spf1 -ip4:192.0.2.1 ~all", ips({"192.0.2.1"}));
  EXPECT_EQ(s.record, "v=spf1 ip4:192.0.2.1 -ip4:192.0.2.1 ~all");
  s = suggest_spf_record("v=spf1 ip4:192.0.2.1 ~all", ips({"192.0.2.1"}));
  EXPECT_TRUE(s.added_terms.empty());
  EXPECT_EQ(s.record, "v=spf1 ip4:192.0.2.1 ~all");
}

TEST(SpfSuggest, InvalidRecordIsReplaced) {
  const auto s =
      suggest_spf_record("v=spf1 a:mail.example.com ip4:192.0.2 -all", ips({"192.0.2.1"}));
  EXPECT_EQ(s.record, "v=spf1 ip4:192.0.2.1 ~all");
  EXPECT_NE(s.note.find("invalid"), std::string::npos);
}

TEST(SpfSuggest, SuggestionsMakeTheEgressAddressesPass) {
  // A record that is over the lookup limit and does not list our addresses.
  test::FakeResolver dns;
  std::string record = "v=spf1";
  for (int i = 0; i < 11; ++i) record += " a:h" + std::to_string(i) + ".example.com";
  record += " -all";
  dns.add_txt("example.com", record);
  const auto egress = ips({"192.0.2.1", "2001:db8::25"});
  const auto before = test::run_coroutine<SpfEgressReport>(
      [&](auto&) { return check_egress(dns, egress, "x@example.com", "out.example.com"); });
  EXPECT_EQ(before.worst, SpfVerdict::PermError);
  const auto s = suggest_spf_record(before);
  EXPECT_EQ(s.added_terms.size(), 2u);

  test::FakeResolver fixed;
  fixed.add_txt("example.com", s.record);
  const auto after = test::run_coroutine<SpfEgressReport>(
      [&](auto&) { return check_egress(fixed, egress, "x@example.com", "out.example.com"); });
  EXPECT_EQ(after.worst, SpfVerdict::Pass) << s.record;
}

TEST(SpfSuggest, ZoneDataSplitsLongRecords) {
  EXPECT_EQ(txt_zone_data("v=spf1 -all"), "\"v=spf1 -all\"");
  const std::string long_record = "v=spf1 " + std::string(300, 'a');
  const auto z = txt_zone_data(long_record);
  EXPECT_EQ(z.substr(0, 1), "\"");
  EXPECT_EQ(z.find("\" \""), 256u);
  EXPECT_EQ(txt_zone_data("a\"b"), "\"a\\\"b\"");
}

}  // namespace
}  // namespace stampd::auth
