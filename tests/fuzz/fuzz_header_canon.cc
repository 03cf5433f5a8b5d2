// Fuzzes the header block parser and both canonicalizations. Properties:
// the fields of a parsed block are its text, in order, with nothing left
// over but the blank line and what follows; simple header canonicalization
// is the identity; relaxed leaves no WSP run, fold or upper-case name; the
// incremental body canonicalizer fed in chunks (size from the first byte)
// writes exactly what the whole-body function does.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/dkim/body_canonicalizer.h"
#include "auth/dkim/canonicalization.h"
#include "auth/dkim/header_block.h"

namespace {

using stampd::auth::Canonicalization;

void check(bool ok) {
  if (!ok) std::abort();
}

struct StringSink : stampd::auth::BodySink {
  std::string out;
  void write(const char* data, std::size_t size) override { out.append(data, size); }
};

void relaxed_field(std::string_view raw) {
  const std::string c = stampd::auth::canonicalize_header(Canonicalization::Relaxed, raw);
  const std::string_view body =
      c.ends_with("\r\n") ? std::string_view(c).substr(0, c.size() - 2) : std::string_view(c);
  // A bare CR or LF inside a line is an ordinary byte; CRLF folds are not.
  check(body.find("\r\n") == std::string_view::npos);
  check(body.find('\t') == std::string_view::npos);
  check(body.find("  ") == std::string_view::npos);
  const auto colon = body.find(':');
  check(colon != std::string_view::npos);
  const auto name = body.substr(0, colon);
  check(std::none_of(name.begin(), name.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }));
  check(!body.ends_with(' '));
}

void headers(std::string_view text) {
  const auto block = stampd::auth::HeaderBlock::parse(std::string(text));
  if (!block.ok()) return;
  std::string joined;
  for (std::size_t i = 0; i < block->size(); ++i) {
    const auto f = block->field(i);
    joined += f.raw;
    check(stampd::auth::canonicalize_header(Canonicalization::Simple, f.raw) == f.raw);
    relaxed_field(f.raw);
    // count is linear: checked at both ends only, or a block of thousands
    // of tiny fields costs the run most of its speed.
    if (i < 4 || i + 4 >= block->size()) check(block->count(f.name) >= 1);
  }
  check(block->text().starts_with(joined));
}

void body(std::size_t chunk, std::string_view text) {
  for (auto c : {Canonicalization::Simple, Canonicalization::Relaxed}) {
    stampd::auth::BodyCanonicalizer canon(c);
    StringSink sink;
    for (std::size_t pos = 0; pos < text.size(); pos += chunk)
      canon.update(text.substr(pos, chunk), sink);
    canon.finish(sink);
    check(sink.out == stampd::auth::canonicalize_body(c, text));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 32;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  headers(text);
  body(chunk, text);
  return 0;
}
