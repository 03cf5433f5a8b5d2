#include "smtp/dot_stuffer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// What a sender does with unchanged(): a chunk it accepts goes as it is,
// any other is stuffed; the wire must be what feed() alone makes.
std::string stuff_passing_through(const std::vector<std::string>& chunks) {
  DotStuffer s;
  std::string out;
  for (const auto& c : chunks) {
    if (s.unchanged(c)) {
      out += c;
    } else {
      s.feed(c, out);
    }
  }
  s.finish(out);
  return out;
}

TEST(DotStuffer, UnchangedOnlyForChunksWithoutADottedLine) {
  DotStuffer s;
  EXPECT_TRUE(s.unchanged("a\r\nb.c\r\n"));
  EXPECT_FALSE(s.unchanged(".x\r\n"));  // after a line end: a dotted line
  EXPECT_FALSE(s.unchanged("y\r\n.z\r\n"));
  EXPECT_TRUE(s.unchanged(""));
  EXPECT_TRUE(s.unchanged("no line end"));
  EXPECT_TRUE(s.unchanged(".mid-line\r\n"));  // continues the line before
  EXPECT_FALSE(s.unchanged("."));             // at a line start again
}

// Long chunks (the 16-byte scan): a dotted line at any offset is found, and
// a dot anywhere else or an LF at the chunk's end is not a dotted line.
TEST(DotStuffer, UnchangedFindsADottedLineAtAnyOffset) {
  std::string base;
  while (base.size() < 200) base += "text. with.dots\r\n";
  for (std::size_t at = 0; at + 1 < base.size(); ++at) {
    std::string chunk = base;
    chunk[at] = '\n';
    chunk[at + 1] = '.';
    DotStuffer s;
    s.unchanged("x");  // not at a line start
    EXPECT_FALSE(s.unchanged(chunk)) << at;
  }
  for (std::size_t size = 1; size < base.size(); ++size) {
    DotStuffer s;
    s.unchanged("x");
    const std::string chunk = base.substr(0, size);
    const bool dotted = chunk.find("\n.") != std::string::npos;
    EXPECT_EQ(s.unchanged(chunk), !dotted) << size;
  }
  std::string ends_with_lf(100, 'a');
  ends_with_lf.back() = '\n';
  DotStuffer s;
  EXPECT_TRUE(s.unchanged(ends_with_lf));
  EXPECT_FALSE(s.unchanged(".next"));  // the line start carries over
}

TEST(DotStuffer, PassingChunksThroughMakesTheSameWire) {
  const std::string text = "a\r\n.b\r\n..\r\nplain\r\n.\r\nend\r\nlast";
  const std::string whole = stuff(text);
  for (std::size_t cut1 = 0; cut1 <= text.size(); ++cut1) {
    for (std::size_t cut2 = cut1; cut2 <= text.size(); ++cut2) {
      EXPECT_EQ(stuff_passing_through(
                    {text.substr(0, cut1), text.substr(cut1, cut2 - cut1), text.substr(cut2)}),
                whole)
          << cut1 << " " << cut2;
    }
  }
  EXPECT_EQ(stuff_passing_through({"x\r", "\n"}), "x\r\n.\r\n");
  EXPECT_EQ(stuff_passing_through({"x\r"}), "x\r\n.\r\n");
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
