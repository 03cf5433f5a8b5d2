#include "smtp/dot_stuffer.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace stampd::smtp {

namespace {

// has_dotted_line tells whether an LF in [p, end) is followed by a dot that
// is in it too: one pass, 16 pairs of bytes at a time where SSE2 is there,
// instead of a search for every line end (most chunks have no such line).
bool has_dotted_line(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i dot = _mm_set1_epi8('.');
  while (end - p >= 17) {
    const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
    if (_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(here, lf), _mm_cmpeq_epi8(next, dot))) != 0)
      return true;
    p += 16;
  }
#endif
  for (; end - p >= 2; ++p) {
    if (p[0] == '\n' && p[1] == '.') return true;
  }
  return false;
}

}  // namespace

void DotStuffer::feed(std::string_view chunk, std::string& out) {
  if (chunk.empty()) return;
  empty_ = false;
  const char* p = chunk.data();
  const char* const end = p + chunk.size();
  while (p < end) {
    if (line_start_ && *p == '.') out += '.';
    line_start_ = false;
    const char* lf =
        static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* stop = lf ? lf + 1 : end;
    out.append(p, static_cast<std::size_t>(stop - p));
    if (lf) line_start_ = true;
    p = stop;
  }
  after_cr_ = chunk.back() == '\r';
}

bool DotStuffer::unchanged(std::string_view chunk) {
  if (chunk.empty()) return true;
  if (line_start_ && chunk.front() == '.') return false;
  if (has_dotted_line(chunk.data(), chunk.data() + chunk.size())) return false;
  empty_ = false;
  line_start_ = chunk.back() == '\n';
  after_cr_ = chunk.back() == '\r';
  return true;
}

void DotStuffer::finish(std::string& out) {
  // Our messages are CRLF text, so a line start means the text ended in CRLF.
  if (!empty_ && !line_start_) out += after_cr_ ? "\n" : "\r\n";
  out += ".\r\n";
}

}  // namespace stampd::smtp
