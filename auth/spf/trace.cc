#include "auth/spf/trace.h"

namespace stampd::auth {

const char* to_string(SpfStep step) noexcept {
  switch (step) {
    case SpfStep::Query:
      return "query";
    case SpfStep::Record:
      return "record";
    case SpfStep::Term:
      return "term";
    case SpfStep::Result:
      return "result";
    case SpfStep::Note:
      return "note";
  }
  return "?";
}

std::string format_trace(const std::vector<SpfTraceEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    out.append(static_cast<std::size_t>(e.depth) * 2, ' ');
    out += to_string(e.step);
    out += ' ';
    switch (e.step) {
      case SpfStep::Query:
        out += e.subject;
        break;
      case SpfStep::Record:
        out += e.domain + ": \"" + e.subject + "\"";
        break;
      case SpfStep::Term:
        out += e.subject + " (" + e.domain + ")";
        break;
      case SpfStep::Result:
      case SpfStep::Note:
        out += e.domain.empty() ? e.subject : e.domain + ": " + e.subject;
        break;
    }
    if (!e.outcome.empty()) out += " -> " + e.outcome;
    out += '\n';
  }
  return out;
}

}  // namespace stampd::auth
