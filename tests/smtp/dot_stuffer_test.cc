#include "smtp/dot_stuffer.h"

#include <gtest/gtest.h>

#include "smtp/data_decoder.h"

namespace stampd::smtp {
namespace {

std::string stuff(const std::string& text) {
  DotStuffer s;
  std::string out;
  s.feed(text, out);
  s.finish(out);
  return out;
}

TEST(DotStuffer, DoublesLeadingDots) {
  EXPECT_EQ(stuff("a\r\n.b\r\n.\r\n..\r\n"), "a\r\n..b\r\n..\r\n...\r\n.\r\n");
  EXPECT_EQ(stuff(".first\r\n"), "..first\r\n.\r\n");
}

TEST(DotStuffer, EndsTheData) {
  EXPECT_EQ(stuff(""), ".\r\n");
  EXPECT_EQ(stuff("x\r\n"), "x\r\n.\r\n");
  EXPECT_EQ(stuff("no final crlf"), "no final crlf\r\n.\r\n");
}

TEST(DotStuffer, ChunkSplitsDoNotMatter) {
  const std::string text = "a\r\n.b\r\n..\r\n.\r\nend\r\n";
  const std::string whole = stuff(text);
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    DotStuffer s;
    std::string out;
    s.feed(text.substr(0, cut), out);
    s.feed(text.substr(cut), out);
    s.finish(out);
    EXPECT_EQ(out, whole) << cut;
  }
}

TEST(DotStuffer, RoundTripsThroughTheDecoder) {
  const std::string text = ".\r\n..\r\nx\r\n.\r\n. \r\nend\r\n";
  DataDecoder d({});
  std::string back;
  const std::string wire = stuff(text);
  EXPECT_EQ(d.feed(wire, back), wire.size());
  EXPECT_TRUE(d.done());
  EXPECT_EQ(back, text);
}

}  // namespace
}  // namespace stampd::smtp
