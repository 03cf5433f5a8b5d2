#include "cmd/daemon.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "cmd/key_generation.h"
#include "cmd/privileges.h"
#include "cmd/signal_watcher.h"
#include "obs/health.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/metrics_server.h"
#include "obs/record.h"
#include "proxy/config.h"
#include "proxy/runtime.h"
#include "proxy/server.h"
#include "smtp/command.h"

#ifndef STAMPD_VERSION
#define STAMPD_VERSION "dev"
#endif

namespace stampd::cmd {

namespace asio = boost::asio;

namespace {

// IoContext can destroy its pending handlers early: sessions cut at the drain
// deadline still have coroutine frames that refer to the Server (its
// connection limiter), and ~io_context would destroy them after the Server.
class IoContext : public asio::io_context {
 public:
  using asio::io_context::io_context;
  // destroy_pending shuts the services down, destroying every pending handler.
  void destroy_pending() { shutdown(); }
};

// report_keys logs weak and unusable keys and sets readiness and key ages.
void report_keys(const proxy::Runtime& runtime) {
  for (const auto& warning : runtime.signing_keys->warnings()) {
    obs::log_warning("dkim-key-weak", {{"detail", warning}});
  }
  const auto broken = proxy::broken_keys(runtime);
  for (const auto& b : broken) obs::log_error("dkim-key-unusable", {{"detail", b}});
  obs::health().set_keys_problem(broken.empty() ? "" : broken.front());
}

// update_key_ages sets stampd_dkim_key_age_seconds from the key files' mtimes.
void update_key_ages(const proxy::Runtime& runtime) {
  const auto now = std::time(nullptr);
  for (const auto& key : runtime.signing_keys->keys()) {
    struct stat st {};
    if (key.spec.private_key_path.empty() || ::stat(key.spec.private_key_path.c_str(), &st) != 0)
      continue;
    obs::metrics()
        .dkim_key_age.Add({{"domain", key.spec.domain}, {"selector", key.spec.selector}})
        .Set(static_cast<double>(now - st.st_mtime));
  }
}

// upstream_probe checks now and then that the upstream answers, for /readyz.
asio::awaitable<void> upstream_probe(proxy::Server& server, obs::Recorder& recorder) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    auto runtime = server.runtime();
    const auto interval = runtime->config->upstream.health_check_interval;
    obs::health().set_upstream_probing(interval.count() != 0);
    if (interval.count() == 0) {
      timer.expires_after(std::chrono::seconds(5));
    } else {
      auto upstream = runtime->upstreams->make(co_await asio::this_coro::executor);
      auto caps = co_await upstream->open();
      if (caps) {
        recorder.upstream_ok();
      } else {
        recorder.upstream_failed("", "connect", upstream->last_error_kind(), upstream->peer(),
                                 upstream->last_error());
      }
      co_await upstream->close();
      timer.expires_after(interval);
    }
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || server.draining()) co_return;
  }
}

// make_keys generates the keys the config asks for that are missing, and
// logs each one once with the DNS record to publish.
void make_keys(const proxy::Config& config) {
  for (const auto& key : generate_missing_keys(config, config.server.user)) {
    obs::log_info("dkim-key-generated", {{"key", key.name},
                                         {"private_key", key.private_key_path},
                                         {"record_file", key.record_path},
                                         {"publish", key.zone_line}});
  }
}

// reload (SIGHUP) swaps in the config and keys read anew, or keeps the
// running ones when the new ones do not load.
void reload(asio::io_context& io, proxy::Server& server, const std::string& config_path) {
  try {
    auto config = proxy::load_config(config_path);
    make_keys(*config);
    // Strict: the running config works; a broken key must not replace it.
    auto runtime = proxy::build_runtime(config, proxy::KeyPolicy::Strict, asio::make_strand(io));
    server.swap_runtime(runtime);
    report_keys(*runtime);
    obs::Logger::configure(config->log.level, config->log.format);
    obs::metrics().config_reloads.Add({{"result", "ok"}}).Increment();
    obs::metrics().set_config_hash(config->hash);
    obs::log_info("reloaded", {{"config", config_path}, {"sha256", config->hash}});
  } catch (const std::exception& e) {
    obs::metrics().config_reloads.Add({{"result", "failed"}}).Increment();
    obs::log_error("reload-failed",
                   {{"config", config_path}, {"error", e.what()}, {"kept", "previous config"}});
  }
}

