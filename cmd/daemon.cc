#include "cmd/daemon.h"

#include <malloc.h>
#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
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
#include <memory>
#include <optional>
#include <set>
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
#include "proxy/key_watch.h"
#include "proxy/runtime.h"
#include "proxy/server.h"
#include "proxy/spool.h"
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

// keys_in_use lists the key files that runtime signs with.
std::set<std::string> keys_in_use(const proxy::Runtime& runtime) {
  std::set<std::string> paths;
  for (const auto& key : runtime.signing_keys->keys()) {
    if (key.signing_key) paths.insert(key.spec.private_key_path);
  }
  return paths;
}

// make_keys generates the keys the config asks for that are missing (but
// those in in_use: see generate_missing_keys), and logs each one once with
// the DNS record to publish.
void make_keys(const proxy::Config& config, const std::set<std::string>& in_use = {}) {
  for (const auto& key : generate_missing_keys(config, config.server.user, in_use)) {
    obs::log_info("dkim-key-generated", {{"key", key.name},
                                         {"private_key", key.private_key_path},
                                         {"record_file", key.record_path},
                                         {"publish", key.zone_line}});
  }
}

// Daemon is one `stampd run`: what it serves with, and what it reports in.
// The metrics, health and recorder are the process's; they outlive the
// server, the sessions and every runtime a reload makes.
class Daemon {
 public:
  // Each of threads I/O threads runs an io_context of its own; the first
  // also runs the listeners, the signals, the probe and the metrics server.
  Daemon(std::string config_path, unsigned threads)
      : config_path_(std::move(config_path)),
        ios_(make_contexts(threads)),
        io_(*ios_.front()),
        control_(asio::make_strand(io_)),
        recorder_(*metrics_, health_, smtp::verb_names()) {
    for (const auto& io : ios_) {
      executors_.push_back(io->get_executor());
      // Until stop(): a thread with no session yet must not return from run().
      work_.emplace_back(io->get_executor());
    }
  }

  // start loads keys, binds and drops privileges; false (said on stderr) when it cannot.
  bool start(const std::shared_ptr<const proxy::Config>& config);
  // serve runs until drained; the exit status.
  int serve();

 private:
  // report_keys logs weak and unusable keys; an unusable one makes us not ready.
  void report_keys(const proxy::Runtime& runtime);
  // update_key_ages sets stampd_dkim_key_age_seconds from the key files' mtimes.
  void update_key_ages(const proxy::Runtime& runtime);
  void on_signal(int sig);
  // reload (SIGHUP) swaps in the config and keys read anew, or keeps the
  // running ones when the new ones do not load.
  void reload();
  // drain (SIGTERM/SIGINT) lets the sessions in flight finish up to
  // drain_timeout, then stops the loop.
  asio::awaitable<void> drain();
  // probe checks now and then that the upstream answers, for /readyz.
  asio::awaitable<void> probe();
  // watch_keys checks the keys' DNS records at start, after each reload
  // (which wakes it) and every [dkim] dns_check_interval.
  asio::awaitable<void> watch_keys();

  static std::vector<std::unique_ptr<IoContext>> make_contexts(unsigned n) {
    std::vector<std::unique_ptr<IoContext>> out;
    for (unsigned i = 0; i < n; ++i) out.push_back(std::make_unique<IoContext>(1));
    return out;
  }
  void stop_all() {
    for (auto& io : ios_) io->stop();
  }

  std::string config_path_;
  std::vector<std::unique_ptr<IoContext>> ios_;
  IoContext& io_;
  std::vector<asio::any_io_executor> executors_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  // One strand for the signals and the drain, so a reload never overlaps it.
  asio::strand<asio::io_context::executor_type> control_;
  std::shared_ptr<obs::Metrics> metrics_ = std::make_shared<obs::Metrics>();
  obs::Health health_;
  obs::Recorder recorder_;
  std::unique_ptr<proxy::Server> server_;
  std::unique_ptr<obs::MetricsServer> metrics_server_;
  bool told_ignored_ = false;
  proxy::KeyWatch key_watch_{*metrics_};
  // Runs on control_, as reload() does, which cancels it to check at once.
  std::optional<asio::steady_timer> key_watch_timer_;
};

void Daemon::report_keys(const proxy::Runtime& runtime) {
  for (const auto& warning : runtime.signing_keys->warnings()) {
    obs::log_warning("dkim-key-weak", {{"detail", warning}});
  }
  const auto broken = proxy::broken_keys(runtime);
  for (const auto& b : broken) obs::log_error("dkim-key-unusable", {{"detail", b}});
  health_.set_keys_problem(broken.empty() ? "" : broken.front());
}

