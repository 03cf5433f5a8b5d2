#include "net/line_reader.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace stampd::net {

namespace asio = boost::asio;

LineReader::LineReader(ByteStream& stream, std::size_t max_size, std::size_t initial)
    : stream_(stream),
      max_size_(std::max(max_size, initial)),
      initial_(initial),
      buffer_(new char[initial]),
      size_(initial) {}

void LineReader::resize(std::size_t size) {
  const std::size_t held = end_ - begin_;
  std::unique_ptr<char[]> bigger(new char[size]);
  if (held > 0) std::memcpy(bigger.get(), buffer_.get() + begin_, held);
  buffer_ = std::move(bigger);
  size_ = size;
  begin_ = 0;
  end_ = held;
}

void LineReader::reserve(std::size_t size) {
  size = std::min(size, max_size_);
  if (size > size_) resize(size);
}

void LineReader::release() {
  if (size_ > initial_ && end_ - begin_ <= initial_) resize(initial_);
}

asio::awaitable<Status> LineReader::fill(Duration timeout) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == size_ && begin_ > 0) {
    std::memmove(buffer_.get(), buffer_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  auto n = co_await stream_.read_some(asio::buffer(buffer_.get() + end_, size_ - end_), timeout);
  if (!n) co_return std::move(n).error();
  end_ += *n;
  co_return Ok{};
}

asio::awaitable<Result<std::string_view>> LineReader::read_line(std::size_t max_length,
                                                                Duration timeout) {
  // A line of max_length octets and its CRLF must fit, whatever the bound.
  const std::size_t line_room = std::max(max_size_, max_length + 2);
  // The timeout bounds the whole line, not each read: a peer trickling a
  // byte now and then (slowloris) is cut like a silent one.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t scanned = 0;  // bytes after begin_ known to hold no LF
  bool too_long = false;
  for (;;) {
    const char* start = buffer_.get() + begin_;
    const auto* lf =
        static_cast<const char*>(std::memchr(start + scanned, '\n', end_ - begin_ - scanned));
    if (lf != nullptr) {
      std::size_t len = static_cast<std::size_t>(lf - start);
      begin_ += len + 1;
      if (too_long) co_return make_error(Errc::LimitExceeded, "line too long");
      if (len > 0 && start[len - 1] == '\r') --len;
      if (len > max_length) co_return make_error(Errc::LimitExceeded, "line too long");
      co_return std::string_view(start, len);
    }
    scanned = end_ - begin_;
    if (scanned > max_length + 1) {
      // Drop what we have of the over-long line; keep reading to its end.
      too_long = true;
      begin_ = end_ = 0;
      scanned = 0;
    }
    if (end_ == size_ && begin_ == 0 && scanned > 0) {
      if (size_ < line_room) {
        resize(std::min(size_ * 2, line_room));
      } else {
        too_long = true;
        begin_ = end_ = 0;
        scanned = 0;
      }
    }
    const Duration left = deadline - std::chrono::steady_clock::now();
    if (left <= Duration::zero()) co_return make_error(Errc::Timeout, "read timed out");
    auto filled = co_await fill(left);
    if (!filled) co_return std::move(filled).error();
  }
}

std::vector<std::string_view> LineReader::complete_lines(std::size_t max) const {
  std::vector<std::string_view> lines;
  const char* at = buffer_.get() + begin_;
  const char* end = buffer_.get() + end_;
  while (lines.size() < max && at < end) {
    const auto* lf = static_cast<const char*>(std::memchr(at, '\n', end - at));
    if (lf == nullptr) break;
    std::size_t len = static_cast<std::size_t>(lf - at);
    if (len > 0 && at[len - 1] == '\r') --len;
    lines.emplace_back(at, len);
    at = lf + 1;
  }
  return lines;
}

asio::awaitable<Status> LineReader::fill_more(Duration timeout) {
  if (begin_ == 0 && end_ == size_) {
    if (size_ >= max_size_) co_return make_error(Errc::LimitExceeded, "buffer full");
    resize(std::min(size_ * 2, max_size_));
  }
  auto filled = co_await fill(timeout);
  co_return filled;
}

asio::awaitable<Result<std::span<const char>>> LineReader::read_chunk(Duration timeout) {
  if (begin_ == end_) {
    auto filled = co_await fill(timeout);
    if (!filled) co_return std::move(filled).error();
  }
  co_return std::span<const char>(buffer_.get() + begin_, end_ - begin_);
}

}  // namespace stampd::net
