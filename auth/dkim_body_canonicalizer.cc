#include "auth/dkim_body_canonicalizer.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace stampd::auth {
namespace {

bool is_wsp_or_cr(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// scan_relaxed returns the first position in [p, end) that relaxed
// canonicalization may change, or end. Everything before it is copied as is:
// text, single SPs between non-WSP bytes, and a CRLF between a non-WSP byte and
// a line that starts with a non-WSP byte. Events: HTAB; SP followed by WSP or
// CR (a run, or trailing WSP); CR not followed by LF plus a non-WSP/non-CR byte
// (an empty or WSP-led next line, a bare CR). Near the chunk end, where the
// following bytes are not visible, SP and CR count as events and the caller's
// slow path decides. The SSE2 loop does the same test 16 bytes at a time; text
// bodies are mostly plain, so this is what keeps relaxed near raw SHA-256.
const char* scan_relaxed(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i sp = _mm_set1_epi8(' ');
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 18) {
    const __m128i c0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i c1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    const __m128i c2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i ws1 = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(c1, sp), _mm_cmpeq_epi8(c1, tab)),
                                     _mm_cmpeq_epi8(c1, cr));
    const __m128i ws2 = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(c2, sp), _mm_cmpeq_epi8(c2, tab)),
                                     _mm_cmpeq_epi8(c2, cr));
    // CR is harmless only as CRLF followed by a plain byte.
    const __m128i crlf_plain = _mm_andnot_si128(ws2, _mm_cmpeq_epi8(c1, lf));
    const __m128i ev_cr = _mm_andnot_si128(crlf_plain, _mm_cmpeq_epi8(c0, cr));
    const __m128i ev_sp = _mm_and_si128(_mm_cmpeq_epi8(c0, sp), ws1);
    const __m128i ev = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(c0, tab), ev_sp), ev_cr);
    const int mask = _mm_movemask_epi8(ev);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  for (; p < end; ++p) {
    const char c = *p;
    if (c == '\t') return p;
    if (c == ' ') {
      if (p + 1 == end || is_wsp_or_cr(p[1])) return p;
    } else if (c == '\r') {
      if (p + 2 >= end || p[1] != '\n' || is_wsp_or_cr(p[2])) return p;
    }
  }
  return end;
}

class StringSink final : public BodySink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  void write(const char* data, std::size_t size) override { out_.append(data, size); }

 private:
  std::string& out_;
};

}  // namespace

void BodyCanonicalizer::update(std::string_view chunk, BodySink& sink) {
  const char* p = chunk.data();
  const char* end = p + chunk.size();
  if (canon_ == Canonicalization::Simple) {
    update_simple(p, end, sink);
  } else {
    update_relaxed(p, end, sink);
  }
}

// begin_content is called before a byte that makes the current line
// non-empty: the line ends held back so far were not trailing after all, and a
// held WSP run (relaxed) turned out to be inside the line, so it becomes one SP.
void BodyCanonicalizer::begin_content(BodySink& sink) {
  for (; pending_crlfs_ != 0; --pending_crlfs_) {
    emit_byte('\r', sink);
    emit_byte('\n', sink);
  }
  if (pending_wsp_) {
    emit_byte(' ', sink);
    pending_wsp_ = false;
  }
}

// RFC 6376 §3.4.3: simple only drops empty lines at the end. So a chunk is
// written as it is, except its tail of CRLF pairs (and a final lone CR, which
// may be the first half of a CRLF): those are held as a count.
void BodyCanonicalizer::update_simple(const char* p, const char* end, BodySink& sink) {
  if (p == end) return;
  if (pending_cr_) {
    pending_cr_ = false;
    if (*p == '\n') {
      ++pending_crlfs_;
      ++p;
    } else {
      begin_content(sink);
      emit_byte('\r', sink);  // a bare CR is line content
    }
  }
  const char* head_end = end;
  if (head_end > p && head_end[-1] == '\r') {
    pending_cr_ = true;
    --head_end;
  }
  std::uint64_t tail_crlfs = 0;
  while (head_end - p >= 2 && head_end[-1] == '\n' && head_end[-2] == '\r') {
    head_end -= 2;
    ++tail_crlfs;
  }
  // What remains ends in a byte that is not the end of a CRLF, so its last
  // line has content and every line end held so far is inside the body.
  if (head_end > p) {
    begin_content(sink);
    emit(p, static_cast<std::size_t>(head_end - p), sink);
  }
  pending_crlfs_ += tail_crlfs;
}

// RFC 6376 §3.4.4: WSP runs become one SP, WSP at line ends goes, empty lines
// at the end go. A line of only WSP is empty after that, so it too is held.
void BodyCanonicalizer::update_relaxed(const char* p, const char* end, BodySink& sink) {
  while (p < end) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (*p == '\n') {
        ++p;
        pending_wsp_ = false;  // trailing WSP of the line just ended
        ++pending_crlfs_;
        continue;
      }
      begin_content(sink);
      emit_byte('\r', sink);
      continue;
    }
    const char c = *p;
    if (c == ' ' || c == '\t') {
      pending_wsp_ = true;
      ++p;
      continue;
    }
    if (c == '\r') {
      pending_cr_ = true;
      ++p;
      continue;
    }
    begin_content(sink);
    const char* q = scan_relaxed(p + 1, end);
    emit(p, static_cast<std::size_t>(q - p), sink);
    p = q;
  }
}

void BodyCanonicalizer::finish(BodySink& sink) {
  if (pending_cr_) {  // the body ends in a bare CR: content
    pending_cr_ = false;
    begin_content(sink);
    emit_byte('\r', sink);
  }
  pending_wsp_ = false;  // trailing WSP of an unterminated last line
  // Any content written means the body is non-empty: it ends with exactly one
  // CRLF, added if missing. An empty body is "CRLF" for simple (§3.4.3) and
  // nothing for relaxed (§3.4.4, erratum 1376).
  const bool has_content = content_written_;
  if (has_content || canon_ == Canonicalization::Simple) {
    emit_byte('\r', sink);
    emit_byte('\n', sink);
  }
  pending_crlfs_ = 0;
  flush(sink);
}

void BodyCanonicalizer::emit(const char* data, std::size_t size, BodySink& sink) {
  content_written_ = true;
  if (size >= kDirectWrite) {
    flush(sink);
    sink.write(data, size);
    return;
  }
  if (used_ + size > buf_.size()) flush(sink);
  std::memcpy(buf_.data() + used_, data, size);
  used_ += size;
}

void BodyCanonicalizer::emit_byte(char c, BodySink& sink) {
  content_written_ = true;
  if (used_ == buf_.size()) flush(sink);
  buf_[used_++] = c;
}

void BodyCanonicalizer::flush(BodySink& sink) {
  if (used_ != 0) sink.write(buf_.data(), used_);
  used_ = 0;
}

std::string canonicalize_body(Canonicalization c, std::string_view body) {
  std::string out;
  StringSink sink(out);
  BodyCanonicalizer canon(c);
  canon.update(body, sink);
  canon.finish(sink);
  return out;
}

}  // namespace stampd::auth
