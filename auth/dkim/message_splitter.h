// message_splitter.h: finds the blank line between header and body (RFC 5322
// §2.1), for whole messages and for a stream of DATA chunks; the one place
// that rule is written. The proxy's MessageAssembler feeds chunks: the header
// comes out whole, the body passes through.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "net/result.h"

namespace stampd::auth {

// SplitMessage is a message cut at the blank line: header holds the fields
// with their CRLFs (no blank line), body everything after the blank line.
struct SplitMessage {
  std::string_view header;
  std::string_view body;
};

// split_message cuts a whole message. With no blank line the whole text is
// header and the body is empty; a message starting with CRLF has no header.
SplitMessage split_message(std::string_view message);

// HeaderSplitter collects the header from a stream of chunks split anywhere
// (also inside the CRLF CRLF) and hands back the body part of each chunk, so
// the body can go straight to the hashes and the spool. It holds at most
// max_header_bytes + 2 bytes, whatever is fed.
class HeaderSplitter {
 public:
  static constexpr std::size_t kDefaultMaxHeaderBytes = 256 * 1024;
  explicit HeaderSplitter(std::size_t max_header_bytes = kDefaultMaxHeaderBytes)
      : max_header_bytes_(max_header_bytes) {}

  // feed consumes chunk and returns the part of it that is body: empty while
  // the header is still open, a suffix of chunk when the blank line ends in
  // it, all of chunk afterwards. LimitExceeded once the header cannot end
  // within max_header_bytes (fields and their CRLFs, the blank line not
  // counted), whichever way the stream is cut.
  net::Result<std::string_view> feed(std::string_view chunk);
  // finish marks the end of the message: one without a blank line is all
  // header (RFC 5322 §2.1 allows it), which must fit the limit too.
  net::Status finish();
  // header_complete tells whether the header has ended: the blank line was
  // seen, or finish accepted a message without one.
  bool header_complete() const noexcept { return done_; }
  // header is the header text so far: the header block once complete.
  const std::string& header() const noexcept { return header_; }

 private:
  net::Error too_long() const;

  std::size_t max_header_bytes_;
  bool done_ = false;
  std::string header_;
};

}  // namespace stampd::auth
