#include "smtp/data_decoder.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace stampd::smtp {

const char* to_string(DataDecoder::Problem problem) {
  switch (problem) {
    case DataDecoder::Problem::None:
      return "none";
    case DataDecoder::Problem::BareLineEnding:
      return "bare-line-ending";
    case DataDecoder::Problem::LineTooLong:
      return "line-too-long";
    case DataDecoder::Problem::TooBig:
      return "too-big";
  }
  return "?";
}

namespace {

constexpr std::string_view kCrlf = "\r\n";

// find_line_break returns the first CR or LF in [p, end), or end: one pass
// over a line, 16 bytes at a time where SSE2 is there (every x86-64).
const char* find_line_break(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

class Appender final : public DataDecoder::Output {
 public:
  explicit Appender(std::string& out) : out_(out) {}
  void put(std::string_view bytes) override { out_.append(bytes); }

 private:
  std::string& out_;
};

}  // namespace

bool DataDecoder::count_line_end(bool bare) {
  if (bare && !options_.normalize_bare_line_endings) fail(Problem::BareLineEnding);
  // The empty line that ends the header section (it went out as CRLF, so a
  // reader of what we emit splits there too).
  const bool body_starts = options_.binary && line_length_ == 0;
  line_length_ = 0;
  size_ += 2;
  if (size_ > options_.max_size) fail(Problem::TooBig);
  // After a bare CR or LF the next byte is not at a line start: a dot there is
  // content, never a terminator (see the header comment).
  state_ = body_starts ? State::Body : bare ? State::Text : State::LineStart;
  return problem_ == Problem::None;
}

void DataDecoder::line_end(Output& out, bool bare) {
  if (count_line_end(bare)) out.put(kCrlf);
}

void DataDecoder::end(Output& out) {
  if (state_ == State::Body) {  // a binary body ends where it ends
    state_ = State::Done;
    return;
  }
  if (state_ == State::Cr) line_end(out, true);
  if (line_length_ > 0) {
    // RFC 5322 §2.1: lines end with CRLF; DATA would add it on the way out.
    line_length_ = 0;
    size_ += 2;
    if (size_ > options_.max_size) fail(Problem::TooBig);
    if (problem_ == Problem::None) out.put(kCrlf);
  }
  state_ = State::Done;
}

void DataDecoder::end(std::string& out) {
  Appender appender(out);
  end(appender);
}

std::size_t DataDecoder::feed(std::string_view input, std::string& out) {
  Appender appender(out);
  return feed(input, appender);
}

std::size_t DataDecoder::feed(std::string_view input, Output& out) {
  const char* p = input.data();
  const char* const end = p + input.size();
  // run: the input from here up to p goes out as it is. A removed dot, a
  // line ending made CRLF or a CR held back across calls ends a run.
  const char* run = p;
  const auto flush = [&](const char* upto) {
    if (upto > run && problem_ == Problem::None)
      out.put(std::string_view(run, static_cast<std::size_t>(upto - run)));
    run = upto;
  };
  while (p < end && state_ != State::Done) {
    switch (state_) {
      case State::LineStart:
        if (*p == '.' && !options_.chunked) {
          flush(p);
          run = ++p;  // stuffing, or the terminator's dot: never message text
          state_ = State::Dot;
        } else {
          state_ = State::Text;
        }
        break;
      case State::Dot:
        if (*p == '\r') {
          run = ++p;  // held: with an LF next it ends the data
          state_ = State::DotCr;
        } else {
          // RFC 5321 §4.5.2: a leading dot followed by more is stuffing; drop it.
          state_ = State::Text;
        }
        break;
      case State::DotCr:
        if (*p == '\n') {
          run = ++p;
          state_ = State::Done;
        } else {
          // ".<CR>x": the dot was stuffing and the CR is bare.
          line_end(out, true);
        }
        break;
      case State::Text: {
        const char* stop = find_line_break(p, end);
        const auto n = static_cast<std::size_t>(stop - p);
        line_length_ += n;
        size_ += n;
        if (line_length_ > options_.max_line_length || size_ > options_.max_size) {
          flush(p);
          fail(line_length_ > options_.max_line_length ? Problem::LineTooLong : Problem::TooBig);
        }
        p = stop;
        if (p == end) break;
        if (*p == '\r' && p + 1 < end && p[1] == '\n') {
          // The common case: a CRLF line, which stays in the run. A CRLF that
          // makes the message too big ends it: the text before goes out alone.
          if (size_ + 2 > options_.max_size) flush(p);
          count_line_end(false);
          p += 2;
          // The next line starts with text: no LineStart step.
          if (state_ == State::LineStart && p < end && (*p != '.' || options_.chunked))
            state_ = State::Text;
          break;
        }
        flush(p);
        run = ++p;
        if (p[-1] == '\r') {
          // A CR that ended this input waits for the next byte; any other is bare.
          if (p == end) {
            state_ = State::Cr;
          } else {
            line_end(out, true);
          }
        } else {
          line_end(out, true);  // bare LF
        }
        break;
      }
      case State::Cr:
        if (*p == '\n') {
          run = ++p;
          line_end(out, false);
        } else {
          line_end(out, true);  // bare CR; *p is looked at again as text
        }
        break;
      case State::Body:
        size_ += static_cast<std::size_t>(end - p);
        if (size_ > options_.max_size) {
          flush(p);
          fail(Problem::TooBig);
        }
        p = end;
        break;
      case State::Done:
        break;
    }
  }
  flush(p);
  return static_cast<std::size_t>(p - input.data());
}

}  // namespace stampd::smtp
