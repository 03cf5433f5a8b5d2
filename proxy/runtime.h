// runtime.h: everything a session needs that comes from one configuration:
// the config itself, the upstream factory, the pipeline stages. Immutable and
// shared; a reload builds a new Runtime and swaps the pointer, so sessions in
// flight finish on the one they started with.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <optional>

#include "auth/dkim/keyring.h"
#include "net/resolver.h"
#include "net/tls_server.h"
#include "obs/metrics.h"
#include "proxy/config.h"
#include "proxy/pipeline.h"
#include "proxy/upstream/factory.h"
#include "proxy/users_file.h"

namespace stampd::proxy {

struct Runtime {
  std::shared_ptr<const Config> config;
  std::shared_ptr<obs::Metrics> metrics;  // what the stages, upstreams and DNS count in
  std::shared_ptr<const UpstreamFactory> upstreams;
  std::shared_ptr<const auth::SigningKeys> signing_keys;  // never null; maybe empty
  std::shared_ptr<net::Resolver> resolver;                // null when built without an executor
  std::vector<std::shared_ptr<const StageFactory>> stage_factories;  // in pipeline order
  // The [[server.certificate]]s for STARTTLS and listen_tls; null: none. A
  // session keeps the one it started with across a reload.
  std::shared_ptr<const net::ServerTls> server_tls;
  std::shared_ptr<const UserDb> users;  // [auth] users_file; null: no AUTH
};

// KeyPolicy says what a key that cannot be loaded means.
enum class KeyPolicy {
  Strict,   // an error: check-config and reload refuse the config
  Lenient,  // start anyway; rules needing it fail closed (or send unsigned)
};

// build_runtime loads everything config names (TLS, keys, ...); throws ConfigError.
// With an executor it also starts the DNS resolver ([dns]) and the SPF stage;
// without one (check-config, sign) it only checks what it can. What it does
// is counted in metrics (the daemon's); without, in metrics of its own that
// nobody reads (the one-shot commands). With the I/O threads' executors, the
// upstream factory keeps a connection pool for each.
std::shared_ptr<const Runtime> build_runtime(
    const std::shared_ptr<const Config>& config, KeyPolicy key_policy = KeyPolicy::Strict,
    std::optional<boost::asio::any_io_executor> executor = std::nullopt,
    std::shared_ptr<obs::Metrics> metrics = nullptr,
    const std::vector<boost::asio::any_io_executor>& io = {});

// make_resolver builds the [dns] resolver (counted in metrics); throws ConfigError.
std::shared_ptr<net::Resolver> make_resolver(const Config& config,
                                             boost::asio::any_io_executor executor,
                                             std::shared_ptr<obs::Metrics> metrics);

// broken_keys lists "name: why" for each configured key that could not be loaded.
std::vector<std::string> broken_keys(const Runtime& runtime);

}  // namespace stampd::proxy
