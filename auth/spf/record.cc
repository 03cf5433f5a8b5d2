#include "auth/spf/record.h"

#include <boost/system/error_code.hpp>

#include "auth/dns_name.h"
#include "auth/mail_address.h"
#include "auth/spf/macro.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

constexpr std::string_view kVersion = "v=spf1";

bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_alnum(char c) noexcept { return is_alpha(c) || is_digit(c); }

net::Error syntax(std::string_view term, std::string_view why) {
  // Built by appending: g++ 12 -O3 warns falsely (-Wrestrict) on "lit" + string.
  std::string detail = "\"";
  detail.append(term).append("\": ").append(why);
  return make_error(Errc::BadInput, std::move(detail));
}

// RFC 7208 §4.6.1: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
bool is_modifier_name(std::string_view s) noexcept {
  if (s.empty() || !is_alpha(s[0])) return false;
  for (char c : s) {
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// RFC 7208 §7.1: toplabel = ( *alphanum ALPHA *alphanum ) /
//                           ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool is_toplabel(std::string_view s) noexcept {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  bool alpha = false;
  bool dash = false;
  for (char c : s) {
    if (c == '-') {
      dash = true;
    } else if (is_alpha(c)) {
      alpha = true;
    } else if (!is_digit(c)) {
      return false;
    }
  }
  return alpha || dash;
}

// RFC 7208 §7.1: domain-spec = macro-string domain-end,
// domain-end = ( "." toplabel [ "." ] ) / macro-expand.
net::Status check_domain_spec(std::string_view term, std::string_view spec) {
  if (spec.empty()) return syntax(term, "empty domain-spec");
  if (auto s = check_macro_string(spec, MacroScope::DomainSpec); !s.ok()) {
    return syntax(term, s.error().detail);
  }
  if (ends_with_macro_expand(spec)) return net::Ok{};
  const std::string_view body = strip_trailing_dot(spec);
  // "%{d}." is accepted as well: the trailing dot of a fully-qualified name.
  if (body.size() < spec.size() && ends_with_macro_expand(body)) return net::Ok{};
  const auto dot = body.rfind('.');
  if (dot == std::string_view::npos) {
    return syntax(term, "domain-spec must end in a top label like \".com\" or in a macro");
  }
  if (!is_toplabel(body.substr(dot + 1))) {
    return syntax(term, "invalid top label \"" + std::string(body.substr(dot + 1)) + "\"");
  }
  return net::Ok{};
}

// Parses a CIDR length: "0" or digits without a leading zero, at most max
// (RFC 7208 §5.6 ip4-cidr-length and ip6-cidr-length).
std::optional<int> parse_cidr_length(std::string_view digits, int max) {
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  int v = 0;
  for (char c : digits) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

bool all_digits(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

// Splits a trailing dual-cidr-length ("/24", "//64", "/24//64") off arg and
// stores it in m (RFC 7208 §5.3, §5.4).
net::Status take_dual_cidr(std::string_view term, std::string_view& arg, SpfMechanism& m) {
  auto slash = arg.rfind('/');
  if (slash == std::string_view::npos || !all_digits(arg.substr(slash + 1))) return net::Ok{};
  if (slash > 0 && arg[slash - 1] == '/') {
    const auto v6 = parse_cidr_length(arg.substr(slash + 1), 128);
    if (!v6) return syntax(term, "invalid IPv6 CIDR length");
    m.cidr6 = *v6;
    arg = arg.substr(0, slash - 1);
    slash = arg.rfind('/');
    if (slash == std::string_view::npos || !all_digits(arg.substr(slash + 1))) return net::Ok{};
  }
  const auto v4 = parse_cidr_length(arg.substr(slash + 1), 32);
  if (!v4) return syntax(term, "invalid IPv4 CIDR length");
  m.cidr4 = *v4;
  arg = arg.substr(0, slash);
  return net::Ok{};
}

net::Status parse_ip_mechanism(std::string_view term, std::string_view rest, SpfMechanism& m) {
  const bool v4 = m.kind == SpfMechanismKind::Ip4;
  if (rest.empty() || rest[0] != ':') return syntax(term, "missing address");
  std::string_view value = rest.substr(1);
  std::string_view length;
  if (const auto slash = value.find('/'); slash != std::string_view::npos) {
    length = value.substr(slash + 1);
    value = value.substr(0, slash);
    const auto cidr = parse_cidr_length(length, v4 ? 32 : 128);
    if (!cidr) return syntax(term, "invalid CIDR length");
    (v4 ? m.cidr4 : m.cidr6) = *cidr;
  }
  if (v4) {
    const auto a = parse_ip4_network(value);
    if (!a) return syntax(term, "invalid IPv4 address");
    m.network = *a;
  } else {
    const auto a = parse_ip6_network(value);
    if (!a) return syntax(term, "invalid IPv6 address");
    m.network = *a;
  }
  return net::Ok{};
}

net::Result<SpfMechanism> parse_mechanism(std::string_view term) {
  SpfMechanism m;
  m.text = std::string(term);
  std::string_view body = term;
  switch (body.front()) {
    case '+':
      m.qualifier = SpfQualifier::Pass;
      body.remove_prefix(1);
      break;
    case '-':
      m.qualifier = SpfQualifier::Fail;
      body.remove_prefix(1);
      break;
    case '~':
      m.qualifier = SpfQualifier::SoftFail;
      body.remove_prefix(1);
      break;
    case '?':
      m.qualifier = SpfQualifier::Neutral;
      body.remove_prefix(1);
      break;
    default:
      break;
  }
  const auto name_end = body.find_first_of(":/");
  const std::string name = ascii_lower(body.substr(0, name_end));
  const std::string_view rest =
      name_end == std::string_view::npos ? std::string_view{} : body.substr(name_end);

  if (name == "all") {
    m.kind = SpfMechanismKind::All;
    if (!rest.empty()) return syntax(term, "\"all\" takes no argument");
    return m;
  }
  if (name == "include" || name == "exists") {
    m.kind = name == "include" ? SpfMechanismKind::Include : SpfMechanismKind::Exists;
    if (rest.empty() || rest[0] != ':') return syntax(term, "needs \":domain\"");
    m.domain_spec = std::string(rest.substr(1));
    if (auto s = check_domain_spec(term, m.domain_spec); !s.ok()) return std::move(s).error();
    return m;
  }
  if (name == "a" || name == "mx" || name == "ptr") {
    m.kind = name == "a" ? SpfMechanismKind::A
                         : (name == "mx" ? SpfMechanismKind::Mx : SpfMechanismKind::Ptr);
    std::string_view arg = rest;
    const bool has_domain = !arg.empty() && arg[0] == ':';
    if (has_domain) arg.remove_prefix(1);
    if (m.kind != SpfMechanismKind::Ptr) {
      if (auto s = take_dual_cidr(term, arg, m); !s.ok()) return std::move(s).error();
    }
    if (has_domain) {
      m.domain_spec = std::string(arg);
      if (auto s = check_domain_spec(term, m.domain_spec); !s.ok()) return std::move(s).error();
    } else if (!arg.empty()) {
      return syntax(term, m.kind == SpfMechanismKind::Ptr ? "\"ptr\" takes no CIDR length"
                                                          : "invalid CIDR length");
    }
    return m;
  }
  if (name == "ip4" || name == "ip6") {
    m.kind = name == "ip4" ? SpfMechanismKind::Ip4 : SpfMechanismKind::Ip6;
    if (auto s = parse_ip_mechanism(term, rest, m); !s.ok()) return std::move(s).error();
    return m;
  }
  return syntax(term, "unknown mechanism");
}

}  // namespace

SpfVerdict verdict_of(SpfQualifier q) noexcept {
  switch (q) {
    case SpfQualifier::Pass:
      return SpfVerdict::Pass;
    case SpfQualifier::Fail:
      return SpfVerdict::Fail;
    case SpfQualifier::SoftFail:
      return SpfVerdict::SoftFail;
    case SpfQualifier::Neutral:
      return SpfVerdict::Neutral;
  }
  return SpfVerdict::Neutral;
}

const char* to_string(SpfMechanismKind kind) noexcept {
  switch (kind) {
    case SpfMechanismKind::All:
      return "all";
    case SpfMechanismKind::Include:
      return "include";
    case SpfMechanismKind::A:
      return "a";
    case SpfMechanismKind::Mx:
      return "mx";
    case SpfMechanismKind::Ptr:
      return "ptr";
    case SpfMechanismKind::Ip4:
      return "ip4";
    case SpfMechanismKind::Ip6:
      return "ip6";
    case SpfMechanismKind::Exists:
      return "exists";
  }
  return "?";
}

bool SpfMechanism::queries_dns() const noexcept {
  switch (kind) {
    case SpfMechanismKind::Include:
    case SpfMechanismKind::A:
    case SpfMechanismKind::Mx:
    case SpfMechanismKind::Ptr:
    case SpfMechanismKind::Exists:
      return true;
    default:
      return false;
  }
}

bool SpfRecord::has_all() const noexcept {
  for (const auto& m : mechanisms) {
    if (m.kind == SpfMechanismKind::All) return true;
  }
  return false;
}

bool is_spf_version(std::string_view txt) noexcept {
  if (txt.size() < kVersion.size()) return false;
  if (!equals_ignore_case(txt.substr(0, kVersion.size()), kVersion)) return false;
  return txt.size() == kVersion.size() || txt[kVersion.size()] == ' ';
}

net::Result<SpfRecord> parse_spf_record(std::string_view text) {
  if (!is_spf_version(text)) return make_error(Errc::BadInput, "not an SPF version 1 record");
  for (unsigned char c : text) {
    // RFC 7208 §3.1: records are 7-bit ASCII. (Control characters are caught
    // per term below: terms are separated by spaces only, §4.6.1.)
    if (c >= 0x80) return make_error(Errc::BadInput, "non-ASCII byte in record");
  }
  SpfRecord record;
  record.text = std::string(text);
  std::string_view rest = text.substr(kVersion.size());
  while (!rest.empty()) {
    const auto start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) break;  // trailing spaces are allowed (§4.5)
    rest.remove_prefix(start);
    const auto end = rest.find(' ');
    const std::string_view term = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end);

    // A modifier is name "=" ...; anything else must be a mechanism
    // (RFC 7208 §4.6.1, and §12 "A" for the name grammar).
    const auto eq = term.find('=');
    if (eq != std::string_view::npos && is_modifier_name(term.substr(0, eq))) {
      const std::string name = ascii_lower(term.substr(0, eq));
      const std::string_view value = term.substr(eq + 1);
      if (name == "redirect" || name == "exp") {
        auto& slot = name == "redirect" ? record.redirect : record.exp;
        // RFC 7208 §6: each MUST NOT appear more than once.
        if (slot) return syntax(term, "\"" + name + "=\" appears twice");
        if (auto s = check_domain_spec(term, value); !s.ok()) return std::move(s).error();
        slot = std::string(value);
      } else {
        if (auto s = check_macro_string(value, MacroScope::DomainSpec); !s.ok()) {
          return syntax(term, s.error().detail);
        }
        record.unknown_modifiers.push_back({name, std::string(value)});
      }
      continue;
    }
    auto m = parse_mechanism(term);
    if (!m.ok()) return std::move(m).error();
    record.mechanisms.push_back(std::move(m).value());
  }
  return record;
}

