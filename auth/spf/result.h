// spf_result.h: what an SPF evaluation returns: the verdict, the
// explanation for "fail", why errors happened, which term decided, and the
// lookup trace. Values only.
#pragma once

#include <string>
#include <vector>

#include "auth/spf/trace.h"
#include "auth/spf/verdict.h"

namespace stampd::auth {

// SpfResult is the outcome of check_host() (RFC 7208 §4) for one address.
struct SpfResult {
  SpfVerdict verdict = SpfVerdict::None;
  std::string domain;       // the <domain> checked (HELO name for a null sender)
  std::string sender;       // the <sender> used, e.g. "postmaster@helo.example"
  std::string record;       // the SPF record <domain> publishes, if one was found
  std::string explanation;  // for "fail" only (RFC 7208 §6.2): exp= text or the default
  std::string problem;      // why, for none/temperror/permerror (for logs and the CLI)
  std::string decided_by;   // the term that decided ("-all", "include:..."), if any
  std::string decided_in;   // the domain whose record held that term
  int dns_terms = 0;        // DNS-querying terms evaluated (limit 10)
  int void_lookups = 0;     // void lookups seen (limit 2)
  int dns_queries = 0;      // queries sent to the resolver, all kinds
  std::vector<SpfTraceEntry> trace;
};

// summarize returns one line for logs and the CLI, e.g.
// "softfail (~all in example.com)" or "permerror: too many DNS lookups".
std::string summarize(const SpfResult& result);

}  // namespace stampd::auth
