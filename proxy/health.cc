#include "proxy/health.h"

#include "proxy/metrics.h"

namespace stampd::proxy {

void Health::upstream_result(bool ok) {
  upstream_ = ok ? 1 : 0;
  metrics().upstream_up.Set(ok ? 1 : 0);
}

std::string Health::not_ready_reason() const {
  if (!listening_) return "listeners not up";
  if (draining_) return "draining";
  const int up = upstream_;
  if (up < 0) return "upstream not checked yet";
  if (up == 0) return "upstream unreachable at the last contact";
  return "";
}

Health& health() {
  static Health instance;
  return instance;
}

}  // namespace stampd::proxy
