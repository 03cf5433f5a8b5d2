// spf_policy.h: what stampd does with an SPF result ([spf] in the config):
// the action per result (accept, tag, reject, tempfail) with the defaults of
// each mode and per-domain overrides, the SMTP reply for a refusal, and the
// Received-SPF field for tagging (RFC 7208 §9.1). Pure: no DNS, no I/O.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "auth/spf/result.h"
#include "auth/spf/verdict.h"
#include "net/cidr.h"
#include "smtp/reply.h"

namespace stampd::proxy {

enum class SpfMode { Off, Tag, Enforce };
enum class SpfIpSource { Client, Egress };
enum class SpfAction { Accept, Tag, Reject, Tempfail };

const char* to_string(SpfMode mode) noexcept;
const char* to_string(SpfAction action) noexcept;
std::optional<SpfMode> parse_spf_mode(std::string_view text) noexcept;
std::optional<SpfAction> parse_spf_action(std::string_view text) noexcept;

// SpfActions holds one action per result, indexed by auth::SpfVerdict.
using SpfActions = std::array<std::optional<SpfAction>, 7>;

// SpfOverride changes the mode and/or actions for one sender domain
// ("example.com") or its subdomains ("*.example.com").
struct SpfOverride {
  std::string domain;
  std::optional<SpfMode> mode;
  SpfActions actions{};
  std::string origin;  // "file:line"
};

struct SpfConfig {
  SpfMode mode = SpfMode::Off;
  SpfIpSource ip = SpfIpSource::Client;
  std::vector<net::IpAddress> egress_ips;
  std::vector<std::string> egress_ips_text;
  bool helo_check = false;  // also check the HELO identity (RFC 7208 §2.3)
  SpfActions actions{};     // unset entries take the mode's default
  std::vector<SpfOverride> overrides;
};

// SpfDecision is the policy's answer for one sender domain and result.
struct SpfDecision {
  SpfMode mode = SpfMode::Off;  // Off: do not evaluate at all
  SpfAction action = SpfAction::Accept;
};

// spf_mode_for returns the mode that applies to sender_domain.
SpfMode spf_mode_for(const SpfConfig& config, std::string_view sender_domain);
// spf_decide picks the action for a result under config for sender_domain.
SpfAction spf_decide(const SpfConfig& config, std::string_view sender_domain,
                     auth::SpfVerdict verdict);
// spf_default_action is the mode's default for a result.
SpfAction spf_default_action(SpfMode mode, auth::SpfVerdict verdict);
// spf_refusal is the reply for Reject or Tempfail (RFC 7372 codes).
smtp::Reply spf_refusal(SpfAction action, const auth::SpfResult& result);
// received_spf_field renders the Received-SPF header field, CRLF-terminated.
std::string received_spf_field(const auth::SpfResult& result, const net::IpAddress& ip,
                               std::string_view helo, std::string_view receiver,
                               std::string_view identity);

}  // namespace stampd::proxy
