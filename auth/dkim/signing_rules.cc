#include "auth/dkim/signing_rules.h"

namespace stampd::auth {
namespace {

// glob_match: '*' matches any run (also empty); linear backtracking on the
// last star, so no pattern is exponential.
bool glob_match(std::string_view p, std::string_view s) {
  std::size_t pi = 0;
  std::size_t si = 0;
  std::size_t star = std::string_view::npos;
  std::size_t mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (pi < p.size() && p[pi] == s[si]) {
      ++pi;
      ++si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

bool plain_domain(std::string_view d) {
  if (d.empty() || d.front() == '.' || d.back() == '.' || d.find("..") != std::string_view::npos)
    return false;
  for (const char c : d) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || c == '*' || c == '@' || c == '<' || c == '>' || c == ',' || c == ';')
      return false;
  }
  return true;
}

}  // namespace

std::optional<OnError> parse_on_error(std::string_view text) noexcept {
  if (text == "fail-closed") return OnError::FailClosed;
  if (text == "send-unsigned") return OnError::SendUnsigned;
  return std::nullopt;
}

const char* to_string(OnError on_error) noexcept {
  return on_error == OnError::FailClosed ? "fail-closed" : "send-unsigned";
}

FromPattern::FromPattern(std::string_view text) : text_(text), glob_(ascii_lower(text)) {}

FromPattern FromPattern::glob(std::string_view text) { return FromPattern(text); }

net::Result<FromPattern> FromPattern::parse(std::string_view text) {
  if (text == "*" || text == "*@*") return FromPattern("*");
  const auto at = text.rfind('@');
  auto bad = [&](const std::string& why) {
    return net::make_error(net::Errc::BadInput,
                           "from pattern \"" + std::string(text) + "\": " + why);
  };
  if (at == std::string_view::npos) return bad("expected user@domain, *@domain, *@*.domain or *");
  const std::string_view local = text.substr(0, at);
  std::string_view domain = text.substr(at + 1);
  if (local.empty()) return bad("empty local part");
  if (local != "*" && local.find('*') != std::string_view::npos) {
    return bad("'*' is allowed only as the whole local part");
  }
  if (domain.substr(0, 2) == "*.") domain.remove_prefix(2);
  if (!plain_domain(domain)) return bad("invalid domain \"" + std::string(domain) + "\"");
  return FromPattern(text);
}

bool FromPattern::matches(const MailAddress& address) const {
  return glob_match(glob_, ascii_lower(address.local) + "@" + ascii_lower(address.domain));
}

const SigningRule* match_rule(std::span<const SigningRule> rules, const MailAddress& from) {
  for (const SigningRule& rule : rules) {
    if (rule.from.matches(from)) return &rule;
  }
  return nullptr;
}

}  // namespace stampd::auth
