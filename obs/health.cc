#include "obs/health.h"


namespace stampd::obs {

void Health::upstream_result(bool ok) {
  upstream_ = ok ? 1 : 0;
}

void Health::set_keys_problem(std::string problem) {
  std::lock_guard lock(mutex_);
  keys_problem_ = std::move(problem);
}

std::string Health::not_ready_reason() const {
  if (!listening_) return "listeners not up";
  if (draining_) return "draining";
  {
    std::lock_guard lock(mutex_);
    if (!keys_problem_.empty()) return "signing key unusable: " + keys_problem_;
  }
  const int up = upstream_;
  if (up < 0) return probing_ ? "upstream not checked yet" : "";
  if (up == 0) return "upstream unreachable at the last contact";
  return "";
}


}  // namespace stampd::obs
