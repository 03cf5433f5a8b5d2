// spf_trace.h: the record of one SPF evaluation: every DNS query with its
// answer, every record and term tried, and what decided, so `stampd spf`
// can show an admin why. Values only; printing is plain text.
#pragma once

#include <string>
#include <vector>

namespace stampd::auth {

// SpfStep says what a trace entry records.
enum class SpfStep {
  Query,   // a DNS query: subject "TXT example.com", outcome the answer
  Record,  // the SPF record selected for domain: subject is its text
  Term,    // a term evaluated: subject as written, outcome "match: fail" etc.
  Result,  // the result of check_host() for domain (one per include/redirect level)
  Note,    // anything else worth showing (limits, skipped names, explanation)
};

const char* to_string(SpfStep step) noexcept;

// SpfTraceEntry is one line of the trace.
struct SpfTraceEntry {
  SpfStep step = SpfStep::Note;
  int depth = 0;       // 0 for the checked domain, +1 per include/redirect level
  std::string domain;  // the <domain> whose record was being evaluated
  std::string subject;
  std::string outcome;
};

// format_trace renders entries one per line, indented two spaces per depth:
//   query TXT example.com -> ok: "v=spf1 ip4:192.0.2.0/24 -all"
//   term ip4:192.0.2.0/24 (example.com) -> no match
std::string format_trace(const std::vector<SpfTraceEntry>& entries);

}  // namespace stampd::auth