// report_certificates logs each server certificate loaded, so that a
// renewal followed by SIGHUP shows in the log with its new expiry.
void report_certificates(const proxy::Runtime& runtime) {
  if (!runtime.server_tls) return;
  for (std::size_t i = 0; i < runtime.server_tls->size(); ++i) {
    const auto c = runtime.server_tls->summary(i);
    std::string names;
    for (const auto& n : c.names) names += (names.empty() ? "" : ",") + n;
    obs::log_info("tls-certificate", {{"file", c.chain_file},
                                      {"names", names},
                                      {"expires", c.not_after},
                                      {"default", i == 0 ? "yes" : "no"}});
  }
}

void Daemon::update_key_ages(const proxy::Runtime& runtime) {
  const auto now = std::time(nullptr);
  for (const auto& key : runtime.signing_keys->keys()) {
    struct stat st {};
    if (key.spec.private_key_path.empty() || ::stat(key.spec.private_key_path.c_str(), &st) != 0)
      continue;
    metrics_->dkim_key_age.Add({{"domain", key.spec.domain}, {"selector", key.spec.selector}})
        .Set(static_cast<double>(now - st.st_mtime));
  }
}

bool Daemon::start(const std::shared_ptr<const proxy::Config>& loaded) {
  std::shared_ptr<const proxy::Runtime> runtime;
  try {
    obs::Logger::configure(loaded->log.level, loaded->log.format);
    make_keys(*loaded);
    runtime = proxy::build_runtime(loaded, proxy::KeyPolicy::Lenient, asio::make_strand(io_),
                                   metrics_, executors_);
    proxy::Spool::set_total_memory(loaded->server.spool_memory_total);
    report_keys(*runtime);
    report_certificates(*runtime);
    server_ = std::make_unique<proxy::Server>(io_, executors_, runtime, recorder_);
    server_->listen();
    const auto& config = *runtime->config;
    if (!config.metrics.listen.empty()) {
      metrics_server_ = std::make_unique<obs::MetricsServer>(io_, config.metrics.listen,
                                                             config.path, *metrics_, health_);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return false;
  }
  // Every socket is bound: from here on we need no privileges.
  if (auto dropped = drop_privileges(loaded->server.user); !dropped) {
    std::fprintf(stderr, "stampd: %s\n", dropped.error().detail.c_str());
    return false;
  }
  metrics_->set_config_hash(loaded->hash);
  metrics_->set_before_scrape([this] {
    update_key_ages(*server_->runtime());
    metrics_->ready.Set(health_.not_ready_reason().empty() ? 1 : 0);
    metrics_->spool_memory.Set(static_cast<double>(proxy::Spool::total_memory()));
  });
  return true;
}

void Daemon::reload() {
  try {
    auto config = proxy::load_config(config_path_);
    make_keys(*config, keys_in_use(*server_->runtime()));
    // Strict: the running config works; a broken key must not replace it.
    auto runtime = proxy::build_runtime(config, proxy::KeyPolicy::Strict, asio::make_strand(io_),
                                        metrics_, executors_);
    // Gated keys whose record matched a moment ago go on signing; the check
    // woken below confirms it.
    key_watch_.restore(*runtime->signing_keys);
    const auto old = server_->runtime();
    server_->swap_runtime(runtime);
    proxy::Spool::set_total_memory(config->server.spool_memory_total);
    // The old pools' kept connections were made for the old config.
    old->upstreams->retire();
    report_keys(*runtime);
    report_certificates(*runtime);
    obs::Logger::configure(config->log.level, config->log.format);
    metrics_->config_reloads.Add({{"result", "ok"}}).Increment();
    metrics_->set_config_hash(config->hash);
    obs::log_info("reloaded", {{"config", config_path_}, {"sha256", config->hash}});
    if (key_watch_timer_) key_watch_timer_->cancel();  // check the new keys now
  } catch (const std::exception& e) {
    metrics_->config_reloads.Add({{"result", "failed"}}).Increment();
    obs::log_error("reload-failed",
                   {{"config", config_path_}, {"error", e.what()}, {"kept", "previous config"}});
  }
}

asio::awaitable<void> Daemon::drain() {
  const auto deadline =
      std::chrono::steady_clock::now() + server_->runtime()->config->server.drain_timeout;
  asio::steady_timer tick(co_await asio::this_coro::executor);
  while (server_->active_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
    tick.expires_after(std::chrono::milliseconds(50));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  const auto left = server_->active_connections();
  // The pooled upstream connections are closed with QUIT, so the upstream
  // logs a clean end instead of a lost connection; a few seconds at most.
  const auto upstreams = server_->runtime()->upstreams;
  upstreams->retire();
  // (Sessions cut at the deadline still hold theirs: no wait for those.)
  const auto quit_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (left == 0 && upstreams->alive() > 0 && std::chrono::steady_clock::now() < quit_deadline) {
    tick.expires_after(std::chrono::milliseconds(10));
    boost::system::error_code ec;
    co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  obs::log_info("stopped", {{"unfinished_sessions", std::to_string(left)}});
  if (key_watch_timer_) key_watch_timer_->cancel();
  server_->stop();
  if (metrics_server_) metrics_server_->stop();
  stop_all();
}

asio::awaitable<void> Daemon::watch_keys() {
  key_watch_timer_.emplace(co_await asio::this_coro::executor);
  for (;;) {
    auto runtime = server_->runtime();
    if (runtime->resolver) co_await key_watch_.check(*runtime->signing_keys, *runtime->resolver);
    const auto interval = runtime->config->dkim.dns_check_interval;
    // Zero: no periodic checks, only after a reload.
    key_watch_timer_->expires_after(interval.count() == 0 ? std::chrono::hours(24 * 365)
                                                          : interval);
    boost::system::error_code ec;
    co_await key_watch_timer_->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (server_->draining()) co_return;
  }
}

asio::awaitable<void> Daemon::probe() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    auto runtime = server_->runtime();
    const auto interval = runtime->config->upstream.health_check_interval;
    health_.set_upstream_probing(interval.count() != 0);
    if (interval.count() == 0) {
      timer.expires_after(std::chrono::seconds(5));
    } else {
      auto upstream = runtime->upstreams->make(co_await asio::this_coro::executor);
      auto caps = co_await upstream->open();
      if (caps) {
        recorder_.upstream_ok();
      } else {
        recorder_.upstream_failed("", "connect", upstream->last_error_kind(), upstream->peer(),
                                  upstream->last_error());
      }
      co_await upstream->close();
      timer.expires_after(interval);
    }
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || server_->draining()) co_return;
  }
}

