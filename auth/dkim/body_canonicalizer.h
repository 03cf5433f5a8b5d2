// dkim_body_canonicalizer.h: incremental body canonicalization (RFC 6376
// §3.4.3 simple, §3.4.4 relaxed). Fed chunks split anywhere, it writes exactly
// the bytes the whole-body algorithm would. Pure: no I/O, no allocation per
// byte, no virtual call per byte (the sink sees buffered runs).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/dkim/canonicalization.h"

namespace stampd::auth {

// BodySink receives canonical body bytes in order, in runs of any size.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual void write(const char* data, std::size_t size) = 0;
};

// BodyCanonicalizer turns body chunks into canonical bytes for a sink.
//
// Input is the message body after the header/body separator, with CRLF line
// ends (the proxy's DATA decoder has already normalized line ends and
// dot-unstuffed). A CR not followed by LF, or an LF not preceded by CR, is an
// ordinary byte here, as it is in the RFC's line model.
//
// State carried between chunks is O(1): a pending CR (is it the start of a
// CRLF?), a pending WSP run (relaxed: inner run or trailing WSP?), and a count
// of line ends not yet written (empty lines at the very end are dropped, so a
// run of them is only written once content follows). The count makes any
// number of trailing empty lines cost no memory.
class BodyCanonicalizer {
 public:
  explicit BodyCanonicalizer(Canonicalization c) : canon_(c) {}

  // update consumes one chunk; may be called with empty chunks.
  void update(std::string_view chunk, BodySink& sink);
  // finish writes what the end of the body decides (the final CRLF rules of
  // §3.4.3/§3.4.4 and erratum 1376) and flushes. Call once.
  void finish(BodySink& sink);

  Canonicalization canonicalization() const noexcept { return canon_; }

 private:
  static constexpr std::size_t kBufferSize = 8192;
  // Runs at least this long bypass the buffer and go to the sink directly.
  static constexpr std::size_t kDirectWrite = 2048;

  void update_simple(const char* p, const char* end, BodySink& sink);
  void update_relaxed(const char* p, const char* end, BodySink& sink);
  const char* relaxed_in_line(const char* p, const char* end, BodySink& sink);
  [[gnu::always_inline]] inline void begin_content(BodySink& sink);
  [[gnu::always_inline]] inline void emit(const char* data, std::size_t size, BodySink& sink);
  [[gnu::always_inline]] inline void emit_byte(char c, BodySink& sink);
  void flush(BodySink& sink);

  Canonicalization canon_;
  bool pending_cr_ = false;       // the previous chunk ended in CR
  bool pending_wsp_ = false;      // relaxed: WSP seen since the last content byte
  bool content_written_ = false;  // the body has a non-empty line
  std::uint64_t pending_crlfs_ = 0;
  std::size_t used_ = 0;
  std::array<char, kBufferSize> buf_;
};

// canonicalize_body returns the canonical form of a whole body; for tests,
// diagnostics and small inputs.
std::string canonicalize_body(Canonicalization c, std::string_view body);

}  // namespace stampd::auth
