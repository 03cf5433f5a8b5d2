#include "auth/dkim/message_splitter.h"

namespace stampd::auth {

SplitMessage split_message(std::string_view message) {
  if (message.substr(0, 2) == "\r\n") return SplitMessage{{}, message.substr(2)};
  const auto pos = message.find("\r\n\r\n");
  if (pos == std::string_view::npos) return SplitMessage{message, {}};
  return SplitMessage{message.substr(0, pos + 2), message.substr(pos + 4)};
}

net::Result<std::string_view> HeaderSplitter::feed(std::string_view chunk) {
  if (done_) return chunk;
  const std::size_t old = header_.size();
  // Bytes past the limit cannot hold a blank line that ends an acceptable
  // header, so a huge chunk is never copied whole.
  const std::size_t room = max_header_bytes_ + 4 > old ? max_header_bytes_ + 4 - old : 0;
  header_.append(chunk.substr(0, room));
  // The blank line is "CRLF CRLF", or a CRLF at the very start (no header).
  std::size_t body_at = std::string::npos;
  if (header_.size() >= 2 && header_.compare(0, 2, "\r\n") == 0) {
    body_at = 2;
    header_.clear();
  } else {
    const std::size_t from = old >= 3 ? old - 3 : 0;
    const std::size_t pos = header_.find("\r\n\r\n", from);
    if (pos != std::string::npos) {
      body_at = pos + 4;
      header_.resize(pos + 2);
    }
  }
  if (body_at == std::string::npos) {
    if (header_.size() > max_header_bytes_) {
      return net::make_error(
          net::Errc::LimitExceeded,
          "header section longer than " + std::to_string(max_header_bytes_) + " bytes");
    }
    return std::string_view{};
  }
  done_ = true;
  // body_at counts from the start of the header buffer, which held old bytes
  // before this chunk.
  return chunk.substr(body_at - old);
}

}  // namespace stampd::auth
