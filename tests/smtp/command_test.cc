#include "smtp/command.h"

#include <gtest/gtest.h>

namespace stampd::smtp {
namespace {

TEST(SmtpCommand, ParsesVerbsCaseInsensitively) {
  EXPECT_EQ(parse_command("ehlo client.example").verb, Verb::Ehlo);
  EXPECT_EQ(parse_command("HeLo client.example").verb, Verb::Helo);
  EXPECT_EQ(parse_command("QUIT").verb, Verb::Quit);
  EXPECT_EQ(parse_command("noop anything").verb, Verb::Noop);
  EXPECT_EQ(parse_command("XFORWARD ADDR=1.2.3.4").verb, Verb::Xforward);
}

TEST(SmtpCommand, UnknownVerbIs500) {
  Command c = parse_command("FROB x");
  ASSERT_TRUE(c.syntax_error);
  EXPECT_EQ(c.syntax_error->code, 500);
  EXPECT_EQ(c.syntax_error->enhanced, "5.5.2");
}

TEST(SmtpCommand, HeloNeedsAName) {
  EXPECT_EQ(parse_command("EHLO").syntax_error->code, 501);
  EXPECT_EQ(parse_command("EHLO   ").syntax_error->code, 501);
  EXPECT_EQ(parse_command("EHLO mx.example.com").argument, "mx.example.com");
}

TEST(SmtpCommand, MailFromWithParams) {
  Command c = parse_command("MAIL FROM:<alice@example.com> SIZE=1000 body=8bitmime");
  ASSERT_FALSE(c.syntax_error) << c.syntax_error->text;
  EXPECT_EQ(c.argument, "alice@example.com");
  ASSERT_EQ(c.params.size(), 2u);
  EXPECT_EQ(c.params[0].keyword, "SIZE");
  EXPECT_EQ(*c.params[0].value, "1000");
  EXPECT_EQ(c.params[1].keyword, "BODY");
  EXPECT_EQ(*c.params[1].value, "8bitmime");  // values pass through as sent
  EXPECT_EQ(c.params[1].wire(), "BODY=8bitmime");
}

TEST(SmtpCommand, MailFromToleratesSpaceAfterColon) {
  Command c = parse_command("MAIL FROM: <a@b.example>");
  ASSERT_FALSE(c.syntax_error);
  EXPECT_EQ(c.argument, "a@b.example");
}

TEST(SmtpCommand, NullSender) {
  Command c = parse_command("MAIL FROM:<>");
  ASSERT_FALSE(c.syntax_error);
  EXPECT_TRUE(c.null_path);
  EXPECT_EQ(c.argument, "");
}

TEST(SmtpCommand, EmptyRecipientRefused) {
  EXPECT_EQ(parse_command("RCPT TO:<>").syntax_error->code, 501);
}

TEST(SmtpCommand, PostmasterWithoutDomainIsARecipient) {
  Command c = parse_command("RCPT TO:<Postmaster>");
  ASSERT_FALSE(c.syntax_error);
  EXPECT_EQ(c.argument, "Postmaster");
  EXPECT_TRUE(parse_command("MAIL FROM:<postmaster>").syntax_error);
}

TEST(SmtpCommand, SourceRouteIsDropped) {
  Command c = parse_command("RCPT TO:<@relay.example,@other.example:bob@example.com>");
  ASSERT_FALSE(c.syntax_error);
  EXPECT_EQ(c.argument, "bob@example.com");
}

TEST(SmtpCommand, QuotedLocalPart) {
  Command c = parse_command("RCPT TO:<\"john smith\"@example.com>");
  ASSERT_FALSE(c.syntax_error) << c.syntax_error->text;
  EXPECT_EQ(c.argument, "\"john smith\"@example.com");
}

TEST(SmtpCommand, BadAddressesRefused) {
  for (const char* line :
       {"MAIL FROM:alice@example.com", "MAIL FROM:<alice@example.com", "MAIL FROM:<alice@>",
        "MAIL FROM:<@example.com>", "MAIL FROM:<a b@example.com>", "MAIL FROM:<a@exa mple.com>",
        "MAIL FROM:<a@example..com>", "MAIL FROM:<a@example.com>junk", "MAIL TO:<a@example.com>",
        "RCPT FROM:<a@example.com>", "MAIL FROM:<a<b@example.com>"}) {
    Command c = parse_command(line);
    ASSERT_TRUE(c.syntax_error) << line;
    EXPECT_EQ(c.syntax_error->code, 501) << line;
  }
}

TEST(SmtpCommand, LengthLimits) {
  const std::string local(65, 'a');
  EXPECT_TRUE(parse_command("MAIL FROM:<" + local + "@example.com>").syntax_error);
  EXPECT_FALSE(parse_command("MAIL FROM:<" + local.substr(1) + "@example.com>").syntax_error);
  const std::string domain(250, 'd');
  EXPECT_TRUE(parse_command("MAIL FROM:<a@" + domain + ".example>").syntax_error);
}

TEST(SmtpCommand, NonAsciiPathIsFlagged) {
  Command c = parse_command("MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8");
  ASSERT_FALSE(c.syntax_error);
  EXPECT_TRUE(c.non_ascii);
  EXPECT_TRUE(c.param("SMTPUTF8"));
  EXPECT_FALSE(c.param("SMTPUTF8")->value);
}

TEST(SmtpCommand, BadParameters) {
  for (const char* line :
       {"MAIL FROM:<a@b.example> =x",
        "MAIL FROM:<a@b.example> SIZE=", "MAIL FROM:<a@b.example> SI_ZE=1",
        "MAIL FROM:<a@b.example> SIZE=1 SIZE=2", "MAIL FROM:<a@b.example> -X=1"}) {
    Command c = parse_command(line);
    ASSERT_TRUE(c.syntax_error) << line;
    EXPECT_EQ(c.syntax_error->code, 501) << line;
  }
}

TEST(SmtpCommand, ControlCharactersRefused) {
  EXPECT_EQ(parse_command(std::string("NOOP a\0b", 8)).syntax_error->code, 500);
  EXPECT_EQ(parse_command("NOOP a\rb").syntax_error->code, 500);
}

TEST(SmtpCommand, DataTakesNoArguments) {
  EXPECT_EQ(parse_command("DATA now").syntax_error->code, 501);
  EXPECT_FALSE(parse_command("DATA").syntax_error);
  EXPECT_FALSE(parse_command("DATA  ").syntax_error);  // trailing spaces are harmless
}

}  // namespace
}  // namespace stampd::smtp
