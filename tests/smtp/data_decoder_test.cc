#include "smtp/data_decoder.h"

#include <gtest/gtest.h>

#include <string>

#include "smtp/dot_stuffer.h"
#include "tests/support/line_endings.h"
#include "tests/support/mutator.h"
#include "tests/support/reference_data_decoder.h"

namespace stampd::smtp {
namespace {

struct Decoded {
  std::string message;
  std::size_t used = 0;
  bool done = false;
  DataDecoder::Problem problem = DataDecoder::Problem::None;
};

Decoded decode(const std::string& input, DataDecoder::Options options = {}) {
  DataDecoder d(options);
  Decoded out;
  out.used = d.feed(input, out.message);
  out.done = d.done();
  out.problem = d.problem();
  return out;
}

// decode_split feeds input in pieces cut at the given points.
Decoded decode_split(const std::string& input, std::size_t a, std::size_t b,
                     DataDecoder::Options options = {}) {
  DataDecoder d(options);
  Decoded out;
  std::size_t pos = 0;
  for (std::size_t cut : {a, b, input.size()}) {
    if (cut < pos || d.done()) continue;
    out.used += d.feed(std::string_view(input).substr(pos, cut - pos), out.message);
    pos = cut;
  }
  out.done = d.done();
  out.problem = d.problem();
  return out;
}

// Every split of every input into three pieces must give the same result as one piece.
void expect_split_invariant(const std::string& input, DataDecoder::Options options = {}) {
  const Decoded whole = decode(input, options);
  for (std::size_t a = 0; a <= input.size(); ++a) {
    for (std::size_t b = a; b <= input.size(); ++b) {
      const Decoded split = decode_split(input, a, b, options);
      // After a problem the message is dropped, so only what precedes the
      // problem may differ with the split; the verdict may not.
      if (whole.problem == DataDecoder::Problem::None) {
        ASSERT_EQ(split.message, whole.message) << "split at " << a << "," << b;
      }
      ASSERT_EQ(split.done, whole.done) << "split at " << a << "," << b;
      ASSERT_EQ(split.used, whole.used) << "split at " << a << "," << b;
      ASSERT_EQ(split.problem, whole.problem) << "split at " << a << "," << b;
    }
  }
}

TEST(DataDecoder, SimpleMessage) {
  const Decoded d = decode("Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.message, "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_EQ(d.used, std::string("Subject: hi\r\n\r\nbody\r\n.\r\n").size());
}

TEST(DataDecoder, EmptyMessage) {
  const Decoded d = decode(".\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.message, "");
}

TEST(DataDecoder, DotUnstuffing) {
  const Decoded d = decode("a\r\n..\r\n..b\r\n...\r\n.c\r\n.\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.message, "a\r\n.\r\n.b\r\n..\r\nc\r\n");
}

TEST(DataDecoder, NotDoneWithoutTerminator) {
  const Decoded d = decode("a\r\nb\r\n");
  EXPECT_FALSE(d.done);
  EXPECT_EQ(d.message, "a\r\nb\r\n");
}

// SMTP smuggling (CVE-2023-51764 class): none of these end the message.
TEST(DataDecoder, SmugglingSequencesNeverEndTheMessage) {
  for (const std::string attack :
       {"a\n.\nMAIL FROM:<x@y>\r\n", "a\r.\rMAIL FROM:<x@y>\r\n", "a\r\n.\nMAIL FROM:<x@y>\r\n",
        "a\n.\r\nMAIL FROM:<x@y>\r\n", "a\r\n.\rMAIL FROM:<x@y>\r\n", "a\r\r\n.\r\r\nMAIL\r\n",
        "a\r\n.\r\r\nMAIL\r\n", "a\r\n \r\n.\r MAIL\r\n"}) {
    const Decoded d = decode(attack);
    EXPECT_FALSE(d.done) << testing::PrintToString(attack);
    EXPECT_EQ(d.used, attack.size());
    EXPECT_NE(d.message.find("MAIL"), std::string::npos) << testing::PrintToString(attack);
    // The message stays one message: what follows is content, and it ends
    // only at a real <CRLF>.<CRLF>.
    const Decoded finished = decode(attack + ".\r\n");
    EXPECT_TRUE(finished.done);
  }
}

TEST(DataDecoder, BareLineEndingsNormalized) {
  const Decoded d = decode("a\nb\rc\r\n.\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.problem, DataDecoder::Problem::None);
  EXPECT_EQ(d.message, "a\r\nb\r\nc\r\n");
}

TEST(DataDecoder, DotAfterBareLineEndingIsContent) {
  // The dot after a bare LF is not at a line start: kept, not unstuffed.
  const Decoded d = decode("a\n.\nb\r\n.\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.message, "a\r\n.\r\nb\r\n");
}

TEST(DataDecoder, BareLineEndingsRejected) {
  DataDecoder::Options o;
  o.normalize_bare_line_endings = false;
  const Decoded d = decode("a\nb\r\n.\r\n", o);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.problem, DataDecoder::Problem::BareLineEnding);
  EXPECT_EQ(d.message, "a");  // nothing after the problem
}

TEST(DataDecoder, LineTooLong) {
  DataDecoder::Options o;
  o.max_line_length = 10;
  EXPECT_EQ(decode(std::string(10, 'x') + "\r\n.\r\n", o).problem, DataDecoder::Problem::None);
  const Decoded d = decode(std::string(11, 'x') + "\r\nmore\r\n.\r\n", o);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.problem, DataDecoder::Problem::LineTooLong);
}

TEST(DataDecoder, StuffingDotDoesNotCountTowardsLineLength) {
  DataDecoder::Options o;
  o.max_line_length = 4;
  EXPECT_EQ(decode("..abc\r\n.\r\n", o).problem, DataDecoder::Problem::None);
}

TEST(DataDecoder, TooBigStopsOutputButFindsTheEnd) {
  DataDecoder::Options o;
  o.max_size = 8;
  DataDecoder d(o);
  std::string out;
  d.feed("12345\r\n", out);
  EXPECT_EQ(d.problem(), DataDecoder::Problem::None);
  d.feed("67890\r\n", out);
  EXPECT_EQ(d.problem(), DataDecoder::Problem::TooBig);
  const std::size_t kept = out.size();
  for (int i = 0; i < 100; ++i) d.feed("more and more data\r\n", out);
  EXPECT_EQ(out.size(), kept);  // the excess is not buffered
  EXPECT_FALSE(d.done());
  d.feed(".\r\n", out);
  EXPECT_TRUE(d.done());
  EXPECT_GT(d.size(), 1000u);
}

TEST(DataDecoder, EveryChunkSplitGivesTheSameResult) {
  const std::string inputs[] = {
      "Subject: x\r\n\r\nbody\r\n.\r\nNEXT",
      "a\r\n..b\r\n.\r\n",
      ".\r\n",
      "..\r\n.\r\n",
      "a\n.\nb\r\n.\r\n",
      "a\r.\rb\r\n.\r\n",
      "a\r\n.\nb\r\n.\r\n",
      "a\n.\r\nb\r\n.\r\n",
      "x\r\r\n\r\n.\r\r\n.\r\n",
      "\r\n\r\n\r\n.\r\n",
  };
  for (const auto& input : inputs) expect_split_invariant(input);
  DataDecoder::Options reject;
  reject.normalize_bare_line_endings = false;
  for (const auto& input : inputs) expect_split_invariant(input, reject);
  DataDecoder::Options small;
  small.max_size = 6;
  small.max_line_length = 3;
  for (const auto& input : inputs) expect_split_invariant(input, small);
}

// Robustness: random and mutated inputs (tests/support/mutator.h, fixed
// seeds) with the properties that make smuggling impossible checked on
// every one: the data ends exactly at the first <CRLF>.<CRLF> (the start of
// DATA counts as a CRLF) whatever the chunking; what comes out has no bare
// CR or LF; stuffing it again for the upstream and decoding that gives the
// same message back.

// decode_randomly feeds input in random chunks.
Decoded decode_randomly(std::string_view input, test::Mutator& m,
                        DataDecoder::Options options = {}) {
  DataDecoder d(options);
  Decoded out;
  std::size_t pos = 0;
  while (pos < input.size() && !d.done()) {
    const std::size_t n = 1 + m.below(std::min<std::size_t>(input.size() - pos, 40));
    out.used += d.feed(input.substr(pos, n), out.message);
    pos += n;
  }
  out.done = d.done();
  out.problem = d.problem();
  return out;
}

TEST(DataDecoderRobustness, DataEndsOnlyAtTheFirstCrlfDotCrlf) {
  test::Mutator m(11);
  const std::vector<std::string> seeds = {"Subject: x\r\n\r\nline\r\n..dot\r\n.\r\nQUIT\r\n",
                                          "a\n.\nb\r.\rc\r\n.\nd\n.\r\ne\r\n.\r\n", ".\r\n",
                                          "\r\n.\r\n"};
  int ended = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = i % 2 ? m.from_alphabet("\r\n.a ", 60) : m.mutate_one_of(seeds);
    const Decoded d = decode_randomly(input, m);
    ASSERT_EQ(d.problem, DataDecoder::Problem::None);  // normalize, no limits reached
    const auto end = ("\r\n" + input).find("\r\n.\r\n");
    ASSERT_EQ(d.done, end != std::string::npos) << testing::PrintToString(input);
    if (d.done) {
      ++ended;
      ASSERT_EQ(d.used, end + 3) << testing::PrintToString(input);
    }
    ASSERT_FALSE(test::has_bare_line_ending(d.message)) << testing::PrintToString(input);
    if (d.done && !d.message.empty()) {
      ASSERT_TRUE(d.message.ends_with("\r\n")) << testing::PrintToString(input);
    }
    // What we send upstream decodes to the same message, ending where we end it.
    DotStuffer stuffer;
    std::string wire;
    stuffer.feed(d.message, wire);
    stuffer.finish(wire);
    const Decoded again = decode_randomly(wire, m);
    ASSERT_TRUE(again.done);
    ASSERT_EQ(again.used, wire.size());
    std::string expected = d.message;
    if (!expected.empty() && !expected.ends_with("\r\n")) expected += "\r\n";
    ASSERT_EQ(again.message, expected) << testing::PrintToString(input);
  }
  EXPECT_GT(ended, 1000);  // the generator does reach the end-of-data
}

TEST(DataDecoderRobustness, RejectModeNeverNormalizesAndAgreesAcrossChunkings) {
  test::Mutator m(12);
  DataDecoder::Options reject;
  reject.normalize_bare_line_endings = false;
  reject.max_line_length = 20;
  reject.max_size = 200;
  for (int i = 0; i < 20000; ++i) {
    const std::string input = m.from_alphabet("\r\n.ab", 300);
    const Decoded a = decode_randomly(input, m, reject);
    const Decoded b = decode_randomly(input, m, reject);
    ASSERT_EQ(a.done, b.done);
    ASSERT_EQ(a.used, b.used);
    ASSERT_EQ(a.problem, b.problem) << testing::PrintToString(input);
    if (a.problem == DataDecoder::Problem::None) {
      ASSERT_EQ(a.message, b.message);
    }
    // The end is found even after a problem, so the session stays in step.
    const auto end = ("\r\n" + input).find("\r\n.\r\n");
    ASSERT_EQ(a.done, end != std::string::npos);
  }
}

// chunked decodes BDAT content fed in pieces cut every `step` bytes.
Decoded chunked(const std::string& input, std::size_t step, DataDecoder::Options options = {}) {
  options.chunked = true;
  DataDecoder d(options);
  Decoded out;
  for (std::size_t pos = 0; pos < input.size(); pos += step) {
    out.used += d.feed(std::string_view(input).substr(pos, step), out.message);
  }
  out.done = d.done();
  d.end(out.message);
  out.problem = d.problem();
  return out;
}

TEST(DataDecoder, ChunkedContentIsTakenAsItIs) {
  // Dots at line starts and <CRLF>.<CRLF> are content in BDAT (RFC 3030 §2).
  const std::string input = "Subject: x\r\n\r\n.dot\r\n..two\r\n.\r\nafter\r\n";
  for (std::size_t step : {1u, 2u, 3u, 7u, 1000u}) {
    const Decoded d = chunked(input, step);
    EXPECT_EQ(d.used, input.size());
    EXPECT_FALSE(d.done) << "no end-of-data inside chunks";
    EXPECT_EQ(d.message, input) << step;
    EXPECT_EQ(d.problem, DataDecoder::Problem::None);
  }
}

TEST(DataDecoder, ChunkedEndAddsTheLastCrlfAndCountsATrailingCrAsBare) {
  EXPECT_EQ(chunked("a\r\nlast", 3).message, "a\r\nlast\r\n");
  EXPECT_EQ(chunked("", 1).message, "");
  EXPECT_EQ(chunked("a\r", 1).message, "a\r\n");
  DataDecoder::Options reject;
  reject.normalize_bare_line_endings = false;
  EXPECT_EQ(chunked("a\r", 1, reject).problem, DataDecoder::Problem::BareLineEnding);
  EXPECT_EQ(chunked("a\r\nlast", 1, reject).problem, DataDecoder::Problem::None);
}

TEST(DataDecoder, ChunkedBareLineEndingsFollowThePolicy) {
  // The smuggling lookalikes become plain CRLF lines, never a dot line end.
  const std::string input = "a\n.\nMAIL FROM:<e@x>\r.\rb\r\n";
  EXPECT_EQ(chunked(input, 1).message, "a\r\n.\r\nMAIL FROM:<e@x>\r\n.\r\nb\r\n");
  DataDecoder::Options reject;
  reject.normalize_bare_line_endings = false;
  EXPECT_EQ(chunked(input, 2, reject).problem, DataDecoder::Problem::BareLineEnding);
}

TEST(DataDecoder, ChunkedSizeAndLineLimits) {
  DataDecoder::Options o;
  o.max_size = 10;
  EXPECT_EQ(chunked("12345678\r\n", 3, o).problem, DataDecoder::Problem::None);
  EXPECT_EQ(chunked("123456789\n", 3, o).problem, DataDecoder::Problem::TooBig);  // LF grew
  o = {};
  o.max_line_length = 4;
  EXPECT_EQ(chunked("12345\r\n", 2, o).problem, DataDecoder::Problem::LineTooLong);
}

DataDecoder::Options binary() {
  DataDecoder::Options o;
  o.binary = true;
  o.max_line_length = 20;
  return o;
}

TEST(DataDecoder, BinaryBodyPassesOctetForOctet) {
  // Bare CR and LF, NUL, a line past the limit, dot lines and no final CRLF:
  // all of it is the body as it is (RFC 3030 §3), however it was cut.
  using namespace std::string_literals;
  const std::string body =
      "\0\x01\xff\r.\r\n\n.\nMAIL FROM:<e@x>\r\n.\r\n"s + std::string(100, 'x') + "\r";
  const std::string input = "Subject: x\r\nX: y\r\n\r\n" + body;
  for (std::size_t step : {1u, 2u, 3u, 7u, 1000u}) {
    const Decoded d = chunked(input, step, binary());
    EXPECT_EQ(d.message, input) << step;
    EXPECT_EQ(d.problem, DataDecoder::Problem::None) << step;
  }
}

TEST(DataDecoder, BinaryHeaderSectionFollowsThePolicy) {
  // The header section is still text: bare line ends are repaired (or
  // refused) and its lines are limited; the first empty line, however it
  // ended, starts the body.
  EXPECT_EQ(chunked("A: 1\nB: 2\r\n\nbody\nx", 1, binary()).message, "A: 1\r\nB: 2\r\n\r\nbody\nx");
  EXPECT_EQ(chunked("A: 1\r\r\nbody\r", 2, binary()).message, "A: 1\r\n\r\nbody\r");
  EXPECT_EQ(chunked("\r\n\nbody", 1, binary()).message, "\r\n\nbody");  // no header section
  EXPECT_EQ(chunked("A: " + std::string(30, 'y') + "\r\n\r\nb", 4, binary()).problem,
            DataDecoder::Problem::LineTooLong);
  DataDecoder::Options reject = binary();
  reject.normalize_bare_line_endings = false;
  EXPECT_EQ(chunked("A: 1\nB: 2\r\n\r\nb", 3, reject).problem,
            DataDecoder::Problem::BareLineEnding);
  EXPECT_EQ(chunked("A: 1\r\n\r\nb\nc\r", 3, reject).problem, DataDecoder::Problem::None);
  // Without an empty line it is all header section, ended as text is.
  EXPECT_EQ(chunked("A: 1\r\nB: 2", 3, binary()).message, "A: 1\r\nB: 2\r\n");
}

TEST(DataDecoder, BinaryBodyCountsTowardsTheSize) {
  DataDecoder::Options o = binary();
  o.max_size = 12;
  EXPECT_EQ(chunked("A: 1\r\n\r\n\n\n\n\n", 2, o).problem, DataDecoder::Problem::None);
  EXPECT_EQ(chunked("A: 1\r\n\r\n\n\n\n\n\n", 2, o).problem, DataDecoder::Problem::TooBig);
}

// --- against the reference decoder ---------------------------------------------
//
// The decoder passes unchanged runs of its input on as views. The reference
// (tests/support/reference_data_decoder.h) is the line-by-line state machine
// it replaced: for any input, options and cuts, both must use the same
// bytes, end at the same place, find the same problem and give the same
// message (up to where a problem stopped the output).

struct Compared {
  std::string message;
  std::size_t used = 0;
  bool done = false;
  DataDecoder::Problem problem = DataDecoder::Problem::None;
  std::uint64_t size = 0;
};

template <class Decoder>
Compared decode_at(std::string_view input, const std::vector<std::size_t>& cuts,
                   DataDecoder::Options options) {
  Decoder d(options);
  Compared out;
  std::size_t pos = 0;
  for (std::size_t cut : cuts) {
    if (d.done()) break;
    out.used += d.feed(input.substr(pos, cut - pos), out.message);
    pos = cut;
  }
  if (options.chunked) d.end(out.message);
  out.done = d.done();
  out.problem = d.problem();
  out.size = d.size();
  return out;
}

TEST(DataDecoderRobustness, AgreesWithTheReferenceDecoder) {
  test::Mutator m(21);
  const std::vector<std::string> seeds = {
      "Subject: x\r\n\r\nline\r\n..dot\r\n.\r\nQUIT\r\n",
      "a\n.\nb\r.\rc\r\n.\nd\n.\r\ne\r\n.\r\n",
      ".\r\n",
      "\r\n.\r\n",
      "From: a@b\r\nTo: c@d\r\n\r\n" + std::string(70, 'x') + "\r\n" + std::string(40, 'y') +
          "\r\n..\r\n.x\r\n\r\n.\r\n",
      "H: v\r\n\r\n\x00\xff\r\rbody\n\n\r\n.\r\n",
  };
  int problems = 0;
  int ended = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string input = i % 3 == 0 ? m.from_alphabet("\r\n.a ", 120) : m.mutate_one_of(seeds);
    if (i % 7 == 0) input = std::string(m.below(40), 'z') + "\r\n" + input;
    DataDecoder::Options options;
    options.normalize_bare_line_endings = m.below(4) != 0;
    options.max_line_length = m.below(3) == 0 ? 1 + m.below(30) : 998;
    options.max_size = m.below(3) == 0 ? m.below(150) : 1 << 20;
    options.chunked = m.below(3) == 0;
    options.binary = options.chunked && m.below(2) == 0;
    std::vector<std::size_t> cuts;
    for (std::size_t pos = 0; pos < input.size();) {
      pos = std::min(input.size(), pos + 1 + m.below(m.below(2) ? 3 : 64));
      cuts.push_back(pos);
    }
    if (cuts.empty()) cuts.push_back(0);
    const auto got = decode_at<DataDecoder>(input, cuts, options);
    const auto want = decode_at<test::ReferenceDataDecoder>(input, cuts, options);
    const auto what = testing::PrintToString(input);
    ASSERT_EQ(got.used, want.used) << what;
    ASSERT_EQ(got.done, want.done) << what;
    ASSERT_EQ(got.problem, want.problem) << what;
    ASSERT_EQ(got.size, want.size) << what;
    if (want.problem == DataDecoder::Problem::None) {
      ASSERT_EQ(got.message, want.message) << what;
    } else {
      ++problems;
      const auto shorter = std::min(got.message.size(), want.message.size());
      ASSERT_EQ(got.message.substr(0, shorter), want.message.substr(0, shorter)) << what;
    }
    if (got.done) ++ended;
  }
  EXPECT_GT(problems, 1000);  // the limits and the reject policy are reached
  EXPECT_GT(ended, 1000);
}

// Views: a message with nothing to change reaches the output as one view
// into the input per feed, not as a copy; a removed dot splits the run.
TEST(DataDecoder, UnchangedRunsArePassedOnAsViewsIntoTheInput) {
  struct Recorder final : DataDecoder::Output {
    std::vector<std::string_view> pieces;
    void put(std::string_view bytes) override { pieces.push_back(bytes); }
  };
  const std::string input = "Subject: x\r\n\r\n" + std::string(900, 'b') + "\r\n" +
                            std::string(900, 'c') + "\r\nmore\r\n.\r\nQUIT\r\n";
  DataDecoder d({});
  Recorder r;
  const std::size_t used = d.feed(input, r);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(used, input.size() - 6);
  ASSERT_EQ(r.pieces.size(), 1u);
  EXPECT_EQ(r.pieces[0].data(), input.data());
  EXPECT_EQ(r.pieces[0].size(), input.size() - 9);

  const std::string dotted = "a\r\n..b\r\nc\nd\r\n.\r\n";
  DataDecoder d2({});
  Recorder r2;
  d2.feed(dotted, r2);
  std::string joined;
  for (auto p : r2.pieces) joined += p;
  EXPECT_EQ(joined, "a\r\n.b\r\nc\r\nd\r\n");
  ASSERT_EQ(r2.pieces.size(), 4u);  // "a\r\n", ".b\r\nc", "\r\n", "d\r\n"
  EXPECT_EQ(r2.pieces[0].data(), dotted.data());
  EXPECT_EQ(r2.pieces[1].data(), dotted.data() + 4);
}

}  // namespace
}  // namespace stampd::smtp
