#include "proxy/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stampd::proxy {

using net::Errc;
using net::make_error;

Spool::Spool(std::uint64_t memory_limit, std::string dir)
    : memory_limit_(memory_limit), dir_(std::move(dir)) {}

Spool::~Spool() { clear(); }

namespace {
constexpr std::size_t kFirstBlock = 4 * 1024;
constexpr std::size_t kLargestBlock = 64 * 1024;
}  // namespace

void Spool::clear() {
  blocks_.clear();
  blocks_.shrink_to_fit();
  memory_size_ = 0;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  file_size_ = 0;
}

net::Status Spool::open_file() {
  // O_TMPFILE: the file never has a name, so a crash leaves nothing behind.
  fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string path = dir_ + "/stampd-spool-XXXXXX";
    fd_ = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(path.c_str());
  }
  if (fd_ < 0) {
    return make_error(Errc::Io,
                      "cannot create a spool file in '" + dir_ + "': " + std::strerror(errno));
  }
  return net::Ok{};
}

net::Status Spool::append(std::string_view data) {
  if (fd_ < 0) {
    const std::uint64_t room = memory_limit_ > memory_size_ ? memory_limit_ - memory_size_ : 0;
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(room, data.size()));
    append_to_memory(data.substr(0, take));
    data.remove_prefix(take);
    if (data.empty()) return net::Ok{};
    if (auto opened = open_file(); !opened) return opened;
  }
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // Name the directory: the operator has to find the full disk.
      return make_error(Errc::Io,
                        "cannot write the spool file in '" + dir_ + "': " + std::strerror(errno));
    }
    file_size_ += static_cast<std::uint64_t>(n);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return net::Ok{};
}

void Spool::append_to_memory(std::string_view data) {
  while (!data.empty()) {
    if (blocks_.empty() || blocks_.back().size == blocks_.back().capacity) {
      const std::size_t capacity =
          blocks_.empty() ? kFirstBlock : std::min(kLargestBlock, 2 * blocks_.back().capacity);
      // make_unique_for_overwrite: no zero-filling of bytes about to be written.
      blocks_.push_back({std::make_unique_for_overwrite<char[]>(capacity), capacity, 0});
    }
    Block& b = blocks_.back();
    const std::size_t n = std::min(data.size(), b.capacity - b.size);
    std::memcpy(b.data.get() + b.size, data.data(), n);
    b.size += n;
    memory_size_ += n;
    data.remove_prefix(n);
  }
}

net::Result<std::string_view> Spool::read(std::uint64_t offset, std::string& buffer,
                                          std::size_t max) const {
  if (offset < memory_size_) {
    // Blocks before the last are full and their sizes follow the doubling,
    // so the block holding offset is found without walking a long list.
    std::size_t index = 0;
    std::uint64_t start = 0;
    for (std::size_t capacity = kFirstBlock; capacity < kLargestBlock && index < blocks_.size();
         capacity *= 2) {
      if (offset < start + blocks_[index].size) break;
      start += blocks_[index].size;
      ++index;
    }
    if (index < blocks_.size() && offset >= start + blocks_[index].size) {
      const std::uint64_t skipped = (offset - start) / kLargestBlock;
      index += static_cast<std::size_t>(skipped);
      start += skipped * kLargestBlock;
    }
    const Block& b = blocks_[index];
    const auto in_block = static_cast<std::size_t>(offset - start);
    const std::size_t n = std::min(max, b.size - in_block);
    return std::string_view(b.data.get() + in_block, n);
  }
  const std::uint64_t file_offset = offset - memory_size_;
  if (file_offset >= file_size_) return std::string_view{};
  buffer.resize(static_cast<std::size_t>(std::min<std::uint64_t>(max, file_size_ - file_offset)));
  for (;;) {
    const ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), static_cast<off_t>(file_offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return make_error(Errc::Io, "cannot read the spool file in '" + dir_ +
                                      "': " + (n == 0 ? "short file" : std::strerror(errno)));
    }
    return std::string_view(buffer.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace stampd::proxy
