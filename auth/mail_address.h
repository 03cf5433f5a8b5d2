// mail_address.h: splits an address (local-part@domain) for SPF and for DKIM
// signing rules. Pure string work; no DNS, no IDNA conversion.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stampd::auth {

struct MailAddress {
  std::string local;   // as written, case kept (RFC 5321 §2.4: local-part is case-sensitive)
  std::string domain;  // lower-cased ASCII, no trailing dot
};

// split_address splits "local@domain" at the last '@'; nullopt when either
// side is empty. Angle brackets must already be stripped.
std::optional<MailAddress> split_address(std::string_view address);

// ascii_lower returns s with A-Z mapped to a-z and every other byte kept.
std::string ascii_lower(std::string_view s);

}  // namespace stampd::auth
