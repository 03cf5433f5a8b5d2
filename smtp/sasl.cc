#include "smtp/sasl.h"

#include <array>
#include <cstdint>

namespace stampd::smtp {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
  const auto pos = kAlphabet.find(c);
  return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

Reply cancelled() { return make_reply(501, "5.7.0", "Authentication cancelled"); }
Reply bad_base64() { return make_reply(501, "5.5.2", "Cannot decode response"); }

SaslStep failed(Reply r) { return SaslStep{SaslStep::Kind::Failed, std::move(r), {}}; }
SaslStep challenge(std::string_view text) {
  // RFC 4954 §4: the challenge text is base64; "334 " alone is an empty one.
  return SaslStep{SaslStep::Kind::Challenge, make_reply(334, "", sasl_base64_encode(text)), {}};
}

}  // namespace

std::optional<std::string> sasl_base64_decode(std::string_view text) {
  if (text == "=") return std::string();
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    std::array<int, 4> v{};
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        ++pad;
        v[k] = 0;
        continue;
      }
      if (pad > 0) return std::nullopt;  // data after padding
      v[k] = value_of(c);
      if (v[k] < 0) return std::nullopt;
    }
    const std::uint32_t n =
        (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
        (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string sasl_base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16;
    if (i + 1 < bytes.size())
      n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

const char* mechanism_name(SaslExchange::Mechanism mechanism) {
  return mechanism == SaslExchange::Mechanism::Plain ? "PLAIN" : "LOGIN";
}

SaslStep SaslExchange::start(std::string_view argument, std::optional<SaslExchange>& exchange) {
  exchange.reset();
  const auto space = argument.find(' ');
  const std::string_view name = argument.substr(0, space);
  std::optional<std::string_view> initial;
  if (space != std::string_view::npos) initial = argument.substr(space + 1);
  if (name.empty()) return failed(make_reply(501, "5.5.4", "Syntax: AUTH mechanism"));
  std::string upper_name;
  for (char c : name) upper_name += ascii_upper(c);
  Mechanism mechanism{};
  if (upper_name == "PLAIN") {
    mechanism = Mechanism::Plain;
  } else if (upper_name == "LOGIN") {
    mechanism = Mechanism::Login;
  } else {
    return failed(make_reply(504, "5.5.4", "Unrecognized authentication type"));
  }
  if (initial && (initial->empty() || initial->find(' ') != std::string_view::npos)) {
    return failed(make_reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"));
  }
  SaslExchange ex(mechanism);
  if (!initial) {
    exchange = ex;
    // PLAIN: an empty challenge asks for the whole response (RFC 4616 §2);
    // LOGIN: the de-facto "Username:" prompt (draft-murchison-sasl-login).
    return challenge(mechanism == Mechanism::Plain ? "" : "Username:");
  }
  // RFC 4954 §4: "*" as an initial response is not a cancel; it is bad base64.
  auto decoded = sasl_base64_decode(*initial);
  if (!decoded) return failed(bad_base64());
  if (mechanism == Mechanism::Plain) return ex.plain_response(*decoded);
  ex.username_ = std::move(*decoded);
  ex.have_username_ = true;
  exchange = ex;
  return challenge("Password:");
}

SaslStep SaslExchange::feed(std::string_view line) {
  if (line == "*") return failed(cancelled());  // RFC 4954 §4
  auto decoded = sasl_base64_decode(line);
  if (!decoded) return failed(bad_base64());
  if (mechanism_ == Mechanism::Plain) return plain_response(*decoded);
  if (!have_username_) {
    username_ = std::move(*decoded);
    have_username_ = true;
    return challenge("Password:");
  }
  return SaslStep{SaslStep::Kind::Done, {}, {std::move(username_), std::move(*decoded)}};
}

SaslStep SaslExchange::plain_response(std::string_view decoded) {
  // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
  const auto first = decoded.find('\0');
  const auto second = first == std::string_view::npos ? first : decoded.find('\0', first + 1);
  if (second == std::string_view::npos ||
      decoded.find('\0', second + 1) != std::string_view::npos) {
    return failed(make_reply(501, "5.5.2", "Malformed PLAIN response"));
  }
  const auto authzid = decoded.substr(0, first);
  const auto authcid = decoded.substr(first + 1, second - first - 1);
  // Acting for another user is not offered: an authzid must name the user itself.
  if (!authzid.empty() && authzid != authcid) {
    return failed(make_reply(535, "5.7.8", "Authentication credentials invalid"));
  }
  return SaslStep{
      SaslStep::Kind::Done, {}, {std::string(authcid), std::string(decoded.substr(second + 1))}};
}

}  // namespace stampd::smtp
