// Organizational domains and alignment (auth/dmarc/org_domain.h): RFC 7489
// §3.1, §3.2 with the built-in suffix rule.
#include "auth/dmarc/org_domain.h"

#include <gtest/gtest.h>

namespace stampd::auth {
namespace {

TEST(DmarcOrgDomain, LastTwoLabelsOrThreeUnderACountrySld) {
  EXPECT_EQ(organizational_domain("example.com"), "example.com");
  EXPECT_EQ(organizational_domain("Mail.Example.COM."), "example.com");
  EXPECT_EQ(organizational_domain("a.b.c.example.org"), "example.org");
  EXPECT_EQ(organizational_domain("mail.example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("x.shop.com.au"), "shop.com.au");
  EXPECT_EQ(organizational_domain("mail.example.de"), "example.de");
  EXPECT_EQ(organizational_domain("com"), "com");
}

TEST(DmarcOrgDomain, Alignment) {
  EXPECT_TRUE(aligned("example.com", "example.com", AlignMode::Strict));
  EXPECT_TRUE(aligned("EXAMPLE.com.", "example.com", AlignMode::Strict));
  EXPECT_FALSE(aligned("mail.example.com", "example.com", AlignMode::Strict));
  EXPECT_TRUE(aligned("mail.example.com", "example.com", AlignMode::Relaxed));
  EXPECT_TRUE(aligned("example.com", "news.example.com", AlignMode::Relaxed));
  EXPECT_FALSE(aligned("example.net", "example.com", AlignMode::Relaxed));
  EXPECT_FALSE(aligned("a.co.uk", "b.co.uk", AlignMode::Relaxed));
  EXPECT_TRUE(aligned("mail.a.co.uk", "a.co.uk", AlignMode::Relaxed));
}

}  // namespace
}  // namespace stampd::auth
