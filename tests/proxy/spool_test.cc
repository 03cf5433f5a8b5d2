#include "proxy/spool.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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

// The total ([server] spool_memory_total): all spools together hold at most
// that much in memory; a message that finds no room goes on in its file, and
// what a cleared spool gives back (or its thread keeps) is room again.
// (On a thread of its own: the blocks other tests' spools left to this
// thread would be taken before any new room.)
void fill_under_the_total() {
  const std::uint64_t before = Spool::total_memory();
  const std::uint64_t total = before + (1 << 20);
  Spool::set_total_memory(total);
  std::string piece(50000, 'x');
  for (std::size_t i = 0; i < piece.size(); ++i) piece[i] = static_cast<char>('a' + i % 26);
  std::vector<std::unique_ptr<Spool>> spools;
  std::vector<std::string> expected;
  for (int n = 0; n < 4; ++n) {
    spools.push_back(std::make_unique<Spool>(8 << 20, tmpdir()));
    expected.emplace_back();
    for (int i = 0; i < 10; ++i) {  // 500,000 bytes each
      ASSERT_TRUE(spools.back()->append(piece).ok());
      expected.back() += piece;
    }
    EXPECT_LE(Spool::total_memory(), total);
  }
  // The first two fit (about 0.5 MiB each); the third is partly in memory
  // and the fourth found room for no more than a small first block.
  EXPECT_FALSE(spools[0]->on_disk());
  EXPECT_FALSE(spools[1]->on_disk());
  EXPECT_TRUE(spools[2]->on_disk());
  EXPECT_GT(spools[2]->memory_size(), 0u);
  EXPECT_TRUE(spools[3]->on_disk());
  EXPECT_LT(spools[3]->memory_size(), 64u * 1024);
  for (std::size_t n = 0; n < spools.size(); ++n) EXPECT_EQ(read_all(*spools[n]), expected[n]) << n;
  // Cleared, they give their room back (some of it kept by this thread for
  // the next messages, still counted): a new message fits in memory again.
  for (auto& s : spools) s->clear();
  EXPECT_LE(Spool::total_memory(), before + total / 8);
  Spool again(8 << 20, tmpdir());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(again.append(piece).ok());
  EXPECT_FALSE(again.on_disk());
  EXPECT_LE(Spool::total_memory(), total);
}

TEST(Spool, AllSpoolsTogetherStayUnderTheTotal) {
  struct Restore {
    ~Restore() { Spool::set_total_memory(128ULL << 20); }
  } restore;
  const std::uint64_t before = Spool::total_memory();
  std::thread(fill_under_the_total).join();
  // The thread's kept blocks went with it.
  EXPECT_EQ(Spool::total_memory(), before);
}

// A limit lowered below what is held: the spools keep what they have, new
// blocks go to files until enough is given back.
TEST(Spool, LoweredTotalSendsNewBytesToTheFile) {
  struct Restore {
    ~Restore() { Spool::set_total_memory(128ULL << 20); }
  } restore;
  Spool held(1 << 20, tmpdir());
  ASSERT_TRUE(held.append(std::string(300000, 'h')).ok());
  EXPECT_FALSE(held.on_disk());
  Spool::set_total_memory(64 * 1024);
  Spool next(1 << 20, tmpdir());
  ASSERT_TRUE(next.append(std::string(100000, 'n')).ok());
  EXPECT_TRUE(next.on_disk());
  EXPECT_EQ(read_all(next), std::string(100000, 'n'));
  EXPECT_EQ(read_all(held), std::string(300000, 'h'));
}

}  // namespace
}  // namespace stampd::proxy
