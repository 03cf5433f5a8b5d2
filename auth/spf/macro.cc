#include "auth/spf/macro.h"

#include <algorithm>
#include <optional>
#include <vector>

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

constexpr std::string_view kDelimiters = ".-+,/_=";
// RFC 7208 §7.1: implementations MUST support at least 128 parts; more is
// the same as "all parts".
constexpr unsigned kMaxParts = 128;

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
bool is_upper(char c) noexcept { return c >= 'A' && c <= 'Z'; }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

std::string hex_byte(unsigned char u) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string{'0', 'x', kHex[u >> 4], kHex[u & 0xf]};
}

// One "%{...}" after parsing.
struct MacroExpand {
  char letter = 0;     // as written; upper case asks for URL escaping
  unsigned parts = 0;  // 0: all parts
  bool reverse = false;
  std::string delimiters;
  bool transformed() const { return parts != 0 || reverse || !delimiters.empty(); }
};

// A token of a macro string: a literal run, or one macro.
struct Token {
  std::string literal;  // used when !macro
  std::optional<MacroExpand> macro;
};

bool letter_allowed(char letter, MacroScope scope) {
  switch (lower(letter)) {
    case 's':
    case 'l':
    case 'o':
    case 'd':
    case 'i':
    case 'p':
    case 'h':
    case 'v':
      return true;
    case 'c':
    case 'r':
    case 't':
      return scope == MacroScope::Explanation;  // RFC 7208 §7.1: exp text only
    default:
      return false;
  }
}

// Tokenizes s; the visitor gets each token. Returns an error on the first
// violation of RFC 7208 §7.1.
template <class Visit>
net::Status tokenize(std::string_view s, MacroScope scope, Visit&& visit) {
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) {
      visit(Token{std::move(literal), std::nullopt});
      literal.clear();
    }
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c != '%') {
      const auto u = static_cast<unsigned char>(c);
      const bool visible = u >= 0x21 && u <= 0x7e;
      const bool space_ok = scope == MacroScope::Explanation && c == ' ';
      if (!visible && !space_ok) {
        return make_error(Errc::BadInput, "invalid character " + hex_byte(u) + " in macro string");
      }
      literal += c;
      continue;
    }
    if (i + 1 == s.size()) return make_error(Errc::BadInput, "'%' at end of macro string");
    const char n = s[++i];
    if (n == '%' || n == '_' || n == '-') {
      // "%%", "%_", "%-" are macro-expands too (they may end a domain-spec).
      flush();
      MacroExpand m;
      m.letter = n;
      visit(Token{{}, m});
      continue;
    }
    if (n != '{') {
      return make_error(Errc::BadInput, std::string("'%' followed by '") + n +
                                            "' (RFC 7208 §7.1 allows %{, %%, %_, %-)");
    }
    const auto close = s.find('}', i + 1);
    if (close == std::string_view::npos) return make_error(Errc::BadInput, "unterminated %{");
    const std::string_view body = s.substr(i + 1, close - i - 1);
    i = close;
    if (body.empty() || !letter_allowed(body[0], scope)) {
      return make_error(Errc::BadInput, "invalid macro letter in %{" + std::string(body) + "}");
    }
    MacroExpand m;
    m.letter = body[0];
    std::size_t j = 1;
    std::size_t digits = 0;
    unsigned long parts = 0;
    while (j < body.size() && is_digit(body[j])) {
      parts = std::min<unsigned long>(parts * 10 + static_cast<unsigned>(body[j] - '0'), 100000);
      ++digits;
      ++j;
    }
    if (digits > 0 && parts == 0) {
      return make_error(Errc::BadInput, "zero part count in %{" + std::string(body) + "}");
    }
    m.parts = static_cast<unsigned>(std::min<unsigned long>(parts, kMaxParts));
    if (j < body.size() && lower(body[j]) == 'r') {
      m.reverse = true;
      ++j;
    }
    for (; j < body.size(); ++j) {
      if (kDelimiters.find(body[j]) == std::string_view::npos) {
        return make_error(Errc::BadInput, "invalid transformer in %{" + std::string(body) + "}");
      }
      m.delimiters += body[j];
    }
    flush();
    visit(Token{{}, m});
  }
  flush();
  return net::Ok{};
}

