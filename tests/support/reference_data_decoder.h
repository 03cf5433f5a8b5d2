// reference_data_decoder.h: the DATA decoder as it was before it learnt to
// pass unchanged runs of its input on as they are (a state machine that
// appends line by line). Kept, unchanged in behaviour, as the oracle that
// the tests and the fuzzer compare smtp::DataDecoder against: both must
// give the same message, the same bytes used, the same end and the same
// problem for any input cut anywhere.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "smtp/data_decoder.h"

namespace stampd::test {

class ReferenceDataDecoder {
 public:
  using Problem = smtp::DataDecoder::Problem;
  using Options = smtp::DataDecoder::Options;

  explicit ReferenceDataDecoder(Options options) : options_(options) {}

  bool done() const noexcept { return state_ == State::Done; }
  Problem problem() const noexcept { return problem_; }
  std::uint64_t size() const noexcept { return size_; }
  std::size_t feed(std::string_view input, std::string& out) {
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
            state_ = State::Text;
          }
          break;
        case State::DotCr:
          if (*p == '\n') {
            state_ = State::Done;
            ++p;
          } else {
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
            line_end(out, true);
          }
          ++p;
          break;
        }
        case State::Cr:
          if (*p == '\n') {
            ++p;
            line_end(out, false);
          } else {
            line_end(out, true);
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

  void end(std::string& out) {
    if (state_ == State::Body) {
      state_ = State::Done;
      return;
    }
    if (state_ == State::Cr) line_end(out, true);
    if (line_length_ > 0) {
      line_length_ = 0;
      size_ += 2;
      if (size_ > options_.max_size) fail(Problem::TooBig);
      if (problem_ == Problem::None) out.append("\r\n", 2);
    }
    state_ = State::Done;
  }

 private:
  enum class State { LineStart, Dot, DotCr, Text, Cr, Body, Done };

  void emit(const char* data, std::size_t n, std::string& out) {
    line_length_ += n;
    size_ += n;
    if (line_length_ > options_.max_line_length) fail(Problem::LineTooLong);
    if (size_ > options_.max_size) fail(Problem::TooBig);
    if (problem_ == Problem::None) out.append(data, n);
  }

  void line_end(std::string& out, bool bare) {
    if (bare && !options_.normalize_bare_line_endings) fail(Problem::BareLineEnding);
    const bool body_starts = options_.binary && line_length_ == 0;
    line_length_ = 0;
    size_ += 2;
    if (size_ > options_.max_size) fail(Problem::TooBig);
    if (problem_ == Problem::None) out.append("\r\n", 2);
    state_ = body_starts ? State::Body : bare ? State::Text : State::LineStart;
  }

  void emit_body(const char* data, std::size_t n, std::string& out) {
    size_ += n;
    if (size_ > options_.max_size) fail(Problem::TooBig);
    if (problem_ == Problem::None) out.append(data, n);
  }

  void fail(Problem p) {
    if (problem_ == Problem::None) problem_ = p;
  }

  Options options_;
  State state_ = State::LineStart;
  Problem problem_ = Problem::None;
  std::uint64_t size_ = 0;
  std::size_t line_length_ = 0;
};

}  // namespace stampd::test
