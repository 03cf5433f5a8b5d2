#include "auth/spf/result.h"

namespace stampd::auth {

std::string summarize(const SpfResult& result) {
  std::string out = to_string(result.verdict);
  if (!result.decided_by.empty()) {
    out += " (" + result.decided_by;
    if (!result.decided_in.empty()) out += " in " + result.decided_in;
    out += ")";
  }
  if (!result.problem.empty()) out += ": " + result.problem;
  return out;
}

}  // namespace stampd::auth