void Daemon::on_signal(int sig) {
  if (server_->draining()) {
    // Said once: a supervisor may repeat TERM many times.
    if (!told_ignored_) {
      obs::log_info("signal-ignored",
                    {{"signal", signal_name(sig)}, {"reason", "already draining"}});
    }
    told_ignored_ = true;
    return;
  }
  if (sig == SIGHUP) {
    reload();
    return;
  }
  // Drain first, then say so: whoever reads "draining" sees it in force.
  server_->drain();
  health_.set_draining(true);
  obs::log_info("draining", {{"signal", signal_name(sig)},
                             {"active", std::to_string(server_->active_connections())}});
  asio::co_spawn(control_, drain(), asio::detached);
}

int Daemon::serve() {
  SignalWatcher signals(control_, [this](int sig) { on_signal(sig); });
  server_->start();
  health_.set_listening(true);
  const auto endpoints = server_->local_endpoints();
  const bool certificates = server_->runtime()->server_tls != nullptr;
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    const char* tls = server_->implicit_tls(i) ? "implicit" : certificates ? "starttls" : "none";
    obs::log_info("listening",
                  {{"address", endpoints[i]}, {"tls", tls}, {"version", STAMPD_VERSION}});
  }
  if (metrics_server_) {
    metrics_server_->start();
    obs::log_info("metrics-listening", {{"address", metrics_server_->local_endpoint()}});
  }
  // On a strand like every session: the stream's timers must not race it.
  asio::co_spawn(asio::make_strand(io_), probe(), asio::detached);
  asio::co_spawn(control_, watch_keys(), asio::detached);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < ios_.size(); ++i) {
    threads.emplace_back([io = ios_[i].get()] { io->run(); });
  }
  io_.run();
  for (auto& t : threads) t.join();
  signals.stop();  // nothing may post to the loop while it is torn down
  metrics_->set_before_scrape({});
  // A password check still hashing would post its session's resumption
  // into a loop being torn down.
  server_->join_password_checks();
  // While the server, the metrics server and the runtimes still live.
  for (auto& io : ios_) io->destroy_pending();
  return 0;
}

// keep_freed_memory stops glibc's malloc from giving the top of each heap
// back to the kernel whenever a message's buffers are freed (its default
// threshold is 128 KiB): a busy relay frees and takes back the same
// few hundred KiB per message, and the sbrk/madvise round trips and the page
// faults after them were about 6% of the daemon's samples at 4 KiB. Up to
// 4 MiB of free memory per heap stays mapped instead.
void keep_freed_memory() {
#ifdef M_TRIM_THRESHOLD
  mallopt(M_TRIM_THRESHOLD, 4 << 20);
  mallopt(M_TOP_PAD, 1 << 20);
  // A fixed threshold: only blocks of 1 MiB and more (none on the hot path)
  // are mapped on their own.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

}  // namespace

int run_daemon(const std::string& config_path) {
  // Before any thread exists, so that every thread inherits the mask.
  block_control_signals();
  keep_freed_memory();
  std::shared_ptr<const proxy::Config> loaded;
  try {
    loaded = proxy::load_config(config_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stampd: %s\n", e.what());
    return 1;
  }
  unsigned threads = loaded->server.threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  // A client that vanishes must not kill us with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  Daemon daemon(config_path, threads);
  if (!daemon.start(loaded)) return 1;
  return daemon.serve();
}

}  // namespace stampd::cmd
