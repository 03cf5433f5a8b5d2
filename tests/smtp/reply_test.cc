#include "smtp/reply.h"

#include <gtest/gtest.h>

namespace stampd::smtp {
namespace {

TEST(SmtpReply, SingleLineWire) {
  EXPECT_EQ(make_reply(250, "2.0.0", "Ok").wire(), "250 2.0.0 Ok\r\n");
  EXPECT_EQ(make_reply(354, "", "Go ahead").wire(), "354 Go ahead\r\n");
}

TEST(SmtpReply, MultiLineWire) {
  EXPECT_EQ(make_reply(250, "", "host\nPIPELINING\nSIZE 10").wire(),
            "250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
  EXPECT_EQ(make_reply(550, "5.1.1", "No such user\nreally").wire(),
            "550-5.1.1 No such user\r\n550 5.1.1 really\r\n");
}

TEST(SmtpReply, NoRawControlCharactersFromUpstream) {
  EXPECT_EQ(make_reply(250, "", std::string("a\rb\0c", 5)).wire(), "250 a b c\r\n");
}

TEST(SmtpReply, ParsesReplyLines) {
  auto l = parse_reply_line("250-PIPELINING");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->code, 250);
  EXPECT_FALSE(l->last);
  EXPECT_EQ(l->text, "PIPELINING");
  l = parse_reply_line("220");
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->last);
  EXPECT_FALSE(parse_reply_line("25"));
  EXPECT_FALSE(parse_reply_line("abc def"));
  EXPECT_FALSE(parse_reply_line("250x"));
  EXPECT_FALSE(parse_reply_line("199 x"));
}

TEST(SmtpReply, SplitsEnhancedCodeOfTheSameClass) {
  Reply r{550, "", "5.1.1 <bob@example.com>: Recipient address rejected"};
  split_enhanced(r);
  EXPECT_EQ(r.enhanced, "5.1.1");
  EXPECT_EQ(r.text, "<bob@example.com>: Recipient address rejected");

  Reply mismatch{250, "", "5.1.1 odd"};
  split_enhanced(mismatch);
  EXPECT_EQ(mismatch.enhanced, "");

  Reply version{250, "", "2.0 is not a code"};
  split_enhanced(version);
  EXPECT_EQ(version.enhanced, "");
}

TEST(SmtpReply, UpstreamRepliesForTheClient) {
  Reply plain = upstream_reply_for_client(Reply{250, "", "Ok"});
  EXPECT_EQ(plain.enhanced, "2.0.0");
  EXPECT_EQ(upstream_reply_for_client(Reply{550, "", "No"}).enhanced, "5.0.0");
  EXPECT_EQ(upstream_reply_for_client(Reply{550, "5.1.1", "No"}).enhanced, "5.1.1");
  EXPECT_EQ(upstream_reply_for_client(Reply{354, "", "Go"}).enhanced, "");
  Reply closing = upstream_reply_for_client(Reply{421, "4.3.2", "Shutting down"});
  EXPECT_EQ(closing.code, 451);  // our connection stays open
  EXPECT_EQ(closing.enhanced, "4.3.2");
}

}  // namespace
}  // namespace stampd::smtp
