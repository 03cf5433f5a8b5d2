#include "cmd/dmarc_check.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/fake_resolver.h"
#include "tests/support/run_coroutine.h"

namespace stampd::cmd {
namespace {

std::vector<CheckLine> run(test::FakeResolver& dns, DmarcInputs inputs) {
  return test::run_coroutine<std::vector<CheckLine>>(
      [&](boost::asio::io_context&) { return check_dmarc(dns, inputs); });
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

DmarcInputs inputs_for(const std::string& domain) {
  DmarcInputs in;
  in.from_domain = domain;
  in.signers = {{"k", domain}};
  return in;
}

// A temporary failure must never read as "no record": the organizational
// domain's record may be there.
TEST(DmarcCheck, OrganizationalLookupFailingIsUnknownNotMissing) {
  test::FakeResolver dns;  // _dmarc.mail.example.com: NXDOMAIN
  dns.set_status("_dmarc.example.com", net::DnsStatus::ServFail, "rcode SERVFAIL (2)");
  const auto lines = run(dns, inputs_for("mail.example.com"));
  ASSERT_EQ(lines.size(), 1U);
  EXPECT_FALSE(lines[0].ok);
  EXPECT_TRUE(lines[0].unanswered);
  EXPECT_TRUE(has(lines[0].text, "UNKNOWN: no answer for _dmarc.example.com")) << lines[0].text;
  EXPECT_TRUE(has(lines[0].text, "SERVFAIL")) << lines[0].text;
  EXPECT_FALSE(has(lines[0].text, "no DMARC record")) << lines[0].text;
}

TEST(DmarcCheck, ReportConsentAdspAndSpfThatCouldNotBeCheckedAreUnknown) {
  test::FakeResolver dns;
  dns.add_txt("_dmarc.example.com", "v=DMARC1; p=reject; rua=mailto:r@reports.example.net");
  dns.add_timeout("example.com._report._dmarc.reports.example.net");
  dns.add_timeout("_adsp._domainkey.example.com");
  auto in = inputs_for("example.com");
  in.spf_passes = false;
  in.spf_unanswered = true;
  const auto lines = run(dns, in);
  int unanswered = 0;
  for (const auto& line : lines) {
    if (line.unanswered) {
      ++unanswered;
      EXPECT_FALSE(line.ok);
      EXPECT_TRUE(has(line.text, "UNKNOWN: ")) << line.text;
      EXPECT_TRUE(has(line.text, "not a missing record")) << line.text;
    } else {
      EXPECT_TRUE(line.ok) << line.text;  // the record and DKIM alignment
    }
  }
  EXPECT_EQ(unanswered, 3);  // report consent, SPF alignment, ADSP
  std::string all;
  for (const auto& line : lines) all += line.text + "\n";
  EXPECT_TRUE(has(all,
                  "reports to mailto:r@reports.example.net: UNKNOWN: no answer for "
                  "example.com._report._dmarc.reports.example.net (timeout"))
      << all;
  EXPECT_TRUE(has(all, "SPF alignment: UNKNOWN: SPF could not be evaluated")) << all;
  EXPECT_TRUE(has(all, "ADSP example.com (_adsp._domainkey.example.com): UNKNOWN")) << all;
  EXPECT_FALSE(has(all, "will not send them")) << all;
  EXPECT_FALSE(has(all, "rests on DKIM alone")) << all;
}

TEST(DmarcCheck, AbsentAdspIsNoLine) {
  test::FakeResolver dns;
  dns.add_txt("_dmarc.example.com", "v=DMARC1; p=none");
  for (const auto& line : run(dns, inputs_for("example.com"))) {
    EXPECT_FALSE(has(line.text, "ADSP")) << line.text;
    EXPECT_FALSE(line.unanswered) << line.text;
  }
}

}  // namespace
}  // namespace stampd::cmd
