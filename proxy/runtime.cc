#include "proxy/runtime.h"

namespace stampd::proxy {

std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const Config> config) {
  auto runtime = std::make_shared<Runtime>();
  runtime->config = config;
  runtime->upstreams = std::make_shared<UpstreamFactory>(config);
  // Pipeline order: SPF policy (at MAIL FROM), then DKIM signing (at end of data).
  return runtime;
}

}  // namespace stampd::proxy
