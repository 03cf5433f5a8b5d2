#include "proxy/cli.h"

#include <sys/stat.h>

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
#include <cstring>
#include <ctime>
#include <exception>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "proxy/config.h"
#include "proxy/dkim_commands.h"
#include "proxy/health.h"
#include "proxy/health_command.h"
#include "proxy/key_generation.h"
#include "proxy/log.h"
#include "proxy/metrics.h"
#include "proxy/metrics_server.h"
#include "proxy/privileges.h"
#include "proxy/runtime.h"
#include "proxy/server.h"
#include "proxy/signal_watcher.h"
#include "proxy/spf_commands.h"

#ifndef STAMPD_VERSION
#define STAMPD_VERSION "dev"
#endif

namespace stampd::proxy {

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

const char* const kUsage =
    "usage: stampd run -c FILE            serve (also: stampd -c FILE)\n"
    "       stampd check-config -c FILE   validate and print the effective config\n"
    "       stampd genkey --domain D --selector S [--algorithm rsa-2048|rsa-3072|ed25519] [--dir "
    "DIR]\n"
    "       stampd sign -c FILE < message > signed\n"
    "       stampd verify [--key-file F] [-c FILE] < message\n"
    "       stampd spf --ip IP --mail-from ADDR [--helo NAME] [-c FILE]\n"
    "       stampd dns-check -c FILE\n"
    "       stampd health -c FILE [--ready]\n"
    "       stampd --version\n";

// Args is the parsed command line: a subcommand and its --options.
struct Args {
  std::string command;
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> errors;

  const std::string* get(std::string_view name) const {
    for (const auto& [k, v] : options) {
      if (k == name) return &v;
    }
    return nullptr;
  }
};

Args parse_args(int argc, char** argv, const std::vector<std::string>& flags_with_value) {
  Args args;
  int i = 1;
  if (i < argc && argv[i][0] != '-') args.command = argv[i++];
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-c") a = "--config";
    if (!a.starts_with("--")) {
      args.errors.push_back("unexpected argument '" + a + "'");
      continue;
    }
    std::string value;
    const auto eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (std::find(flags_with_value.begin(), flags_with_value.end(), a) !=
               flags_with_value.end()) {
      if (i + 1 >= argc) {
        args.errors.push_back(a + " needs a value");
        continue;
      }
      value = argv[++i];
    }
    args.options.emplace_back(a.substr(2), value);
  }
  return args;
}

// report_keys logs weak and unusable keys and sets readiness and key ages.
void report_keys(const Runtime& runtime) {
  for (const auto& warning : runtime.signing_keys->warnings()) {
    log_warning("dkim-key-weak", {{"detail", warning}});
  }
  const auto broken = broken_keys(runtime);
  for (const auto& b : broken) log_error("dkim-key-unusable", {{"detail", b}});
  health().set_keys_problem(broken.empty() ? "" : broken.front());
}

// update_key_ages sets stampd_dkim_key_age_seconds from the key files' mtimes.
void update_key_ages(const Runtime& runtime) {
  const auto now = std::time(nullptr);
  for (const auto& key : runtime.signing_keys->keys()) {
    struct stat st {};
    if (key.spec.private_key_path.empty() || ::stat(key.spec.private_key_path.c_str(), &st) != 0)
      continue;
    metrics()
        .dkim_key_age.Add({{"domain", key.spec.domain}, {"selector", key.spec.selector}})
        .Set(static_cast<double>(now - st.st_mtime));
  }
}

