// spool.h: holds one message between end-of-data and the upstream's reply:
// the first bytes in memory (up to a limit per message, and while all
// messages together stay under a limit per process), the rest in an unlinked
// temporary file, so memory does not grow with message size or with the
// number of sessions, and nothing is left on disk if stampd dies.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/result.h"

namespace stampd::proxy {

class Spool {
 public:
  Spool(std::uint64_t memory_limit, std::string dir);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // append adds bytes at the end; fails only when the temporary file cannot be written.
  net::Status append(std::string_view data);
  // read returns up to max bytes starting at offset, using buffer when they come from disk.
  net::Result<std::string_view> read(std::uint64_t offset, std::string& buffer,
                                     std::size_t max = 64 * 1024) const;
  std::uint64_t size() const noexcept { return memory_size_ + file_size_; }
  std::uint64_t memory_size() const noexcept { return memory_size_; }
  bool on_disk() const noexcept { return fd_ >= 0; }
  // clear empties the spool for the next message, gives its memory back and
  // closes the file: a session between messages holds no spool memory.
  void clear();

  // set_total_memory sets how much memory all spools of the process may hold
  // together ([server] spool_memory_total); a message that would pass it goes
  // on in its file. Spools already over a lowered limit keep what they hold.
  static void set_total_memory(std::uint64_t limit) noexcept;
  // total_memory is what all spools hold in memory now, with the freed
  // blocks their threads keep for the next messages.
  static std::uint64_t total_memory() noexcept;

 private:
  net::Status open_file();
  // append_to_memory takes what fits under both limits; it returns how much.
  std::size_t append_to_memory(std::string_view data);

  // The in-memory part is a list of blocks (4 KiB, doubling to 64 KiB, then
  // 64 KiB each) rather than one growing string: growing never copies what
  // is already there, and the blocks stay below malloc's mmap threshold, so
  // they are reused from the heap instead of being mapped, faulted in and
  // unmapped for every message.
  struct Block {
    std::unique_ptr<char[]> data;
    std::size_t capacity;
    std::size_t size;
  };
  std::uint64_t memory_limit_;
  std::string dir_;
  std::vector<Block> blocks_;
  std::uint64_t memory_size_ = 0;
  int fd_ = -1;
  std::uint64_t file_size_ = 0;
};

}  // namespace stampd::proxy
