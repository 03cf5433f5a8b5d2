// runtime.h: everything a session needs that comes from one configuration:
// the config itself, the upstream factory, the pipeline stages. Immutable and
// shared; a reload builds a new Runtime and swaps the pointer, so sessions in
// flight finish on the one they started with.
#pragma once

#include <memory>

#include "auth/dkim_keyring.h"
#include "proxy/config.h"
#include "proxy/pipeline.h"
#include "proxy/upstream.h"

namespace stampd::proxy {

struct Runtime {
  std::shared_ptr<const Config> config;
  std::shared_ptr<const UpstreamFactory> upstreams;
  std::shared_ptr<const auth::SigningKeys> signing_keys;             // never null; maybe empty
  std::vector<std::shared_ptr<const StageFactory>> stage_factories;  // in pipeline order
};

// KeyPolicy says what a key that cannot be loaded means.
enum class KeyPolicy {
  Strict,   // an error: check-config and reload refuse the config
  Lenient,  // start anyway; rules needing it fail closed (or send unsigned)
};

// build_runtime loads everything config names (TLS, keys, ...); throws ConfigError.
std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const Config> config,
                                             KeyPolicy key_policy = KeyPolicy::Strict);

// broken_keys lists "name: why" for each configured key that could not be loaded.
std::vector<std::string> broken_keys(const Runtime& runtime);

}  // namespace stampd::proxy
