// check_host() and friends (auth/spf/evaluator.h) over the fake resolver:
// the RFC 7208 §4.6.4 limits, errors, explanations, identities and traces.
#include "auth/spf/evaluator.h"

#include <gtest/gtest.h>

#include "tests/support/fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::auth {
namespace {

using boost::asio::ip::make_address;
using net::DnsStatus;
using test::FakeResolver;

SpfResult mail_from(FakeResolver& dns, const char* ip, const std::string& sender,
                    const std::string& helo = "mail.example.net", SpfOptions options = {}) {
  return test::run_coroutine<SpfResult>(
      [&](auto&) { return check_mail_from(dns, make_address(ip), sender, helo, options); });
}

std::string many(const std::string& term, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += " " + term;
  return out;
}

TEST(SpfEvaluator, IncludeChainPassesAndTheTraceShowsWhy) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 include:_spf.example.com -all");
  dns.add_txt("example.com", "google-site-verification=xyz");
  dns.add_txt("_spf.example.com", "v=spf1 ip4:198.51.100.0/24 include:_spf2.example.com ~all");
  dns.add_txt("_spf2.example.com", "v=spf1 a:out.example.com ?all");
  dns.add_address("out.example.com", "192.0.2.25");

  const auto r = mail_from(dns, "192.0.2.25", "alice@example.com");
  EXPECT_EQ(r.verdict, SpfVerdict::Pass) << summarize(r);
  EXPECT_EQ(r.decided_by, "include:_spf.example.com");
  EXPECT_EQ(r.decided_in, "example.com");
  EXPECT_EQ(r.record, "v=spf1 include:_spf.example.com -all");
  EXPECT_EQ(r.dns_terms, 3);
  EXPECT_EQ(r.dns_queries, 4);
  EXPECT_TRUE(r.explanation.empty());
  const std::string trace = format_trace(r.trace);
  EXPECT_NE(trace.find("query TXT example.com -> ok: \"v=spf1 include:_spf.example.com -all\", "
                       "\"google-site-verification=xyz\""),
            std::string::npos)
      << trace;
  EXPECT_NE(trace.find("    query A out.example.com -> ok: 192.0.2.25"), std::string::npos)
      << trace;
  EXPECT_NE(trace.find("    term a:out.example.com (_spf2.example.com) -> match: pass"),
            std::string::npos)
      << trace;
  EXPECT_NE(trace.find("term include:_spf.example.com (example.com) -> match: pass"),
            std::string::npos)
      << trace;

  const auto other = mail_from(dns, "203.0.113.9", "alice@example.com");
  EXPECT_EQ(other.verdict, SpfVerdict::Fail);
  EXPECT_EQ(other.decided_by, "-all");
  EXPECT_EQ(other.explanation,
            "example.com does not authorize 203.0.113.9 to send mail as alice@example.com");
}

TEST(SpfEvaluator, TenDnsTermsAreAllowedTheEleventhIsPermerror) {
  FakeResolver dns;
  dns.add_address("a.example.com", "192.0.2.1");
  dns.add_txt("ten.example.com", "v=spf1" + many("a:a.example.com", 10) + " ip4:192.0.2.99 -all");
  dns.add_txt("eleven.example.com",
              "v=spf1" + many("a:a.example.com", 11) + " ip4:192.0.2.99 -all");
  EXPECT_EQ(mail_from(dns, "192.0.2.99", "x@ten.example.com").verdict, SpfVerdict::Pass);
  const auto r = mail_from(dns, "192.0.2.99", "x@eleven.example.com");
  EXPECT_EQ(r.verdict, SpfVerdict::PermError);
  EXPECT_NE(r.problem.find("more than 10 DNS-querying terms"), std::string::npos) << r.problem;
  EXPECT_EQ(r.dns_terms, 11);
  // ip4 and all cost nothing; include counts, and so do the terms inside it
  // (1 + 9 = 10).
  dns.add_txt("inc.example.com", "v=spf1" + many("a:a.example.com", 9));
  dns.add_txt("nested.example.com", "v=spf1 include:inc.example.com ip4:192.0.2.99 -all");
  EXPECT_EQ(mail_from(dns, "192.0.2.99", "x@nested.example.com").verdict, SpfVerdict::Pass);
  // One more term before the include makes 11.
  dns.add_txt("nested2.example.com",
              "v=spf1 a:a.example.com include:inc.example.com ip4:192.0.2.99 -all");
  EXPECT_EQ(mail_from(dns, "192.0.2.99", "x@nested2.example.com").verdict, SpfVerdict::PermError);
  // A redirect loop ends at the limit too.
  dns.add_txt("loop.example.com", "v=spf1 redirect=loop.example.com");
  EXPECT_EQ(mail_from(dns, "192.0.2.99", "x@loop.example.com").verdict, SpfVerdict::PermError);
}

