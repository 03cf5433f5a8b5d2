#include "proxy/spool.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace stampd::proxy {
namespace {

std::string read_all(const Spool& spool) {
  std::string out, buffer;
  for (std::uint64_t off = 0; off < spool.size();) {
    auto chunk = spool.read(off, buffer, 7);  // odd size on purpose
    EXPECT_TRUE(chunk.ok());
    if (!chunk.ok() || chunk->empty()) break;
    out += *chunk;
    off += chunk->size();
  }
  return out;
}

const char* tmpdir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

TEST(Spool, SmallMessagesStayInMemory) {
  Spool s(1024, tmpdir());
  ASSERT_TRUE(s.append("hello ").ok());
  ASSERT_TRUE(s.append("world").ok());
  EXPECT_FALSE(s.on_disk());
  EXPECT_EQ(s.size(), 11u);
  EXPECT_EQ(read_all(s), "hello world");
}

TEST(Spool, LargeMessagesSpillToAFile) {
  Spool s(4096, tmpdir());
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string line = "line " + std::to_string(i) + "\r\n";
    expected += line;
    ASSERT_TRUE(s.append(line).ok());
  }
  EXPECT_TRUE(s.on_disk());
  EXPECT_EQ(s.size(), expected.size());
  EXPECT_EQ(read_all(s), expected);
  s.clear();
  EXPECT_EQ(s.size(), 0u);
  EXPECT_FALSE(s.on_disk());
  ASSERT_TRUE(s.append("again").ok());
  EXPECT_EQ(read_all(s), "again");
}

// The memory part is a list of blocks of growing size: every offset must read
// back the right bytes whatever the block boundaries and the reads' sizes.
TEST(Spool, BlocksReadBackFromAnyOffset) {
  Spool s(1 << 20, tmpdir());
  std::string expected;
  std::uint32_t seed = 12345;
  const auto next = [&seed] { return seed = seed * 1103515245u + 12345u; };
  while (expected.size() < 700 * 1024) {
    std::string piece(next() % 9000 + 1, '\0');
    for (auto& c : piece) c = static_cast<char>(next() >> 16);
    expected += piece;
    ASSERT_TRUE(s.append(piece).ok());
  }
  EXPECT_FALSE(s.on_disk());
  ASSERT_EQ(s.size(), expected.size());
  EXPECT_EQ(read_all(s), expected);
  std::string buffer;
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t offset = next() % expected.size();
    const std::size_t max = next() % 100000 + 1;
    auto chunk = s.read(offset, buffer, max);
    ASSERT_TRUE(chunk.ok());
    ASSERT_FALSE(chunk->empty());
    ASSERT_LE(chunk->size(), max);
    ASSERT_EQ(*chunk, std::string_view(expected).substr(offset, chunk->size())) << offset;
  }
  EXPECT_TRUE(s.read(expected.size(), buffer)->empty());
  s.clear();
  EXPECT_EQ(s.size(), 0u);
  ASSERT_TRUE(s.append("next").ok());
  EXPECT_EQ(read_all(s), "next");
}

// Past the memory limit the rest goes to the file, at a block boundary or not.
TEST(Spool, MemoryThenFileAcrossBlocks) {
  for (const std::uint64_t limit : {4096u, 4097u, 12288u, 200000u}) {
    Spool s(limit, tmpdir());
    std::string expected;
    for (int i = 0; i < 3000; ++i) {
      const std::string line = "line " + std::to_string(i) + " of the message\r\n";
      expected += line;
      ASSERT_TRUE(s.append(line).ok());
    }
    EXPECT_EQ(s.on_disk(), expected.size() > limit);
    EXPECT_EQ(read_all(s), expected) << limit;
  }
}

TEST(Spool, UnwritableDirectoryIsAnError) {
  Spool s(4, "/nonexistent-spool-dir");
  auto r = s.append("more than four bytes");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().detail.find("/nonexistent-spool-dir"), std::string::npos);
}

}  // namespace
}  // namespace stampd::proxy
