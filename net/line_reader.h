// line_reader.h: buffered input over a ByteStream for line protocols: whole
// lines with a length limit, or raw chunks for bulk data. The buffer starts
// small (an idle SMTP session should cost a few KiB) and grows only up to a
// bound: to hold a line up to its limit, or to the size asked for with
// reserve() while a message streams; release() gives the memory back.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "net/byte_stream.h"
#include "net/result.h"

namespace stampd::net {

class LineReader {
 public:
  static constexpr std::size_t kInitialSize = 1024;

  // max_size bounds the buffer (a line up to read_line's max_length may take
  // more); initial is what it holds while idle.
  explicit LineReader(ByteStream& stream, std::size_t max_size = 64 * 1024,
                      std::size_t initial = kInitialSize);

  // read_line returns the next line without its LF or CRLF. A line longer than
  // max_length fails with Errc::LimitExceeded after the rest of that line has
  // been read and dropped, so the caller can answer and carry on. timeout
  // bounds the whole line (Errc::Timeout), however its bytes trickle in. The
  // view is valid until the next call.
  boost::asio::awaitable<Result<std::string_view>> read_line(std::size_t max_length,
                                                             Duration timeout);
  // read_chunk returns the buffered bytes, reading from the stream only when
  // none are buffered. Call consume() with what was used.
  boost::asio::awaitable<Result<std::span<const char>>> read_chunk(Duration timeout);
  void consume(std::size_t n) noexcept { begin_ += n; }
  // fill_more reads more bytes behind those already buffered (for headers
  // that arrive in pieces); fails when the buffer is full at its bound.
  boost::asio::awaitable<Status> fill_more(Duration timeout);

  // reserve grows the buffer to size (bounded by max_size) for bulk reads.
  void reserve(std::size_t size);
  // release shrinks the buffer back to its initial size when what is
  // buffered fits.
  void release();
  std::size_t capacity() const noexcept { return size_; }

  // complete_lines returns up to max of the whole lines already buffered
  // (without LF or CRLF), consuming nothing: what a pipelining client sent
  // ahead. The views are valid until the next read.
  std::vector<std::string_view> complete_lines(std::size_t max) const;

  // buffered tells whether input is already waiting (a pipelining client).
  bool buffered() const noexcept { return end_ > begin_; }
  // buffered_bytes is how much input is waiting.
  std::size_t buffered_bytes() const noexcept { return end_ - begin_; }
  // discard drops buffered input (after STARTTLS, RFC 3207 §4.2).
  void discard() noexcept { begin_ = end_ = 0; }

 private:
  boost::asio::awaitable<Status> fill(Duration timeout);
  // resize moves the buffered bytes into a buffer of size bytes.
  void resize(std::size_t size);

  ByteStream& stream_;
  std::size_t max_size_;
  std::size_t initial_;
  // Not a vector: its zero-filling showed in profiles, and the bytes are
  // always written by a read before they are looked at.
  std::unique_ptr<char[]> buffer_;
  std::size_t size_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace stampd::net