TEST(SpfEvaluator, TwoVoidLookupsAreAllowedTheThirdIsPermerror) {
  FakeResolver dns;
  dns.add_address("exists.example.com", "192.0.2.1");  // NODATA for MX
  dns.add_txt("two.example.com", "v=spf1 a:nx1.example.com mx:exists.example.com ?all");
  dns.add_txt("three.example.com",
              "v=spf1 a:nx1.example.com mx:exists.example.com exists:nx3.example.com ?all");
  const auto two = mail_from(dns, "198.51.100.1", "x@two.example.com");
  EXPECT_EQ(two.verdict, SpfVerdict::Neutral);
  EXPECT_EQ(two.void_lookups, 2);
  const auto three = mail_from(dns, "198.51.100.1", "x@three.example.com");
  EXPECT_EQ(three.verdict, SpfVerdict::PermError);
  EXPECT_NE(three.problem.find("void"), std::string::npos);
}

TEST(SpfEvaluator, MoreThanTenMxNamesIsPermerror) {
  FakeResolver dns;
  for (int i = 0; i < 11; ++i) {
    dns.add_mx("big.example.com", static_cast<std::uint16_t>(i),
               "mx" + std::to_string(i) + ".example.com");
    if (i < 10)
      dns.add_mx("ten.example.com", static_cast<std::uint16_t>(i),
                 "mx" + std::to_string(i) + ".example.com");
    dns.add_address("mx" + std::to_string(i) + ".example.com", "192.0.2." + std::to_string(i + 1));
  }
  dns.add_txt("big.example.com", "v=spf1 mx -all");
  dns.add_txt("ten.example.com", "v=spf1 mx -all");
  EXPECT_EQ(mail_from(dns, "192.0.2.10", "x@ten.example.com").verdict, SpfVerdict::Pass);
  const auto r = mail_from(dns, "192.0.2.1", "x@big.example.com");
  EXPECT_EQ(r.verdict, SpfVerdict::PermError);
  EXPECT_NE(r.problem.find("11 MX records"), std::string::npos) << r.problem;
}

TEST(SpfEvaluator, OnlyTheFirstTenPtrNamesAreChecked) {
  FakeResolver dns;
  for (int i = 0; i < 11; ++i)
    dns.add_ptr("5.2.0.192.in-addr.arpa", "h" + std::to_string(i) + ".example.org");
  dns.add_address("h10.example.org", "192.0.2.5");
  dns.add_address("h9.example.org", "192.0.2.5");
  dns.add_txt("ptr10.example.org", "v=spf1 ptr:h10.example.org -all");
  dns.add_txt("ptr9.example.org", "v=spf1 ptr:h9.example.org -all");
  EXPECT_EQ(mail_from(dns, "192.0.2.5", "x@ptr10.example.org").verdict, SpfVerdict::Fail);
  EXPECT_EQ(mail_from(dns, "192.0.2.5", "x@ptr9.example.org").verdict, SpfVerdict::Pass);
}

TEST(SpfEvaluator, DnsErrorsAreTemperror) {
  FakeResolver dns;
  dns.set_status("broken.example.com", DnsStatus::ServFail, "upstream refused");
  const auto r = mail_from(dns, "192.0.2.1", "x@broken.example.com");
  EXPECT_EQ(r.verdict, SpfVerdict::TempError);
  EXPECT_NE(r.problem.find("servfail (upstream refused)"), std::string::npos) << r.problem;
  dns.add_txt("slow.example.com", "v=spf1 a:dark.example.com -all");
  dns.add_timeout("dark.example.com");
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@slow.example.com").verdict, SpfVerdict::TempError);
  // ...but a PTR error only makes ptr not match (RFC 7208 §5.5).
  dns.add_txt("ptr.example.com", "v=spf1 ptr ?all");
  dns.set_status("1.2.0.192.in-addr.arpa", DnsStatus::Timeout);
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@ptr.example.com").verdict, SpfVerdict::Neutral);
}

TEST(SpfEvaluator, TimeLimitGivesTemperror) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 -all");
  SpfOptions o;
  o.time_limit = std::chrono::milliseconds(0);
  const auto r = mail_from(dns, "192.0.2.1", "x@example.com", "h.example.com", o);
  EXPECT_EQ(r.verdict, SpfVerdict::TempError);
  EXPECT_NE(r.problem.find("time limit"), std::string::npos) << r.problem;
}

TEST(SpfEvaluator, NoRecordMalformedDomainsAndMultipleRecords) {
  FakeResolver dns;
  dns.add_txt("other.example.com", "some other text");
  dns.add_txt("two.example.com", "v=spf1 -all");
  dns.add_txt("two.example.com", "v=spf1 +all");
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@nx.example.com").verdict, SpfVerdict::None);
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@other.example.com").verdict, SpfVerdict::None);
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@two.example.com").verdict, SpfVerdict::PermError);
  dns.clear_queries();
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@[192.0.2.1]").verdict, SpfVerdict::None);
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@localhost").verdict, SpfVerdict::None);
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@a..example.com").verdict, SpfVerdict::None);
  EXPECT_TRUE(dns.queries().empty());  // RFC 7208 §4.3: none without a query
}

