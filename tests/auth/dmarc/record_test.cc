// The DMARC record parser and selection (auth/dmarc/record.h): RFC 7489
// §6.3, §6.4, §6.6.3, fed strings.
#include "auth/dmarc/record.h"

#include <gtest/gtest.h>

namespace stampd::auth {
namespace {

DmarcRecord parse_ok(std::string_view text) {
  auto r = parse_dmarc_record(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().detail);
  return r.ok() ? std::move(r).value() : DmarcRecord{};
}

std::string parse_error(std::string_view text) {
  auto r = parse_dmarc_record(text);
  EXPECT_FALSE(r.ok()) << text << " parsed but should not";
  return r.ok() ? "" : r.error().detail;
}

TEST(DmarcRecord, MinimalRecordTakesTheDefaults) {
  const auto r = parse_ok("v=DMARC1; p=none");
  EXPECT_EQ(r.policy, DmarcPolicy::None);
  EXPECT_FALSE(r.subdomain_policy);
  EXPECT_EQ(r.dkim_alignment, AlignMode::Relaxed);
  EXPECT_EQ(r.spf_alignment, AlignMode::Relaxed);
  EXPECT_EQ(r.percent, 100);
  EXPECT_TRUE(r.aggregate_uris.empty());
  EXPECT_TRUE(r.notes.empty());
}

TEST(DmarcRecord, EveryTag) {
  const auto r = parse_ok(
      "v=DMARC1;p=Reject; sp=quarantine ;adkim=s; aspf=r; pct=25; "
      "rua=mailto:agg@example.com,mailto:other@example.net!10m; ruf=mailto:f@example.com; "
      "fo=1:d; rf=afrf; ri=86400;");
  EXPECT_EQ(r.policy, DmarcPolicy::Reject);
  ASSERT_TRUE(r.subdomain_policy);
  EXPECT_EQ(*r.subdomain_policy, DmarcPolicy::Quarantine);
  EXPECT_EQ(r.dkim_alignment, AlignMode::Strict);
  EXPECT_EQ(r.spf_alignment, AlignMode::Relaxed);
  EXPECT_EQ(r.percent, 25);
  EXPECT_EQ(r.aggregate_uris,
            (std::vector<std::string>{"mailto:agg@example.com", "mailto:other@example.net!10m"}));
  EXPECT_EQ(r.failure_uris, (std::vector<std::string>{"mailto:f@example.com"}));
  EXPECT_TRUE(r.notes.empty());
}

TEST(DmarcRecord, VersionMustBeFirstAndExact) {
  EXPECT_NE(parse_error("p=none; v=DMARC1").find("v=DMARC1 is not the first tag"),
            std::string::npos);
  EXPECT_NE(parse_error("p=none").find("v=DMARC1 is not the first tag"), std::string::npos);
  EXPECT_NE(parse_error("v=dmarc1; p=none").find("is not v=DMARC1"), std::string::npos);
  EXPECT_NE(parse_error("v=DMARC2; p=none").find("is not v=DMARC1"), std::string::npos);
  EXPECT_NE(parse_error(";v=DMARC1; p=none").find("does not start with v=DMARC1"),
            std::string::npos);
  EXPECT_NE(parse_error("").find("v=DMARC1 is not the first tag"), std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; p=reject").find("duplicate"), std::string::npos);
}

TEST(DmarcRecord, PolicyErrorsAreNamed) {
  EXPECT_NE(parse_error("v=DMARC1; p=block").find("unknown policy p=block"), std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; sp=yes").find("unknown policy sp=yes"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1").find("no p= tag, so receivers ignore"), std::string::npos);
  // §6.6.3 step 6: with a valid rua= receivers read it as p=none; still named.
  EXPECT_NE(parse_error("v=DMARC1; rua=mailto:a@example.com").find("read it as p=none"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; adkim=relaxed").find("adkim=relaxed is not r"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; aspf=x").find("aspf=x is not r"), std::string::npos);
}

TEST(DmarcRecord, PercentMustBe0To100) {
  EXPECT_EQ(parse_ok("v=DMARC1; p=none; pct=0").percent, 0);
  EXPECT_EQ(parse_ok("v=DMARC1; p=none; pct=100").percent, 100);
  for (const char* bad : {"101", "-1", "50%", "", "1000", "abc", "5.5"}) {
    const std::string text = std::string("v=DMARC1; p=none; pct=") + bad;
    EXPECT_NE(parse_error(text).find("is not an integer from 0 to 100"), std::string::npos) << text;
  }
}

TEST(DmarcRecord, ReportUrisMustBeMailto) {
  EXPECT_NE(parse_error("v=DMARC1; p=none; rua=dmarc@example.com").find("bad rua URI"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; rua=dmarc@example.com").find("is not a URI"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; rua=https://example.com/r").find("not a mailto"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; rua=mailto:example.com").find("no local@domain"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; rua=mailto:a@").find("bad domain"), std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; rua=mailto:a@example.com!big").find("size limit"),
            std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; ruf=mailto:a b@example.com").find("bad ruf URI"),
            std::string::npos);
  EXPECT_EQ(parse_ok("v=DMARC1; p=none; rua=MAILTO:a@example.com!20").aggregate_uris.size(), 1u);
}

TEST(DmarcRecord, OtherTagsAreCheckedOrNoted) {
  EXPECT_NE(parse_error("v=DMARC1; p=none; fo=2").find("fo=2"), std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; ri=daily").find("ri=daily"), std::string::npos);
  const auto r = parse_ok("v=DMARC1; p=none; foo=bar; np=reject");
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("unknown tag foo="), std::string::npos);
  EXPECT_NE(parse_error("v=DMARC1; p=none; bad tag").find("not a tag list"), std::string::npos);
}

TEST(DmarcRecord, CandidatesStartWithTheVersion) {
  EXPECT_TRUE(is_dmarc_candidate("v=DMARC1; p=none"));
  EXPECT_TRUE(is_dmarc_candidate("v = DMARC1;p=none"));
  EXPECT_TRUE(is_dmarc_candidate("v=DMARC1"));
  EXPECT_FALSE(is_dmarc_candidate("p=none; v=DMARC1"));
  EXPECT_FALSE(is_dmarc_candidate("v=DMARC10; p=none"));
  EXPECT_FALSE(is_dmarc_candidate("v=spf1 -all"));
  EXPECT_FALSE(is_dmarc_candidate(""));
}

TEST(DmarcRecord, SelectionLikeAReceiver) {
  auto none = select_dmarc_record({});
  EXPECT_EQ(none.kind, DmarcSelection::Kind::None);
  auto one = select_dmarc_record({"google-site-verification=x", "v=DMARC1; p=none"});
  EXPECT_EQ(one.kind, DmarcSelection::Kind::One);
  EXPECT_EQ(one.record, "v=DMARC1; p=none");
  EXPECT_EQ(one.others, (std::vector<std::string>{"google-site-verification=x"}));
  auto several = select_dmarc_record({"v=DMARC1; p=none", "v=DMARC1; p=reject"});
  EXPECT_EQ(several.kind, DmarcSelection::Kind::Several);
  EXPECT_EQ(several.candidates, 2);
  auto discarded = select_dmarc_record({"p=reject; v=DMARC1"});
  EXPECT_EQ(discarded.kind, DmarcSelection::Kind::None);
  EXPECT_EQ(discarded.others.size(), 1u);
}

TEST(DmarcRecord, SuggestionParsesAndReportsToTheDomain) {
  const auto text = suggested_dmarc_record("Example.COM.");
  EXPECT_EQ(text, "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com");
  const auto r = parse_ok(text);
  EXPECT_EQ(r.policy, DmarcPolicy::None);
}

}  // namespace
}  // namespace stampd::auth
