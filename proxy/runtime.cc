#include "proxy/runtime.h"

#include <algorithm>

#include "net/unbound_resolver.h"
#include "proxy/counting_resolver.h"
#include "proxy/stages/dkim_stage.h"
#include "proxy/stages/sender_rights_stage.h"
#include "proxy/stages/spf_stage.h"

namespace stampd::proxy {

std::shared_ptr<net::Resolver> make_resolver(const Config& config,
                                             boost::asio::any_io_executor executor,
                                             std::shared_ptr<obs::Metrics> metrics) {
  net::UnboundOptions options;
  options.forwarders = config.dns.resolvers;
  options.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.dns.timeout);
  options.trust_anchor_file = config.dns.trust_anchor_file;
  auto resolver = net::UnboundResolver::create(std::move(executor), options);
  if (!resolver) throw ConfigError(config.path + ": [dns]: " + resolver.error().message());
  std::shared_ptr<net::Resolver> inner(std::move(*resolver));
  return std::make_shared<CountingResolver>(std::move(inner), std::move(metrics));
}

std::shared_ptr<const Runtime> build_runtime(const std::shared_ptr<const Config>& config,
                                             KeyPolicy key_policy,
                                             std::optional<boost::asio::any_io_executor> executor,
                                             std::shared_ptr<obs::Metrics> metrics,
                                             const std::vector<boost::asio::any_io_executor>& io) {
  auto runtime = std::make_shared<Runtime>();
  runtime->config = config;
  runtime->metrics = metrics ? std::move(metrics) : std::make_shared<obs::Metrics>();
  runtime->upstreams = std::make_shared<UpstreamFactory>(config, runtime->metrics, io);

  if (!config->server.certificates.empty()) {
    std::vector<net::CertificateFiles> files;
    for (const auto& c : config->server.certificates) {
      files.push_back({c.chain_file, c.key_file, c.origin + ": [server.certificate]"});
    }
    auto tls = net::ServerTls::load(files);
    if (!tls) throw ConfigError(tls.error().detail);
    runtime->server_tls = std::move(*tls);
  }

  auth::KeyringOptions options;
  options.allow_group_readable_keys = config->dkim.allow_group_readable_keys;
  options.keep_broken_keys = key_policy == KeyPolicy::Lenient;
  auto keys = auth::SigningKeys::build(config->dkim.keys, config->dkim.rules, options);
  if (!keys)
    throw ConfigError(keys.error().detail.empty() ? keys.error().message() : keys.error().detail);
  runtime->signing_keys = *keys;

  if (executor) runtime->resolver = make_resolver(*config, *executor, runtime->metrics);

  if (!config->auth.users_file.empty()) runtime->users = UserDb::load(config->auth.users_file);

  // Pipeline order: sender rights of a login first (nothing is signed for a
  // From it may not use), SPF policy (at MAIL FROM), then DKIM signing (at end of data).
  if (runtime->users) {
    runtime->stage_factories.push_back(std::make_shared<SenderRightsStageFactory>(config));
  }
  const bool spf_wanted =
      config->spf.mode != SpfMode::Off ||
      std::any_of(config->spf.overrides.begin(), config->spf.overrides.end(),
                  [](const SpfOverride& o) { return o.mode && *o.mode != SpfMode::Off; });
  if (spf_wanted && runtime->resolver) {
    runtime->stage_factories.push_back(
        std::make_shared<SpfStageFactory>(config, runtime->resolver, *runtime->metrics));
  }
  if (!config->dkim.rules.empty() || !config->dkim.must_sign.empty()) {
    runtime->stage_factories.push_back(std::make_shared<DkimStageFactory>(
        runtime->signing_keys, dkim_settings(config->dkim), MustSign(config->dkim.must_sign),
        *runtime->metrics, config->dkim.self_verify,
        ArcSettings{config->arc.authserv_id, static_cast<int>(config->arc.max_sets),
                    runtime->resolver}));
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