TEST(SpfEvaluator, NullSenderAndHeloIdentity) {
  FakeResolver dns;
  dns.add_txt("relay.example.com", "v=spf1 ip4:192.0.2.0/28 exp=why.example.com -all");
  dns.add_txt("why.example.com", "%{s} at %{i} via %{h}: not ours");
  const auto null_sender = mail_from(dns, "192.0.2.200", "", "relay.example.com");
  EXPECT_EQ(null_sender.verdict, SpfVerdict::Fail);
  EXPECT_EQ(null_sender.sender, "postmaster@relay.example.com");
  EXPECT_EQ(null_sender.domain, "relay.example.com");
  EXPECT_EQ(null_sender.explanation,
            "postmaster@relay.example.com at 192.0.2.200 via relay.example.com: not ours");
  const auto helo = test::run_coroutine<SpfResult>(
      [&](auto&) { return check_helo(dns, make_address("192.0.2.3"), "relay.example.com"); });
  EXPECT_EQ(helo.verdict, SpfVerdict::Pass);
  const auto literal = test::run_coroutine<SpfResult>(
      [&](auto&) { return check_helo(dns, make_address("192.0.2.3"), "[192.0.2.3]"); });
  EXPECT_EQ(literal.verdict, SpfVerdict::None);
  // No local-part: "postmaster" (RFC 7208 §4.3).
  EXPECT_EQ(mail_from(dns, "192.0.2.200", "@relay.example.com").sender,
            "postmaster@relay.example.com");
}

TEST(SpfEvaluator, Ipv4MappedClientsAreIpv4) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 ip6:::ffff:0:0/96 ip4:192.0.2.1 -all");
  const auto r = mail_from(dns, "::ffff:192.0.2.1", "x@example.com");
  EXPECT_EQ(r.verdict, SpfVerdict::Pass);
  EXPECT_EQ(r.decided_by, "ip4:192.0.2.1");
}

TEST(SpfEvaluator, ValidatedDomainMacro) {
  FakeResolver dns;
  dns.add_ptr("7.2.0.192.in-addr.arpa", "fake.example.org");  // does not validate
  dns.add_ptr("7.2.0.192.in-addr.arpa", "host.example.com");
  dns.add_address("host.example.com", "192.0.2.7");
  dns.add_txt("example.com", "v=spf1 exists:%{p}.allowed.example.com -all");
  dns.add_address("host.example.com.allowed.example.com", "127.0.0.2");
  EXPECT_EQ(mail_from(dns, "192.0.2.7", "x@example.com").verdict, SpfVerdict::Pass);
  EXPECT_EQ(mail_from(dns, "192.0.2.8", "x@example.com").verdict, SpfVerdict::Fail);  // "unknown"
}

TEST(SpfEvaluator, ExplanationFallsBackToTheDefault) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 -all exp=nowhere.example.com");
  SpfOptions o;
  o.default_explanation = "see https://help.example/spf?d=%{d}&ip=%{I}";
  EXPECT_EQ(mail_from(dns, "2001:db8::1", "x@example.com", "h", o).explanation,
            "see "
            "https://help.example/"
            "spf?d=example.com&ip=2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1");
  o.fetch_explanation = false;
  EXPECT_EQ(mail_from(dns, "192.0.2.1", "x@example.com", "h", o).explanation, "");
}

TEST(SpfEvaluator, WorksWhenTheResolverSuspends) {
  // Every query suspends; options come from the default argument (a prvalue
  // passed by value into the coroutine, which g++ 12 mishandled for
  // aggregates: see spf_options.h).
  FakeResolver dns;
  dns.set_asynchronous(true);
  dns.add_txt("example.com", "v=spf1 include:_spf.example.com mx -all");
  dns.add_txt("_spf.example.com", "v=spf1 ip4:192.0.2.0/24 -all");
  dns.add_mx("example.com", 10, "mx.example.com");
  dns.add_address("mx.example.com", "198.51.100.25");
  for (int i = 0; i < 3; ++i) {
    const auto r = test::run_coroutine<SpfResult>([&](auto&) {
      return check_mail_from(dns, make_address("198.51.100.25"), "x@example.com", "h.example.com");
    });
    EXPECT_EQ(r.verdict, SpfVerdict::Pass) << summarize(r);
    EXPECT_EQ(r.decided_by, "mx");
  }
}

TEST(SpfEvaluator, TraceCanBeTurnedOff) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 a -all");
  SpfOptions o;
  o.record_trace = false;
  const auto r = mail_from(dns, "192.0.2.1", "x@example.com", "h", o);
  EXPECT_EQ(r.verdict, SpfVerdict::Fail);
  EXPECT_TRUE(r.trace.empty());
  EXPECT_EQ(r.dns_queries, 2);  // TXT and A; the default explanation needs no query
}

}  // namespace
}  // namespace stampd::auth
