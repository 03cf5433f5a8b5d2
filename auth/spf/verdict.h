// spf_verdict.h: the seven results of an SPF check (RFC 7208 §2.6) and the
// order stampd ranks them in when several addresses are checked at once.
// Plain values; no DNS, no I/O.
#pragma once

#include <optional>
#include <string_view>

namespace stampd::auth {

// SpfVerdict is the result of check_host() (RFC 7208 §2.6).
enum class SpfVerdict { None, Neutral, Pass, Fail, SoftFail, TempError, PermError };

// to_string returns the RFC 7208 name: "none", "neutral", "pass", ...
const char* to_string(SpfVerdict verdict) noexcept;

// parse_spf_verdict reads an RFC 7208 result name, case-insensitively. The
// RFC 4408-era aliases "unknown" (permerror) and "error" (temperror) are
// accepted because older tools and test suites still print them.
std::optional<SpfVerdict> parse_spf_verdict(std::string_view name);

// spf_severity ranks verdicts for an admin asking "will receivers accept mail
// from this address?"; higher is worse:
//
//   pass < none < neutral < softfail < temperror < fail < permerror
//
// permerror is worst: the published record is broken, so no address passes
// anywhere until the domain fixes it. fail comes next: a definite, repeatable
// "not authorized" that receivers act on by rejecting. temperror ranks below
// fail because it says nothing about authorization (it is a DNS hiccup that
// a retry may clear) and must not hide a definite fail behind a retry; it
// ranks above softfail because a tempfailed message is delayed for sure. The
// rest follow how receivers treat them: softfail is "probably not", neutral
// is "no opinion" from a published record, none means no record at all
// (receivers treat it like neutral, RFC 7208 §8.1), pass is the goal.
int spf_severity(SpfVerdict verdict) noexcept;

// is_worse reports whether a ranks worse than b by spf_severity.
inline bool is_worse(SpfVerdict a, SpfVerdict b) noexcept {
  return spf_severity(a) > spf_severity(b);
}

}  // namespace stampd::auth
