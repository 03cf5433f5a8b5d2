#include "auth/dkim/base64.h"

#include <array>
#include <cstdint>

namespace stampd::auth {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::uint8_t kNotBase64 = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kNotBase64;
  for (int i = 0; i < 64; ++i)
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  return t;
}
constexpr auto kDecode = make_decode_table();

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    const std::uint32_t v = p[i] << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t acc = 0;
  int have = 0;     // sextets in acc
  int padding = 0;  // '=' seen; only whitespace and more '=' may follow
  for (const char c : text) {
    if (is_fws(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding != 0) return std::nullopt;
    const std::uint8_t v = kDecode[static_cast<unsigned char>(c)];
    if (v == kNotBase64) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    if (++have == 4) {
      out += static_cast<char>((acc >> 16) & 0xff);
      out += static_cast<char>((acc >> 8) & 0xff);
      out += static_cast<char>(acc & 0xff);
      acc = 0;
      have = 0;
    }
  }
  // A final group of 2 or 3 sextets carries 1 or 2 bytes; its padding, when
  // present, must complete the group to 4.
  if (have == 1) return std::nullopt;
  if (padding != 0 && (have < 2 || have + padding != 4)) return std::nullopt;
  if (have == 2) {
    out += static_cast<char>((acc >> 4) & 0xff);
  } else if (have == 3) {
    out += static_cast<char>((acc >> 10) & 0xff);
    out += static_cast<char>((acc >> 2) & 0xff);
  }
  return out;
}

}  // namespace stampd::auth
