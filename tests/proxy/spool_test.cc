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

TEST(Spool, UnwritableDirectoryIsAnError) {
  Spool s(4, "/nonexistent-spool-dir");
  auto r = s.append("more than four bytes");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().detail.find("/nonexistent-spool-dir"), std::string::npos);
}

}  // namespace
}  // namespace stampd::proxy
