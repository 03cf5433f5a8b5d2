#include "proxy/message_assembler.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace stampd::proxy {
namespace {

// RecordingStage remembers what the assembler showed it.
class RecordingStage : public Stage {
 public:
  const char* name() const override { return "recording"; }
  void on_header_block(Transaction&, std::string_view header) override {
    ++header_calls;
    this->header = header;
  }
  void on_body(std::span<const char> chunk) override { body.append(chunk.data(), chunk.size()); }

  int header_calls = 0;
  std::string header;
  std::string body;
};

struct Assembled {
  std::string header;
  std::string body;
  int header_calls = 0;
  bool ok = true;
};

Assembled assemble(const std::string& message, std::size_t cut1, std::size_t cut2,
                   std::uint64_t max_header = 1 << 20) {
  Transaction tx;
  Pipeline pipeline;
  auto stage = std::make_unique<RecordingStage>();
  auto* rec = stage.get();
  pipeline.add(std::move(stage));
  const char* t = std::getenv("TMPDIR");
  Spool spool(16, t && *t ? t : "/tmp");
  MessageAssembler a(tx, pipeline, spool, max_header);
  Assembled out;
  std::size_t pos = 0;
  for (std::size_t cut : {cut1, cut2, message.size()}) {
    if (cut < pos) continue;
    out.ok = out.ok && a.add(std::string_view(message).substr(pos, cut - pos)).ok();
    pos = cut;
  }
  out.ok = out.ok && a.finish().ok();
  out.header = rec->header;
  out.body = rec->body;
  out.header_calls = rec->header_calls;
  if (out.ok) {
    EXPECT_EQ(spool.size(), message.size());
  }
  return out;
}

TEST(MessageAssembler, SplitsHeaderAndBodyAtEveryChunkBoundary) {
  const std::string msg = "From: a@example.com\r\nSubject: x\r\n\r\nbody line\r\n\r\nmore\r\n";
  for (std::size_t a = 0; a <= msg.size(); ++a) {
    for (std::size_t b = a; b <= msg.size(); b += 3) {
      const Assembled r = assemble(msg, a, b);
      ASSERT_TRUE(r.ok);
      ASSERT_EQ(r.header_calls, 1);
      ASSERT_EQ(r.header, "From: a@example.com\r\nSubject: x\r\n") << a << "," << b;
      ASSERT_EQ(r.body, "body line\r\n\r\nmore\r\n") << a << "," << b;
    }
  }
}

TEST(MessageAssembler, NoHeaderFields) {
  const Assembled r = assemble("\r\nbody\r\n", 1, 1);
  EXPECT_EQ(r.header, "");
  EXPECT_EQ(r.body, "body\r\n");
}

TEST(MessageAssembler, HeaderOnlyMessage) {
  const Assembled r = assemble("Subject: x\r\n", 3, 5);
  EXPECT_EQ(r.header_calls, 1);
  EXPECT_EQ(r.header, "Subject: x\r\n");
  EXPECT_EQ(r.body, "");
}

TEST(MessageAssembler, HeaderTooLarge) {
  const std::string msg = "Subject: " + std::string(200, 'x') + "\r\n\r\nbody\r\n";
  EXPECT_FALSE(assemble(msg, 10, 20, 100).ok);
  EXPECT_TRUE(assemble(msg, 10, 20, 1000).ok);
}

TEST(MessageAssembler, HeaderExactlyAtTheLimitWhereverTheStreamIsCut) {
  const std::string header = "Subject: " + std::string(100, 'x') + "\r\n";
  const std::string msg = header + "\r\nbody\r\n";
  for (std::size_t a = 0; a <= msg.size(); ++a) {
    const Assembled fits = assemble(msg, a, a + 1, header.size());
    ASSERT_TRUE(fits.ok) << a;
    ASSERT_EQ(fits.header, header) << a;
    ASSERT_EQ(fits.body, "body\r\n") << a;
    ASSERT_FALSE(assemble(msg, a, a + 1, header.size() - 1).ok) << a;
  }
  EXPECT_TRUE(assemble(header, 3, 5, header.size()).ok);
  EXPECT_FALSE(assemble(header, 3, 5, header.size() - 1).ok);
}

}  // namespace
}  // namespace stampd::proxy
