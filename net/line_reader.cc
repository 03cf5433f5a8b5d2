#include "net/line_reader.h"

#include <cstring>

namespace stampd::net {

namespace asio = boost::asio;

LineReader::LineReader(ByteStream& stream, std::size_t buffer_size)
    : stream_(stream), buffer_(buffer_size) {}

asio::awaitable<Status> LineReader::fill(Duration timeout) {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == buffer_.size() && begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  auto n = co_await stream_.read_some(asio::buffer(buffer_.data() + end_, buffer_.size() - end_),
                                      timeout);
  if (!n) co_return std::move(n).error();
  end_ += *n;
  co_return Ok{};
}

asio::awaitable<Result<std::string_view>> LineReader::read_line(std::size_t max_length,
                                                                Duration timeout) {
  std::size_t scanned = 0;  // bytes after begin_ known to hold no LF
  bool too_long = false;
  for (;;) {
    const char* start = buffer_.data() + begin_;
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
    if (end_ == buffer_.size() && begin_ == 0 && scanned > 0) {
      too_long = true;
      begin_ = end_ = 0;
      scanned = 0;
    }
    auto filled = co_await fill(timeout);
    if (!filled) co_return std::move(filled).error();
  }
}

asio::awaitable<Status> LineReader::fill_more(Duration timeout) {
  if (begin_ == 0 && end_ == buffer_.size())
    co_return make_error(Errc::LimitExceeded, "buffer full");
  auto filled = co_await fill(timeout);
  co_return filled;
}

asio::awaitable<Result<std::span<const char>>> LineReader::read_chunk(Duration timeout) {
  if (begin_ == end_) {
    auto filled = co_await fill(timeout);
    if (!filled) co_return std::move(filled).error();
  }
  co_return std::span<const char>(buffer_.data() + begin_, end_ - begin_);
}

}  // namespace stampd::net