// drain (SIGTERM/SIGINT, once server.drain() was called) lets the sessions
// in flight finish up to drain_timeout, then stops the process's loop.
asio::awaitable<void> drain(asio::io_context& io, proxy::Server& server,
                            obs::MetricsServer* metrics_server) {
  const auto deadline =
      std::chrono::steady_clock::now() + server.runtime()->config->server.drain_timeout;
  asio::steady_timer tick(co_await asio::this_coro::executor);
  while (server.active_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(50));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  const auto left = server.active_connections();
  obs::log_info("stopped", {{"unfinished_sessions", std::to_string(left)}});
  server.stop();
  if (metrics_server) metrics_server->stop();
  io.stop();
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGTERM:
      return "TERM";
    case SIGINT:
      return "INT";
    case SIGHUP:
      return "HUP";
    default:
      return "other";
  }
}

}  // namespace

int run_daemon(const std::string& config_path) {
  // Before any thread exists, so that every thread inherits the mask.
  block_control_signals();
  std::shared_ptr<const proxy::Config> loaded;
  try {
    loaded = proxy::load_config(config_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  unsigned threads = loaded->server.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  IoContext io(static_cast<int>(threads));
  std::shared_ptr<const proxy::Runtime> runtime;
  try {
    obs::Logger::configure(loaded->log.level, loaded->log.format);
    make_keys(*loaded);
    runtime = proxy::build_runtime(loaded, proxy::KeyPolicy::Lenient, asio::make_strand(io));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  report_keys(*runtime);
  const auto& config = *runtime->config;
  obs::Recorder recorder(obs::metrics(), obs::health(), smtp::verb_names());
  proxy::Server server(io, runtime, recorder);
  try {
    server.listen();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  // A client that vanishes must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<obs::MetricsServer> metrics_server;
  try {
    if (!config.metrics.listen.empty()) {
      metrics_server = std::make_unique<obs::MetricsServer>(io, config.metrics.listen, config.path,
                                                            obs::metrics(), obs::health());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  // Every socket is bound: from here on we need no privileges.
  if (auto dropped = drop_privileges(config.server.user); !dropped) {
    std::fprintf(stderr, "stampd: %s\n", dropped.error().detail.c_str());
    return 1;
  }
  obs::metrics().set_config_hash(config.hash);
  obs::metrics().set_before_scrape([&server] {
    update_key_ages(*server.runtime());
    obs::metrics().ready.Set(obs::health().not_ready_reason().empty() ? 1 : 0);
  });
  // One strand for the signals and the drain, so a reload never overlaps it.
  auto control = asio::make_strand(io);
  bool told_ignored = false;
  SignalWatcher signals(control, [&](int sig) {
    if (server.draining()) {
      // Said once: a supervisor may repeat TERM many times.
      if (!told_ignored) {
        obs::log_info("signal-ignored",
                      {{"signal", signal_name(sig)}, {"reason", "already draining"}});
      }
      told_ignored = true;
      return;
    }
    if (sig == SIGHUP) {
      reload(io, server, config_path);
      return;
    }
    // Drain first, then say so: whoever reads "draining" sees it in force.
    server.drain();
    obs::health().set_draining(true);
    obs::log_info("draining", {{"signal", signal_name(sig)},
                               {"active", std::to_string(server.active_connections())}});
    asio::co_spawn(control, drain(io, server, metrics_server.get()), asio::detached);
  });
  server.start();
  obs::health().set_listening(true);
  for (const auto& endpoint : server.local_endpoints()) {
    obs::log_info("listening", {{"address", endpoint}, {"version", STAMPD_VERSION}});
  }
  if (metrics_server) {
    metrics_server->start();
    obs::log_info("metrics-listening", {{"address", metrics_server->local_endpoint()}});
  }
  // On a strand like every session: the stream's timers must not race it.
  asio::co_spawn(asio::make_strand(io), upstream_probe(server, recorder), asio::detached);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  signals.stop();  // nothing may post to the loop while it is torn down
  obs::metrics().set_before_scrape({});
  io.destroy_pending();  // while server, metrics_server and runtime still live
  return 0;
}

}  // namespace stampd::cmd
