// runtime.h: everything a session needs that comes from one configuration:
// the config itself, the upstream factory, the pipeline stages. Immutable and
// shared; a reload builds a new Runtime and swaps the pointer, so sessions in
// flight finish on the one they started with.
#pragma once

#include <memory>

#include "proxy/config.h"
#include "proxy/pipeline.h"
#include "proxy/upstream.h"

namespace stampd::proxy {

struct Runtime {
  std::shared_ptr<const Config> config;
  std::shared_ptr<const UpstreamFactory> upstreams;
  std::vector<std::shared_ptr<const StageFactory>> stage_factories;  // in pipeline order
};

// build_runtime loads everything config names (TLS, keys, ...); throws ConfigError.
std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const Config> config);

}  // namespace stampd::proxy
