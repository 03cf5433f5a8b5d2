// spool.h: holds one message between end-of-data and the upstream's reply:
// the first bytes in memory (up to a limit), the rest in an unlinked temporary
// file, so memory per session does not grow with message size and nothing is
// left on disk if stampd dies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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
  std::uint64_t size() const noexcept { return memory_.size() + file_size_; }
  bool on_disk() const noexcept { return fd_ >= 0; }
  // clear empties the spool for the next message (and closes the file).
  void clear();

 private:
  net::Status open_file();

  std::uint64_t memory_limit_;
  std::string dir_;
  std::string memory_;
  int fd_ = -1;
  std::uint64_t file_size_ = 0;
};

}  // namespace stampd::proxy