// upstream_probe checks now and then that the upstream answers, for /readyz.
asio::awaitable<void> upstream_probe(Server& server) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    auto runtime = server.runtime();
    const auto interval = runtime->config->upstream.health_check_interval;
    health().set_upstream_probing(interval.count() != 0);
    if (interval.count() == 0) {
      timer.expires_after(std::chrono::seconds(5));
    } else {
      auto upstream = runtime->upstreams->make(co_await asio::this_coro::executor);
      auto caps = co_await upstream->open();
      health().upstream_result(caps.has_value());
      if (!caps) {
        metrics()
            .upstream_errors.Add({{"kind", to_string(upstream->last_error_kind())}})
            .Increment();
        log_warning("upstream-check-failed",
                    {{"upstream", upstream->peer()}, {"error", upstream->last_error()}});
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
void make_keys(const Config& config) {
  for (const auto& key : generate_missing_keys(config, config.server.user)) {
    log_info("dkim-key-generated", {{"key", key.name},
                                    {"private_key", key.private_key_path},
                                    {"record_file", key.record_path},
                                    {"publish", key.zone_line}});
  }
}

// reload (SIGHUP) swaps in the config and keys read anew, or keeps the
// running ones when the new ones do not load.
void reload(asio::io_context& io, Server& server, const std::string& config_path) {
  try {
    auto config = load_config(config_path);
    make_keys(*config);
    // Strict: the running config works; a broken key must not replace it.
    auto runtime = build_runtime(config, KeyPolicy::Strict, asio::make_strand(io));
    server.swap_runtime(runtime);
    report_keys(*runtime);
    Logger::configure(config->log.level, config->log.format);
    metrics().config_reloads.Add({{"result", "ok"}}).Increment();
    metrics().set_config_hash(config->hash);
    log_info("reloaded", {{"config", config_path}, {"sha256", config->hash}});
  } catch (const std::exception& e) {
    metrics().config_reloads.Add({{"result", "failed"}}).Increment();
    log_error("reload-failed",
              {{"config", config_path}, {"error", e.what()}, {"kept", "previous config"}});
  }
}

// drain (SIGTERM/SIGINT, once server.drain() was called) lets the sessions
// in flight finish up to drain_timeout, then stops the process's loop.
asio::awaitable<void> drain(asio::io_context& io, Server& server, MetricsServer* metrics_server) {
  const auto deadline =
      std::chrono::steady_clock::now() + server.runtime()->config->server.drain_timeout;
  asio::steady_timer tick(co_await asio::this_coro::executor);
  while (server.active_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(50));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  const auto left = server.active_connections();
  log_info("stopped", {{"unfinished_sessions", std::to_string(left)}});
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

int cmd_run(const Args& args) {
  const std::string* path = args.get("config");
  if (!path) {
    std::fputs("stampd run: -c FILE is required\n", stderr);
    return 2;
  }
  // Before any thread exists, so that every thread inherits the mask.
  block_control_signals();
  std::shared_ptr<const Config> loaded;
  try {
    loaded = load_config(*path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  unsigned threads = loaded->server.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  IoContext io(static_cast<int>(threads));
  std::shared_ptr<const Runtime> runtime;
  try {
    Logger::configure(loaded->log.level, loaded->log.format);
    make_keys(*loaded);
    runtime = build_runtime(loaded, KeyPolicy::Lenient, asio::make_strand(io));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  report_keys(*runtime);
  const auto& config = *runtime->config;
  Server server(io, runtime);
  try {
    server.listen();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  // A client that vanishes must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<MetricsServer> metrics_server;
  try {
    if (!config.metrics.listen.empty()) {
      metrics_server = std::make_unique<MetricsServer>(io, config.metrics.listen, config.path);
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
  metrics().set_config_hash(config.hash);
  metrics().set_before_scrape([&server] {
    update_key_ages(*server.runtime());
    metrics().ready.Set(health().not_ready_reason().empty() ? 1 : 0);
  });
  // One strand for the signals and the drain, so a reload never overlaps it.
  auto control = asio::make_strand(io);
  bool told_ignored = false;
  SignalWatcher signals(control, [&](int sig) {
    if (server.draining()) {
      // Said once: a supervisor may repeat TERM many times.
      if (!told_ignored) {
        log_info("signal-ignored", {{"signal", signal_name(sig)}, {"reason", "already draining"}});
      }
      told_ignored = true;
      return;
    }
    if (sig == SIGHUP) {
      reload(io, server, *path);
      return;
    }
    // Drain first, then say so: whoever reads "draining" sees it in force.
    server.drain();
    health().set_draining(true);
    log_info("draining", {{"signal", signal_name(sig)},
                          {"active", std::to_string(server.active_connections())}});
    asio::co_spawn(control, drain(io, server, metrics_server.get()), asio::detached);
  });
  server.start();
  health().set_listening(true);
  for (const auto& endpoint : server.local_endpoints()) {
    log_info("listening", {{"address", endpoint}, {"version", STAMPD_VERSION}});
  }
  if (metrics_server) {
    metrics_server->start();
    log_info("metrics-listening", {{"address", metrics_server->local_endpoint()}});
  }
  // On a strand like every session: the stream's timers must not race it.
  asio::co_spawn(asio::make_strand(io), upstream_probe(server), asio::detached);
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  signals.stop();  // nothing may post to the loop while it is torn down
  metrics().set_before_scrape({});
  io.destroy_pending();  // while server, metrics_server and runtime still live
  return 0;
}

int cmd_check_config(const Args& args) {
  const std::string* path = args.get("config");
  if (!path) {
    std::fputs("stampd check-config: -c FILE is required\n", stderr);
    return 2;
  }
  try {
    auto config = load_config(*path);
    auto runtime = build_runtime(config, KeyPolicy::Strict);
    std::cout << describe_config(*config);
    for (const auto& warning : runtime->signing_keys->warnings()) {
      std::cerr << "warning: " << warning << "\n";
    }
    // Strict lets only keys that `stampd run` will generate be missing.
    for (const auto& missing : broken_keys(*runtime)) {
      std::cerr << "note: " << missing << "; `stampd run` makes it\n";
    }
    std::cerr << path->c_str() << ": ok\n";
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // namespace

int run_cli(int argc, char** argv) {
  const std::vector<std::string> with_value{"--config",    "--domain",    "--selector",
                                            "--algorithm", "--dir",       "--key-file",
                                            "--ip",        "--mail-from", "--helo"};
  Args args = parse_args(argc, argv, with_value);
  if (args.get("version")) {
    std::printf("stampd %s\n", STAMPD_VERSION);
    return 0;
  }
  if (args.get("help") || args.command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.errors.empty()) {
    for (const auto& e : args.errors) std::fprintf(stderr, "stampd: %s\n", e.c_str());
    std::fputs(kUsage, stderr);
    return 2;
  }
  if (args.command.empty() || args.command == "run") return cmd_run(args);
  if (args.command == "check-config") return cmd_check_config(args);
  if (args.command == "genkey") {
    GenkeyArgs g;
    if (const auto* v = args.get("domain")) g.domain = *v;
    if (const auto* v = args.get("selector")) g.selector = *v;
    if (const auto* v = args.get("algorithm")) g.algorithm = *v;
    if (const auto* v = args.get("dir")) g.dir = *v;
    return cmd_genkey(g);
  }
  if (args.command == "sign") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd sign: -c FILE is required\n", stderr);
      return 2;
    }
    return cmd_sign(*config);
  }
  if (args.command == "spf") {
    SpfArgs s;
    if (const auto* v = args.get("ip")) s.ip = *v;
    if (const auto* v = args.get("mail-from")) s.mail_from = *v;
    if (const auto* v = args.get("helo")) s.helo = *v;
    if (const auto* v = args.get("config")) s.config_path = *v;
    return cmd_spf(s);
  }
  if (args.command == "dns-check") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd dns-check: -c FILE is required\n", stderr);
      return 2;
    }
    return cmd_dns_check(*config);
  }
  if (args.command == "health") {
    const auto* config = args.get("config");
    if (!config) {
      std::fputs("stampd health: -c FILE is required\n", stderr);
      return 2;
    }
    return cmd_health(*config, args.get("ready") != nullptr);
  }
  if (args.command == "verify") {
    const auto* key = args.get("key-file");
    const auto* config = args.get("config");
    return cmd_verify(key ? *key : "", config ? *config : "");
  }
  std::fprintf(stderr, "stampd: unknown command '%s'\n%s", args.command.c_str(), kUsage);
  return 2;
}

}  // namespace stampd::proxy
