// org_domain.h: the organizational domain (RFC 7489 §3.2) and identifier
// alignment (§3.1). Pure: a short built-in list of multi-label public
// suffixes stands in for the Public Suffix List (see organizational_domain).
#pragma once

#include <string>
#include <string_view>

namespace stampd::auth {

// organizational_domain returns the registered domain of name, lower-cased,
// without a trailing dot: its last two labels, or its last three when the
// last two are a public suffix of the form SLD.CC ("co.uk", "com.au",
// "co.jp": a two-letter country code under one of a fixed set of generic
// second-level labels). This is a simplification of RFC 7489 §3.2's use of
// the Public Suffix List: it is right for DNS names under generic TLDs and
// the common country-code SLDs, and wrong for private suffixes such as
// "github.io" (treated as an organization), which makes relaxed alignment
// looser there, never stricter.
std::string organizational_domain(std::string_view name);

// AlignMode is adkim= / aspf=: strict needs the same domain, relaxed the
// same organizational domain.
enum class AlignMode { Relaxed, Strict };
const char* to_string(AlignMode mode) noexcept;

// aligned reports whether an authenticated domain (DKIM d=, SPF MAIL FROM
// domain) aligns with the From domain under mode (RFC 7489 §3.1.1, §3.1.2).
bool aligned(std::string_view authenticated, std::string_view from_domain, AlignMode mode);

}  // namespace stampd::auth
