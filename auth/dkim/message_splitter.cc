#include "auth/dkim/message_splitter.h"

#include <optional>

namespace stampd::auth {
namespace {

// BlankLine is where a header section ends: header_size bytes of fields, the
// body from body_at.
struct BlankLine {
  std::size_t header_size;
  std::size_t body_at;
};

// find_blank_line finds the end of the header section in text (RFC 5322
// §2.1): a CRLF at the very start (no fields), else the first CRLF CRLF that
// starts at or after from.
std::optional<BlankLine> find_blank_line(std::string_view text, std::size_t from) {
  if (text.substr(0, 2) == "\r\n") return BlankLine{0, 2};
  const auto pos = text.find("\r\n\r\n", from);
  if (pos == std::string_view::npos) return std::nullopt;
  return BlankLine{pos + 2, pos + 4};
}

}  // namespace

SplitMessage split_message(std::string_view message) {
  const auto blank = find_blank_line(message, 0);
  if (!blank) return SplitMessage{message, {}};
  return SplitMessage{message.substr(0, blank->header_size), message.substr(blank->body_at)};
}

net::Error HeaderSplitter::too_long() const {
  return net::make_error(
      net::Errc::LimitExceeded,
      "header section longer than " + std::to_string(max_header_bytes_) + " bytes");
}

net::Result<std::string_view> HeaderSplitter::feed(std::string_view chunk) {
  if (done_) return chunk;
  const std::size_t old = header_.size();
  // A header that fits ends its blank line within max + 2 bytes, so bytes
  // past that are never copied (a huge chunk, or a stream fed on after an
  // error).
  const std::size_t cap = max_header_bytes_ + 2;
  header_.append(chunk.substr(0, cap > old ? cap - old : 0));
  // The blank line may have started in the previous chunk.
  const auto blank = find_blank_line(header_, old >= 3 ? old - 3 : 0);
  if (!blank) {
    // max + 1 bytes may still be a full header and the CR of the blank line.
    if (header_.size() > max_header_bytes_ + 1) return too_long();
    return std::string_view{};
  }
  done_ = true;
  header_.resize(blank->header_size);
  // body_at counts from the start of the buffer, which held old bytes before
  // this chunk.
  return chunk.substr(blank->body_at - old);
}

net::Status HeaderSplitter::finish() {
  if (done_) return net::Ok{};
  if (header_.size() > max_header_bytes_) return too_long();
  done_ = true;
  return net::Ok{};
}

}  // namespace stampd::auth
