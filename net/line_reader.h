// line_reader.h: buffered input over a ByteStream for line protocols: whole
// lines with a length limit, or raw chunks for bulk data. The buffer is fixed
// in size, so memory does not grow with what the peer sends.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "net/byte_stream.h"
#include "net/result.h"

namespace stampd::net {

class LineReader {
 public:
  explicit LineReader(ByteStream& stream, std::size_t buffer_size = 64 * 1024);

  // read_line returns the next line without its LF or CRLF. A line longer than
  // max_length fails with Errc::LimitExceeded after the rest of that line has
  // been read and dropped, so the caller can answer and carry on. The view is
  // valid until the next call.
  boost::asio::awaitable<Result<std::string_view>> read_line(std::size_t max_length,
                                                             Duration timeout);
  // read_chunk returns the buffered bytes, reading from the stream only when
  // none are buffered. Call consume() with what was used.
  boost::asio::awaitable<Result<std::span<const char>>> read_chunk(Duration timeout);
  void consume(std::size_t n) noexcept { begin_ += n; }
  // fill_more reads more bytes behind those already buffered (for headers
  // that arrive in pieces); fails when the buffer is full.
  boost::asio::awaitable<Status> fill_more(Duration timeout);

  // buffered tells whether input is already waiting (a pipelining client).
  bool buffered() const noexcept { return end_ > begin_; }
  // discard drops buffered input (after STARTTLS, RFC 3207 §4.2).
  void discard() noexcept { begin_ = end_ = 0; }

 private:
  boost::asio::awaitable<Status> fill(Duration timeout);

  ByteStream& stream_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace stampd::net
