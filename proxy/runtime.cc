#include "proxy/runtime.h"

#include "proxy/dkim_stage.h"

namespace stampd::proxy {

std::shared_ptr<const Runtime> build_runtime(std::shared_ptr<const Config> config,
                                             KeyPolicy key_policy) {
  auto runtime = std::make_shared<Runtime>();
  runtime->config = config;
  runtime->upstreams = std::make_shared<UpstreamFactory>(config);

  auth::KeyringOptions options;
  options.allow_group_readable_keys = config->dkim.allow_group_readable_keys;
  options.keep_broken_keys = key_policy == KeyPolicy::Lenient;
  auto keys = auth::SigningKeys::build(config->dkim.keys, config->dkim.rules, options);
  if (!keys)
    throw ConfigError(keys.error().detail.empty() ? keys.error().message() : keys.error().detail);
  runtime->signing_keys = *keys;

  // Pipeline order: SPF policy (at MAIL FROM), then DKIM signing (at end of data).
  if (!config->dkim.rules.empty()) {
    runtime->stage_factories.push_back(
        std::make_shared<DkimStageFactory>(runtime->signing_keys, dkim_settings(config->dkim)));
  }
  return runtime;
}

std::vector<std::string> broken_keys(const Runtime& runtime) {
  std::vector<std::string> out;
  for (const auto& key : runtime.signing_keys->keys()) {
    if (key.error) out.push_back(key.spec.name + ": " + key.error->detail);
  }
  return out;
}

}  // namespace stampd::proxy