// URL-escapes every octet outside RFC 3986 "unreserved" (RFC 7208 §7.3).
std::string url_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
                            c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

std::string raw_value(char letter, const SpfMacroValues& v) {
  switch (lower(letter)) {
    case 's':
      return v.sender;
    case 'l':
      return v.local_part;
    case 'o':
      return v.sender_domain;
    case 'd':
      return v.domain;
    case 'i':
      return ip_macro_value(v.ip);
    case 'p':
      return v.validated_domain;
    case 'v':
      return v.ip.is_v4() ? "in-addr" : "ip6";
    case 'h':
      return v.helo;
    case 'c':
      return v.ip.to_string();  // RFC 5952 form for IPv6 (§7.3 "c")
    case 'r':
      return v.receiver;
    case 't':
      return std::to_string(v.timestamp);
  }
  return {};
}

// RFC 7208 §7.3: split on the delimiters (default "."), optionally reverse,
// keep the right-most N parts, join with ".".
std::string transform(const std::string& value, const MacroExpand& m) {
  if (!m.transformed()) return value;
  const std::string_view delims = m.delimiters.empty() ? std::string_view(".") : m.delimiters;
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= value.size(); ++i) {
    if (i == value.size() || delims.find(value[i]) != std::string_view::npos) {
      parts.emplace_back(value.data() + start, i - start);
      start = i + 1;
    }
  }
  if (m.reverse) std::reverse(parts.begin(), parts.end());
  std::size_t first = 0;
  if (m.parts != 0 && m.parts < parts.size()) first = parts.size() - m.parts;
  std::string out;
  for (std::size_t i = first; i < parts.size(); ++i) {
    if (i != first) out += '.';
    out += parts[i];
  }
  return out;
}

}  // namespace

net::Status check_macro_string(std::string_view s, MacroScope scope) {
  return tokenize(s, scope, [](Token&&) {});
}

bool ends_with_macro_expand(std::string_view s) {
  bool last_is_macro = false;
  const auto status =
      tokenize(s, MacroScope::DomainSpec, [&](Token&& t) { last_is_macro = t.macro.has_value(); });
  return status.ok() && last_is_macro;
}

bool uses_macro_letter(std::string_view s, char letter) {
  bool found = false;
  (void)tokenize(s, MacroScope::Explanation, [&](Token&& t) {
    if (t.macro && lower(t.macro->letter) == lower(letter)) found = true;
  });
  return found;
}

net::Result<std::string> expand_macro_string(std::string_view s, const SpfMacroValues& values,
                                             MacroScope scope) {
  std::string out;
  auto status = tokenize(s, scope, [&](Token&& t) {
    if (!t.macro) {
      out += t.literal;
      return;
    }
    const MacroExpand& m = *t.macro;
    switch (m.letter) {
      case '%':
        out += '%';
        return;
      case '_':
        out += ' ';
        return;
      case '-':
        out += "%20";
        return;
      default:
        break;
    }
    std::string value = transform(raw_value(m.letter, values), m);
    out += is_upper(m.letter) ? url_escape(value) : value;
  });
  if (!status.ok()) return std::move(status).error();
  return out;
}

std::string ip_macro_value(const boost::asio::ip::address& ip) {
  if (ip.is_v4()) return ip.to_string();
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char b : ip.to_v6().to_bytes()) {
    if (!out.empty()) out += '.';
    out += kHex[b >> 4];
    out += '.';
    out += kHex[b & 0xf];
  }
  return out;
}

}  // namespace stampd::auth
