#include "auth/dkim/body_canonicalizer.h"

#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace stampd::auth {
namespace {

bool is_wsp_or_cr(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// scan_relaxed returns the first position in [p, end) that relaxed
// canonicalization may change, or end. Everything before it is copied as is:
// text, single SPs between non-WSP bytes, and a CRLF between a non-WSP byte and
// a line that starts with a non-WSP byte. What it stops at: HTAB; SP followed
// by WSP or CR (a run, or trailing WSP); CR not followed by LF plus a plain
// byte (an empty or WSP-led next line, a bare CR). The vector versions also
// stop at other control bytes below 0x20 (cheaper to test "byte <= 0x20");
// the caller treats those as the content they are. Near the chunk end, where
// the following bytes are not visible, SP and CR stop the scan and the
// caller's slow path decides. Text bodies are mostly plain, so this loop is
// what keeps relaxed near raw SHA-256 speed.
const char* scan_relaxed_scalar(const char* p, const char* end) {
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

#if defined(__SSE2__)
const char* scan_relaxed_sse2(const char* p, const char* end) {
  const __m128i sp = _mm_set1_epi8(' ');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i x20 = _mm_set1_epi8(0x20);
  auto low = [&](__m128i v) { return _mm_cmpeq_epi8(_mm_min_epu8(v, x20), v); };  // v <= 0x20
  while (end - p >= 18) {
    const __m128i c0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i c1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    const __m128i c2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i keep_sp = _mm_andnot_si128(low(c1), _mm_cmpeq_epi8(c0, sp));
    const __m128i keep_crlf =
        _mm_andnot_si128(low(c2), _mm_and_si128(_mm_cmpeq_epi8(c0, cr), _mm_cmpeq_epi8(c1, lf)));
    const __m128i keep = _mm_or_si128(_mm_or_si128(keep_sp, keep_crlf), _mm_cmpeq_epi8(c0, lf));
    const int mask = _mm_movemask_epi8(_mm_andnot_si128(keep, low(c0)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
  return scan_relaxed_scalar(p, end);
}
#endif

#if defined(__x86_64__) && defined(__GNUC__)
// The same test 32 bytes at a time, for CPUs with AVX2 (chosen at run time).
__attribute__((target("avx2"))) const char* scan_relaxed_avx2(const char* p, const char* end) {
  const __m256i sp = _mm256_set1_epi8(' ');
  const __m256i cr = _mm256_set1_epi8('\r');
  const __m256i lf = _mm256_set1_epi8('\n');
  const __m256i x20 = _mm256_set1_epi8(0x20);
  auto low = [&](__m256i v) __attribute__((target("avx2"))) {
    return _mm256_cmpeq_epi8(_mm256_min_epu8(v, x20), v);
  };
  while (end - p >= 34) {
    const __m256i c0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i c1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 1));
    const __m256i c2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
    const __m256i keep_sp = _mm256_andnot_si256(low(c1), _mm256_cmpeq_epi8(c0, sp));
    const __m256i keep_crlf = _mm256_andnot_si256(
        low(c2), _mm256_and_si256(_mm256_cmpeq_epi8(c0, cr), _mm256_cmpeq_epi8(c1, lf)));
    const __m256i keep =
        _mm256_or_si256(_mm256_or_si256(keep_sp, keep_crlf), _mm256_cmpeq_epi8(c0, lf));
    const unsigned mask =
        static_cast<unsigned>(_mm256_movemask_epi8(_mm256_andnot_si256(keep, low(c0))));
    if (mask != 0) return p + __builtin_ctz(mask);
    p += 32;
  }
  return scan_relaxed_sse2(p, end);
}
#endif

using ScanFunction = const char* (*)(const char*, const char*);

ScanFunction pick_scan() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();  // may run before libgcc's own constructor
  if (__builtin_cpu_supports("avx2")) return scan_relaxed_avx2;
#endif
#if defined(__SSE2__)
  return scan_relaxed_sse2;
#else
  return scan_relaxed_scalar;
#endif
}

// scan_relaxed dispatches to the best scan for this CPU, chosen once; a
// function-local static, so it is ready even for callers in other static
// initializers.
const char* scan_relaxed(const char* p, const char* end) {
  static const ScanFunction scan = pick_scan();
  return scan(p, end);
}

class StringSink final : public BodySink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  void write(const char* data, std::size_t size) override { out_.append(data, size); }

 private:
  std::string& out_;
};

}  // namespace

// begin_content is called before a byte that makes the current line
// non-empty: the line ends held back so far were not trailing after all, and a
// held WSP run (relaxed) turned out to be inside the line, so it becomes one SP.
inline void BodyCanonicalizer::begin_content(BodySink& sink) {
  for (; pending_crlfs_ != 0; --pending_crlfs_) {
    emit_byte('\r', sink);
    emit_byte('\n', sink);
  }
  if (pending_wsp_) {
    emit_byte(' ', sink);
    pending_wsp_ = false;
  }
}

inline void BodyCanonicalizer::emit(const char* data, std::size_t size, BodySink& sink) {
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

inline void BodyCanonicalizer::emit_byte(char c, BodySink& sink) {
  content_written_ = true;
  if (used_ == buf_.size()) flush(sink);
  buf_[used_++] = c;
}

void BodyCanonicalizer::update(std::string_view chunk, BodySink& sink) {
  const char* p = chunk.data();
  const char* end = p + chunk.size();
  if (canon_ == Canonicalization::Simple) {
    update_simple(p, end, sink);
  } else {
    update_relaxed(p, end, sink);
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
//
// Two paths. The slow one below walks a byte at a time through the states
// with something pending (a CR, a WSP run, held line ends). Once a content
// byte has been written nothing is pending, and the fast path takes over: it
// copies plain runs found by scan_relaxed and handles the events met inside a
// line (a WSP run before more text, WSP before CRLF, a bare CR) in place,
// leaving only at a line end followed by an empty or indented line, or at the
// chunk end.
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
    p = relaxed_in_line(p, end, sink);
  }
}

// relaxed_in_line starts at a content byte with nothing pending and returns
// where the slow path must continue (end, or just after a CR it left pending).
const char* BodyCanonicalizer::relaxed_in_line(const char* p, const char* end, BodySink& sink) {
  for (;;) {
    const char* q = scan_relaxed(p + 1, end);  // *p is content
    emit(p, static_cast<std::size_t>(q - p), sink);
    if (q == end) return end;
    p = q;
    if (*p == ' ' || *p == '\t') {
      const char* r = p + 1;
      while (r < end && (*r == ' ' || *r == '\t')) ++r;
      if (r == end) {  // the run may still turn out to be trailing
        pending_wsp_ = true;
        return end;
      }
      if (*r != '\r') {  // inner run, content follows
        emit_byte(' ', sink);
        p = r;
        continue;
      }
      p = r;
      if (r + 1 < end && r[1] != '\n') {  // a bare CR: content, so the run stays
        emit_byte(' ', sink);
        emit_byte('\r', sink);
        p = r + 1;
        if (p < end && *p != ' ' && *p != '\t' && *p != '\r') continue;
        return p;
      }
      // WSP before a (possible) CRLF: held, dropped by the slow path if the
      // CR turns out to end the line.
      pending_wsp_ = true;
    }
    if (*p != '\r') continue;  // another control byte: plain content
    // *p == '\r' here. A CRLF followed by plain text never stops the scan,
    // so this is a line end before an empty/indented line, a bare CR, or a CR
    // too near the chunk end to tell: the slow path decides.
    pending_cr_ = true;
    return p + 1;
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
