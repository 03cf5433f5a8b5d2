// line_endings.h: has_bare_line_ending, for the tests and fuzz targets that
// check the DATA decoder never lets a lone CR or LF through. Header-only, so
// the fuzz targets can use it without the gtest support library.
#pragma once

#include <string_view>

namespace stampd::test {

// has_bare_line_ending reports whether s holds a CR not followed by LF or an
// LF not preceded by CR.
inline bool has_bare_line_ending(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return true;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return true;
  }
  return false;
}

}  // namespace stampd::test
