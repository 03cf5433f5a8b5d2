// spf_options.h: the knobs of an SPF evaluation. Defaults follow RFC 7208;
// the proxy fills these from the [spf] config section.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace stampd::auth {

// SpfOptions configures check_host() and friends.
struct SpfOptions {
  // A user-declared constructor keeps this from being an aggregate: g++ 12
  // copies an aggregate with default member initializers bitwise when a
  // prvalue of it is passed by value to a coroutine (e.g. the "= {}" default
  // argument below), leaving strings that point into the caller's frame.
  SpfOptions() = default;

  // default_explanation is the explain-string (macros allowed, RFC 7208 §6.2)
  // used for "fail" when the domain publishes no usable exp=.
  std::string default_explanation = "%{d} does not authorize %{c} to send mail as %{s}";
  // receiver is %{r}, the host doing the check (RFC 7208 §7.3).
  std::string receiver = "unknown";
  // timestamp is %{t}; unset means the current time.
  std::optional<std::int64_t> timestamp;
  // fetch_explanation looks up exp= on "fail"; off saves one query.
  bool fetch_explanation = true;
  // record_trace keeps the per-query trace in SpfResult (cheap; the CLI needs it).
  bool record_trace = true;

  // RFC 7208 §4.6.4 processing limits.
  int max_dns_terms = 10;    // include, a, mx, ptr, exists, redirect
  int max_void_lookups = 2;  // answers with NXDOMAIN or no records
  int max_mx_names = 10;     // per mx term; more is permerror
  int max_ptr_names = 10;    // per ptr term or %{p}; the rest are ignored
  // time_limit bounds one whole evaluation (§4.6.4: SHOULD, at least 20 s);
  // exceeding it gives temperror. Each query has its own resolver timeout.
  std::chrono::milliseconds time_limit{20000};
};

}  // namespace stampd::auth
