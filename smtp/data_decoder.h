// data_decoder.h: turns the bytes a client sends after DATA into the message
// (RFC 5321 §4.1.1.4, §4.5.2): finds the end-of-data, removes dot-stuffing and
// applies the bare CR / bare LF policy. Sans-IO: fed chunks split anywhere.
//
// Only the exact sequence <CRLF>.<CRLF> ends the data (the start of DATA counts
// as a CRLF). A bare CR or LF never starts a line for this purpose, so no
// byte sequence can end a message early (SMTP smuggling, CVE-2023-51764).
//
// Chunked (BDAT, RFC 3030): the bytes are the message as they are, with no
// dot-stuffing and no end-of-data in them; end() marks the end. The bare CR
// / bare LF policy and the line limit are the same as for DATA: the message
// leaves as canonical CRLF text, so no chunk content can end or split it at
// an upstream that reads DATA loosely.
//
// Binary (BODY=BINARYMIME, chunked only, RFC 3030 §3): the header section is
// decoded as above; from the empty line on, the body passes octet for octet
// (bare CR and LF, NUL, any line length, no CRLF added at the end). Such a
// message only ever leaves as BDAT, whose length-counted chunks nothing in
// them can end early.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stampd::smtp {

class DataDecoder {
 public:
  enum class Problem { None, BareLineEnding, LineTooLong, TooBig };
  struct Options {
    bool normalize_bare_line_endings = true;  // false: reject the message
    std::size_t max_line_length = 998;        // octets, without CRLF
    std::uint64_t max_size = 50ULL << 20;     // octets of message
    bool chunked = false;                     // BDAT content: no dots, no end-of-data
    bool binary = false;                      // with chunked: the body passes as it is (BINARYMIME)
  };

  // Output takes the decoded message in pieces, in order: runs of the input
  // that pass as they are (views into it, valid during the call only: most
  // of a message is such a run, so it is never copied here) and the CRLF of
  // a line whose ending was normalized.
  class Output {
   public:
    virtual void put(std::string_view bytes) = 0;

   protected:
    ~Output() = default;
  };

  explicit DataDecoder(Options options) : options_(options) {}

  // feed decodes input and gives the message bytes (CRLF lines, unstuffed) to
  // out. It returns how many input bytes it used: all of them, or fewer when
  // the end-of-data came first (the rest is the client's next command). After
  // a problem it goes on looking for the end but gives out nothing more.
  std::size_t feed(std::string_view input, Output& out);
  // This feed appends the message bytes to out.
  std::size_t feed(std::string_view input, std::string& out);

  // end marks the end of chunked content (BDAT LAST): a CR held back to see
  // whether an LF follows is bare, and a last line without CRLF gets one.
  void end(Output& out);
  void end(std::string& out);

  bool done() const noexcept { return state_ == State::Done; }
  Problem problem() const noexcept { return problem_; }
  // size counts the message octets seen (also past a problem).
  std::uint64_t size() const noexcept { return size_; }

 private:
  enum class State { LineStart, Dot, DotCr, Text, Cr, Body, Done };

  // count_line_end counts a line end (CRLF, or a bare CR or LF made one)
  // and sets the state after it; false once there is a problem.
  bool count_line_end(bool bare);
  // line_end counts a line end and gives out its CRLF.
  void line_end(Output& out, bool bare);
  void fail(Problem p) {
    if (problem_ == Problem::None) problem_ = p;
  }

  Options options_;
  State state_ = State::LineStart;
  Problem problem_ = Problem::None;
  std::uint64_t size_ = 0;
  std::size_t line_length_ = 0;
};

const char* to_string(DataDecoder::Problem problem);

}  // namespace stampd::smtp
