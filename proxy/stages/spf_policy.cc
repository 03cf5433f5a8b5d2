#include "proxy/stages/spf_policy.h"

#include "auth/mail_address.h"

namespace stampd::proxy {

using auth::SpfVerdict;

const char* to_string(SpfMode mode) noexcept {
  switch (mode) {
    case SpfMode::Off:
      return "off";
    case SpfMode::Tag:
      return "tag";
    case SpfMode::Enforce:
      return "enforce";
  }
  return "?";
}

const char* to_string(SpfAction action) noexcept {
  switch (action) {
    case SpfAction::Accept:
      return "accept";
    case SpfAction::Tag:
      return "tag";
    case SpfAction::Reject:
      return "reject";
    case SpfAction::Tempfail:
      return "tempfail";
  }
  return "?";
}

std::optional<SpfMode> parse_spf_mode(std::string_view text) noexcept {
  if (text == "off") return SpfMode::Off;
  if (text == "tag") return SpfMode::Tag;
  if (text == "enforce") return SpfMode::Enforce;
  return std::nullopt;
}

std::optional<SpfAction> parse_spf_action(std::string_view text) noexcept {
  if (text == "accept") return SpfAction::Accept;
  if (text == "tag") return SpfAction::Tag;
  if (text == "reject") return SpfAction::Reject;
  if (text == "tempfail") return SpfAction::Tempfail;
  return std::nullopt;
}

namespace {

bool domain_matches(std::string_view pattern, std::string_view domain) {
  if (pattern.starts_with("*.")) {
    const auto parent = pattern.substr(1);  // ".example.com"
    return domain.size() > parent.size() && domain.ends_with(parent);
  }
  return pattern == domain;
}

// RFC 5322 §3.2.3 atext.
bool is_atext(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// key_value renders a Received-SPF value: a dot-atom as it is, anything
// else (an IPv6 client-ip, an address-literal HELO) as a quoted-string, as
// the key-value-pair grammar of RFC 7208 §9.1 requires.
std::string key_value(std::string_view v) {
  bool dot_atom =
      !v.empty() && v.front() != '.' && v.back() != '.' && v.find("..") == std::string_view::npos;
  for (char c : v) dot_atom = dot_atom && (c == '.' || is_atext(c));
  if (dot_atom) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

const SpfOverride* find_override(const SpfConfig& config, std::string_view sender_domain) {
  const std::string domain = auth::ascii_lower(sender_domain);
  for (const auto& o : config.overrides) {
    if (domain_matches(o.domain, domain)) return &o;
  }
  return nullptr;
}

}  // namespace

SpfAction spf_default_action(SpfMode mode, SpfVerdict verdict) {
  if (mode == SpfMode::Off) return SpfAction::Accept;
  if (mode == SpfMode::Tag) return SpfAction::Tag;
  switch (verdict) {
    case SpfVerdict::Fail:
    case SpfVerdict::PermError:  // RFC 7208 §8.7 / RFC 7372: 550 5.7.24
      return SpfAction::Reject;
    case SpfVerdict::TempError:  // RFC 7208 §8.6: 451 4.7.24
      return SpfAction::Tempfail;
    default:
      return SpfAction::Tag;
  }
}

SpfMode spf_mode_for(const SpfConfig& config, std::string_view sender_domain) {
  if (const auto* o = find_override(config, sender_domain); o && o->mode) return *o->mode;
  return config.mode;
}

SpfAction spf_decide(const SpfConfig& config, std::string_view sender_domain, SpfVerdict verdict) {
  const auto index = static_cast<std::size_t>(verdict);
  const auto* o = find_override(config, sender_domain);
  if (o && o->actions[index]) return *o->actions[index];
  const SpfMode mode = spf_mode_for(config, sender_domain);
  if (mode == SpfMode::Off) return SpfAction::Accept;
  // Global per-result actions refine the mode, unless an override changed the mode.
  if (!(o && o->mode) && config.actions[index]) return *config.actions[index];
  return spf_default_action(mode, verdict);
}

smtp::Reply spf_refusal(SpfAction action, const auth::SpfResult& result) {
  if (action == SpfAction::Tempfail) {
    return smtp::make_reply(451, "4.7.24",
                            "SPF temporary error for " + result.domain + ", try again later");
  }
  if (result.verdict == SpfVerdict::PermError) {
    return smtp::make_reply(550, "5.7.24", "SPF record of " + result.domain + " is broken");
  }
  std::string text = "SPF check failed";
  if (!result.explanation.empty()) text += ": " + result.explanation;
  return smtp::make_reply(550, "5.7.23", text);
}

std::string received_spf_field(const auth::SpfResult& result, const net::IpAddress& ip,
                               std::string_view helo, std::string_view receiver,
                               std::string_view identity) {
  const auto addr = net::unmap(ip).to_string();
  std::string comment = std::string(receiver) + ": ";
  switch (result.verdict) {
    case SpfVerdict::Pass:
      comment += "domain of " + result.sender + " designates " + addr + " as permitted sender";
      break;
    case SpfVerdict::Fail:
    case SpfVerdict::SoftFail:
      comment +=
          "domain of " + result.sender + " does not designate " + addr + " as permitted sender";
      break;
    case SpfVerdict::Neutral:
      comment += addr + " is neither permitted nor denied by domain of " + result.sender;
      break;
    default:
      comment +=
          result.problem.empty() ? std::string(auth::to_string(result.verdict)) : result.problem;
      break;
  }
  // Comments must not carry parentheses or line breaks of their own.
  for (char& c : comment) {
    if (c == '(' || c == ')' || c == '\r' || c == '\n') c = ' ';
  }
  std::string envelope_from;
  for (char c : result.sender) {
    if (c != '"' && c != '\\' && c != '\r' && c != '\n') envelope_from += c;
  }
  std::string field =
      "Received-SPF: " + std::string(auth::to_string(result.verdict)) + " (" + comment + ")\r\n";
  field += "\tclient-ip=" + key_value(addr) + "; envelope-from=\"" + envelope_from + "\";";
  std::string safe_helo;
  for (char c : helo) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == '[' || c == ']' || c == ':';
    if (ok) safe_helo += c;
  }
  if (!safe_helo.empty()) field += " helo=" + key_value(safe_helo) + ";";
  field +=
      "\r\n\treceiver=" + key_value(receiver) + "; identity=" + std::string(identity) + ";\r\n";
  return field;
}

}  // namespace stampd::proxy