std::optional<boost::asio::ip::address_v4> parse_ip4_network(std::string_view s) {
  boost::asio::ip::address_v4::bytes_type bytes{};
  for (int i = 0; i < 4; ++i) {
    const auto dot = s.find('.');
    const std::string_view part = i < 3 ? s.substr(0, dot) : s;
    if (i < 3 && dot == std::string_view::npos) return std::nullopt;
    if (part.empty() || part.size() > 3 || !all_digits(part)) return std::nullopt;
    if (part.size() > 1 && part[0] == '0') return std::nullopt;  // qnum: no leading zeros
    int v = 0;
    for (char c : part) v = v * 10 + (c - '0');
    if (v > 255) return std::nullopt;
    bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(v);
    if (i < 3) s.remove_prefix(dot + 1);
  }
  return boost::asio::ip::address_v4(bytes);
}

std::optional<boost::asio::ip::address_v6> parse_ip6_network(std::string_view s) {
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    // Hex, colons and the dots of an embedded IPv4 part; no zone index.
    const bool ok =
        is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    if (!ok) return std::nullopt;
  }
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address_v6(std::string(s), ec);
  if (ec) return std::nullopt;
  return a;
}

bool in_network(const boost::asio::ip::address& ip, const boost::asio::ip::address& network,
                int prefix_length) noexcept {
  if (ip.is_v4() != network.is_v4()) return false;
  if (ip.is_v4()) {
    if (prefix_length <= 0) return true;
    const std::uint32_t mask = prefix_length >= 32 ? 0xffffffffu : ~(0xffffffffu >> prefix_length);
    return (ip.to_v4().to_uint() & mask) == (network.to_v4().to_uint() & mask);
  }
  const auto a = ip.to_v6().to_bytes();
  const auto b = network.to_v6().to_bytes();
  int bits = prefix_length;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const unsigned mask = bits >= 8 ? 0xffu : (0xffu << (8 - bits)) & 0xffu;
    if ((a[i] & mask) != (b[i] & mask)) return false;
  }
  return true;
}

}  // namespace stampd::auth
