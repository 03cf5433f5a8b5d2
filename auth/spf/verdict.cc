#include "auth/spf/verdict.h"

#include "auth/mail_address.h"

namespace stampd::auth {

const char* to_string(SpfVerdict verdict) noexcept {
  switch (verdict) {
    case SpfVerdict::None:
      return "none";
    case SpfVerdict::Neutral:
      return "neutral";
    case SpfVerdict::Pass:
      return "pass";
    case SpfVerdict::Fail:
      return "fail";
    case SpfVerdict::SoftFail:
      return "softfail";
    case SpfVerdict::TempError:
      return "temperror";
    case SpfVerdict::PermError:
      return "permerror";
  }
  return "unknown";
}

std::optional<SpfVerdict> parse_spf_verdict(std::string_view name) {
  const std::string lower = ascii_lower(name);
  if (lower == "none") return SpfVerdict::None;
  if (lower == "neutral") return SpfVerdict::Neutral;
  if (lower == "pass") return SpfVerdict::Pass;
  if (lower == "fail") return SpfVerdict::Fail;
  if (lower == "softfail") return SpfVerdict::SoftFail;
  if (lower == "temperror" || lower == "error") return SpfVerdict::TempError;
  if (lower == "permerror" || lower == "unknown") return SpfVerdict::PermError;
  return std::nullopt;
}

int spf_severity(SpfVerdict verdict) noexcept {
  switch (verdict) {
    case SpfVerdict::Pass:
      return 0;
    case SpfVerdict::None:
      return 1;
    case SpfVerdict::Neutral:
      return 2;
    case SpfVerdict::SoftFail:
      return 3;
    case SpfVerdict::TempError:
      return 4;
    case SpfVerdict::Fail:
      return 5;
    case SpfVerdict::PermError:
      return 6;
  }
  return 6;
}

}  // namespace stampd::auth
