#include "smtp/data_decoder.h"

#include <cstring>

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

void DataDecoder::emit(const char* data, std::size_t n, std::string& out) {
  line_length_ += n;
  size_ += n;
  if (line_length_ > options_.max_line_length) fail(Problem::LineTooLong);
  if (size_ > options_.max_size) fail(Problem::TooBig);
  if (problem_ == Problem::None) out.append(data, n);
}

void DataDecoder::line_end(std::string& out, bool bare) {
  if (bare && !options_.normalize_bare_line_endings) fail(Problem::BareLineEnding);
  // The empty line that ends the header section (it went out as CRLF, so a
  // reader of what we emit splits there too).
  const bool body_starts = options_.binary && line_length_ == 0;
  line_length_ = 0;
  size_ += 2;
  if (size_ > options_.max_size) fail(Problem::TooBig);
  if (problem_ == Problem::None) out.append("\r\n", 2);
  // After a bare CR or LF the next byte is not at a line start: a dot there is
  // content, never a terminator (see the header comment).
  state_ = body_starts ? State::Body : bare ? State::Text : State::LineStart;
}

void DataDecoder::emit_body(const char* data, std::size_t n, std::string& out) {
  size_ += n;
  if (size_ > options_.max_size) fail(Problem::TooBig);
  if (problem_ == Problem::None) out.append(data, n);
}

void DataDecoder::end(std::string& out) {
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
    if (problem_ == Problem::None) out.append("\r\n", 2);
  }
  state_ = State::Done;
}

std::size_t DataDecoder::feed(std::string_view input, std::string& out) {
  const char* p = input.data();
  const char* const end = p + input.size();
  while (p < end && state_ != State::Done) {
    switch (state_) {
      case State::LineStart:
        if (*p == '.' && !options_.chunked) {
          state_ = State::Dot;
          ++p;
        } else {
          state_ = State::Text;
        }
        break;
      case State::Dot:
        if (*p == '\r') {
          state_ = State::DotCr;
          ++p;
        } else {
          // RFC 5321 §4.5.2: a leading dot followed by more is stuffing; drop it.
          state_ = State::Text;
        }
        break;
      case State::DotCr:
        if (*p == '\n') {
          state_ = State::Done;
          ++p;
        } else {
          // ".<CR>x": the dot was stuffing and the CR is bare.
          line_end(out, true);
        }
        break;
      case State::Text: {
        const auto left = static_cast<std::size_t>(end - p);
        const char* lf = static_cast<const char*>(std::memchr(p, '\n', left));
        const std::size_t upto = lf ? static_cast<std::size_t>(lf - p) : left;
        const char* cr = static_cast<const char*>(std::memchr(p, '\r', upto));
        const char* stop = cr ? cr : (lf ? lf : end);
        if (stop > p) emit(p, static_cast<std::size_t>(stop - p), out);
        p = stop;
        if (p == end) break;
        if (*p == '\r') {
          state_ = State::Cr;
        } else {
          line_end(out, true);  // bare LF
        }
        ++p;
        break;
      }
      case State::Cr:
        if (*p == '\n') {
          ++p;
          line_end(out, false);
        } else {
          line_end(out, true);  // bare CR; *p is looked at again as text
        }
        break;
      case State::Body:
        emit_body(p, static_cast<std::size_t>(end - p), out);
        p = end;
        break;
      case State::Done:
        break;
    }
  }
  return static_cast<std::size_t>(p - input.data());
}

}  // namespace stampd::smtp
