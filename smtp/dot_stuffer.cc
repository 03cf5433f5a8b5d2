#include "smtp/dot_stuffer.h"

#include <cstring>

namespace stampd::smtp {

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
  const char* p = chunk.data();
  const char* const end = p + chunk.size();
  while (const void* lf = std::memchr(p, '\n', static_cast<std::size_t>(end - p))) {
    p = static_cast<const char*>(lf) + 1;
    if (p < end && *p == '.') return false;
  }
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
