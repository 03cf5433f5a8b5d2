// dot_stuffer.h: the sending side of RFC 5321 §4.5.2: doubles a dot at the
// start of every line and ends the data with <CRLF>.<CRLF>. Fed the message
// in chunks split anywhere. stampd stuffs everything it sends itself, so what
// a client sent can never end a message at the upstream.
#pragma once

#include <string>
#include <string_view>

namespace stampd::smtp {

class DotStuffer {
 public:
  // feed appends the stuffed form of chunk to out.
  void feed(std::string_view chunk, std::string& out);
  // unchanged says whether stuffing chunk would leave it as it is (no line
  // in it starts with a dot); if so it is taken as fed, and the caller sends
  // chunk itself instead of a stuffed copy. Otherwise nothing changes.
  bool unchanged(std::string_view chunk);
  // finish appends the end-of-data (after a CRLF if the text did not end with one).
  void finish(std::string& out);

 private:
  bool line_start_ = true;
  bool after_cr_ = false;
  bool empty_ = true;
};

}  // namespace stampd::smtp
