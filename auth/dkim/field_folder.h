// field_folder.h: folds the header fields we sign (DKIM-Signature, the ARC
// set) to at most kMaxSignatureLineLength columns, breaking only where the
// tag grammar allows FWS. Pure string work.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include "auth/dkim/signer.h"

namespace stampd::auth {

// FieldFolder appends words to a header field, breaking lines (CRLF + SP) so no
// line passes kMaxSignatureLineLength. A fold only ever replaces or adds
// whitespace where the tag grammar allows FWS (§3.2, §3.5), and the signature
// is computed over the folded text, so both canonicalizations agree with
// what the verifier sees.
class FieldFolder {
 public:
  explicit FieldFolder(std::string start) : text_(std::move(start)), col_(text_.size()) {}

  // word appends " " + w; the space becomes the fold when the line is full.
  void word(std::string_view w) {
    if (col_ + 1 + w.size() > kMaxSignatureLineLength && col_ > 1) {
      text_ += "\r\n";
      col_ = 0;
    }
    text_ += ' ';
    text_ += w;
    col_ += 1 + w.size();
  }
  // glued appends w with no space, folding first if it does not fit.
  void glued(std::string_view w) {
    if (col_ + w.size() > kMaxSignatureLineLength) {
      text_ += "\r\n ";
      col_ = 1;
    }
    text_ += w;
    col_ += w.size();
  }
  // spread appends a base64 value, filling lines to the limit (FWS inside a
  // base64 value is ignored by verifiers, §2.6).
  void spread(std::string_view v) {
    while (!v.empty()) {
      if (col_ >= kMaxSignatureLineLength) {
        text_ += "\r\n ";
        col_ = 1;
      }
      const std::size_t n = std::min(kMaxSignatureLineLength - col_, v.size());
      text_.append(v.substr(0, n));
      col_ += n;
      v.remove_prefix(n);
    }
  }
  // new_line ends the current line; the next word starts the next one.
  void new_line() {
    text_ += "\r\n";
    col_ = 0;
  }
  std::string& text() { return text_; }

 private:
  std::string text_;
  std::size_t col_;
};

}  // namespace stampd::auth
