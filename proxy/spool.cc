#include "proxy/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

// The blocks all spools hold, counted against [server] spool_memory_total.
std::atomic<std::uint64_t> total_limit{128ULL << 20};
std::atomic<std::uint64_t> total_used{0};

bool take_memory(std::size_t n) {
  const std::uint64_t limit = total_limit.load(std::memory_order_relaxed);
  std::uint64_t used = total_used.load(std::memory_order_relaxed);
  do {
    if (used + n > limit) return false;
  } while (!total_used.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  return true;
}

void give_memory(std::size_t n) { total_used.fetch_sub(n, std::memory_order_relaxed); }

// Each thread keeps some freed 64 KiB blocks for its next messages (they
// stay counted in the total). Freed to malloc, a message's blocks went back
// to the kernel (the arena is trimmed) and were faulted in again, page by
// page, by the next message: that cost about as much as the copying itself.
// At most 16 MiB a thread, and never more than an eighth of the total.
constexpr std::size_t kMaxCachedBlocks = 256;

struct BlockCache {
  std::vector<std::unique_ptr<char[]>> blocks;
  ~BlockCache() { give_memory(blocks.size() * kLargestBlock); }
  std::size_t limit() const noexcept {
    const std::uint64_t share = total_limit.load(std::memory_order_relaxed) / 8 / kLargestBlock;
    return static_cast<std::size_t>(std::min<std::uint64_t>(kMaxCachedBlocks, share));
  }
};

BlockCache& cached_blocks() {
  thread_local BlockCache cache;
  return cache;
}

// new_block returns a block of capacity bytes counted in the total, or null
// when the total has no room for it.
std::unique_ptr<char[]> new_block(std::size_t capacity) {
  auto& cached = cached_blocks().blocks;
  if (capacity == kLargestBlock && !cached.empty()) {
    auto block = std::move(cached.back());
    cached.pop_back();
    return block;
  }
  if (!take_memory(capacity)) return nullptr;
  // make_unique_for_overwrite: no zero-filling of bytes about to be written.
  return std::make_unique_for_overwrite<char[]>(capacity);
}

}  // namespace

void Spool::set_total_memory(std::uint64_t limit) noexcept {
  total_limit.store(limit, std::memory_order_relaxed);
}

std::uint64_t Spool::total_memory() noexcept { return total_used.load(std::memory_order_relaxed); }

void Spool::clear() {
  auto& cache = cached_blocks();
  const std::size_t keep = cache.limit();
  for (auto& b : blocks_) {
    if (b.capacity == kLargestBlock && cache.blocks.size() < keep) {
      cache.blocks.push_back(std::move(b.data));
    } else {
      give_memory(b.capacity);
    }
  }
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
    // What the total has no room for goes to the file, and so does the rest
    // of this message: its bytes are the ones in memory, then the file's.
    data.remove_prefix(append_to_memory(data.substr(0, take)));
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

std::size_t Spool::append_to_memory(std::string_view data) {
  const std::size_t wanted = data.size();
  while (!data.empty()) {
    if (blocks_.empty() || blocks_.back().size == blocks_.back().capacity) {
      const std::size_t capacity =
          blocks_.empty() ? kFirstBlock : std::min(kLargestBlock, 2 * blocks_.back().capacity);
      auto block = new_block(capacity);
      if (!block) break;
      blocks_.push_back({std::move(block), capacity, 0});
    }
    Block& b = blocks_.back();
    const std::size_t n = std::min(data.size(), b.capacity - b.size);
    std::memcpy(b.data.get() + b.size, data.data(), n);
    b.size += n;
    memory_size_ += n;
    data.remove_prefix(n);
  }
  return wanted - data.size();
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
