#include "net/unbound_resolver.h"

#include <fcntl.h>
#include <unbound.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "net/dns_wire.h"

namespace stampd::net {

namespace asio = boost::asio;

namespace {

constexpr int kClassIn = 1;

struct Query;

DnsAnswer failure(DnsStatus status, std::string detail) {
  DnsAnswer a;
  a.status = status;
  a.detail = std::move(detail);
  return a;
}

const char* rcode_name(int rcode) {
  switch (rcode) {
    case 1:
      return "FORMERR";
    case 2:
      return "SERVFAIL";
    case 4:
      return "NOTIMP";
    case 5:
      return "REFUSED";
    default:
      return "error";
  }
}

// Turns libunbound's result into a DnsAnswer (DnsStatus tells apart what
// SPF and DKIM treat differently: RFC 7208 §4.4, §5; RFC 6376 §6.1.2).
DnsAnswer to_answer(int err, const ub_result* r, RrType type) {
  if (err != 0 || r == nullptr) return failure(DnsStatus::ServFail, ub_strerror(err));
  if (r->bogus) {
    return failure(DnsStatus::ServFail, std::string("DNSSEC validation failed: ") +
                                            (r->why_bogus ? r->why_bogus : "bogus"));
  }
  DnsAnswer a;
  a.secure = r->secure != 0;
  if (r->rcode == 3 || r->nxdomain) {
    a.status = DnsStatus::NxDomain;
    return a;
  }
  if (r->rcode != 0) {
    a.status = DnsStatus::ServFail;
    a.detail = std::string("rcode ") + rcode_name(r->rcode) + " (" + std::to_string(r->rcode) + ")";
    return a;
  }
  if (!r->havedata || r->data == nullptr || r->data[0] == nullptr) {
    a.status = DnsStatus::NoData;
    return a;
  }
  for (int i = 0; r->data[i] != nullptr; ++i) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(r->data[i]);
    auto s = append_rdata(a, type,
                          std::span<const std::uint8_t>(p, static_cast<std::size_t>(r->len[i])));
    if (!s.ok()) return failure(DnsStatus::ServFail, s.error().message());
  }
  a.status = DnsStatus::Ok;
  return a;
}

}  // namespace

// Impl is shared by the resolver and every query in flight, so it outlives
// both the resolver object and callbacks that arrive late.
struct UnboundResolver::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor ex, std::chrono::milliseconds t)
      : executor(std::move(ex)), watch_strand(asio::make_strand(executor)), timeout(t) {}
  ~Impl();

  asio::any_io_executor executor;
  asio::strand<asio::any_io_executor> watch_strand;
  std::chrono::milliseconds timeout;

  // Shared for resolve/cancel/process (libunbound is thread-safe);
  // exclusive only to delete the context at shutdown.
  std::shared_mutex ctx_mu;
  ub_ctx* ctx = nullptr;

  // The reading loop, touched on watch_strand only. It waits on a dup of
  // ub_fd() so that closing it never closes libunbound's own descriptor.
  std::unique_ptr<asio::posix::stream_descriptor> watcher;
  bool watching = false;
  std::atomic<int> pending{0};  // queries not finished yet

  // Queries libunbound may still call back for, keyed by the pointer given
  // to it as callback data; holding them here keeps that pointer valid.
  std::mutex live_mu;
  bool closed = false;  // under live_mu
  std::unordered_map<Query*, std::shared_ptr<Query>> live;

  void start(const std::shared_ptr<Query>& q);
  void abort(const std::shared_ptr<Query>& q, DnsStatus status, std::string detail);
  void finish(const std::shared_ptr<Query>& q, DnsAnswer answer);
  void cancel_in_unbound(const std::shared_ptr<Query>& q);
  std::shared_ptr<Query> take(Query* q);
  void ensure_watching();
  void watch();
  void on_readable(boost::system::error_code ec);
  void stop_watching_if_idle();
  void shutdown();
};

namespace {

// Completion holds the awaiting coroutine's handler, type-erased. (Boost
// 1.81's any_completion_handler recurses forever when moved as an lvalue.)
struct Completion {
  virtual ~Completion() = default;
  virtual void complete(DnsAnswer answer) = 0;
};

template <class Handler>
struct CompletionFor final : Completion {
  explicit CompletionFor(Handler&& h) : handler(std::move(h)) {}
  void complete(DnsAnswer answer) override {
    // Runs the handler on its associated executor: the caller's.
    asio::dispatch(asio::append(std::move(handler), std::move(answer)));
  }
  Handler handler;
};

// Query is one query in flight. Exactly one of the libunbound callback, the
// timer, a cancellation or shutdown wins `finished` and delivers the answer.
struct Query {
  Query(std::shared_ptr<UnboundResolver::Impl> i, std::string n, RrType t,
        const asio::any_io_executor& caller)
      : impl(std::move(i)),
        name(std::move(n)),
        type(t),
        strand(asio::make_strand(caller)),
        timer(strand) {}

  std::shared_ptr<UnboundResolver::Impl> impl;
  std::string name;
  RrType type;
  // A strand on the caller's executor serializes the timer and the
  // delivery, whichever thread the answer comes from.
  asio::strand<asio::any_io_executor> strand;
  asio::steady_timer timer;
  std::unique_ptr<Completion> completion;
  std::atomic<bool> finished{false};

  std::mutex mu;  // guards the three below
  int async_id = 0;
  bool submitted = false;
  bool cancel_wanted = false;
};

// Delivers answer to the awaiting coroutine on its own executor.
void deliver(const std::shared_ptr<Query>& q, DnsAnswer answer) {
  asio::post(q->strand, [q, answer = std::move(answer)]() mutable {
    q->timer.cancel();
    auto completion = std::move(q->completion);
    completion->complete(std::move(answer));
  });
}

// libunbound calls this from inside ub_process(), on the watch strand.
void on_answer(void* data, int err, ub_result* result) {
  auto* raw = static_cast<Query*>(data);
  std::shared_ptr<Query> q = raw->impl->take(raw);
  if (!q) {  // cannot happen: callbacks come only for queries still live
    ub_resolve_free(result);
    return;
  }
  DnsAnswer answer = to_answer(err, result, q->type);
  ub_resolve_free(result);
  if (q->finished.exchange(true)) return;  // timed out or cancelled meanwhile
  q->impl->finish(q, std::move(answer));
}

struct TimerHandler {
  std::shared_ptr<Query> q;
  void operator()(boost::system::error_code ec) const {
    if (ec == asio::error::operation_aborted) return;
    q->impl->abort(q, DnsStatus::Timeout,
                   "no answer within " + std::to_string(q->impl->timeout.count()) + " ms");
  }
};

// Per-operation cancellation (e.g. the caller awaits `query || timer`).
struct CancelHandler {
  std::weak_ptr<Query> q;
  void operator()(asio::cancellation_type) const {
    if (auto s = q.lock()) s->impl->abort(s, DnsStatus::Timeout, "query cancelled");
  }
};

struct QueryInitiation {
  template <class Handler>
  void operator()(Handler&& handler, const std::shared_ptr<UnboundResolver::Impl>& impl,
                  std::string name, RrType type) const {
    const asio::any_io_executor caller = asio::get_associated_executor(handler, impl->executor);
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto q = std::make_shared<Query>(impl, std::move(name), type, caller);
    q->completion =
        std::make_unique<CompletionFor<std::decay_t<Handler>>>(std::forward<Handler>(handler));
    if (slot.is_connected()) slot.template emplace<CancelHandler>(CancelHandler{q});
    impl->start(q);
  }
};

}  // namespace

UnboundResolver::Impl::~Impl() {
  if (ctx != nullptr) ub_ctx_delete(ctx);
}

std::shared_ptr<Query> UnboundResolver::Impl::take(Query* q) {
  std::lock_guard lock(live_mu);
  auto it = live.find(q);
  if (it == live.end()) return nullptr;
  auto out = std::move(it->second);
  live.erase(it);
  return out;
}

void UnboundResolver::Impl::start(const std::shared_ptr<Query>& q) {
  {
    std::lock_guard lock(live_mu);
    if (closed) {
      q->finished = true;
      deliver(q, failure(DnsStatus::ServFail, "resolver shut down"));
      return;
    }
    live.emplace(q.get(), q);
  }
  if (pending.fetch_add(1) == 0) {
    asio::post(watch_strand, [self = shared_from_this()] { self->ensure_watching(); });
  }
  // Arm the timer on the query's strand before submitting, so that any
  // delivery (posted to the same strand later) finds it armed.
  asio::post(q->strand, [q] {
    q->timer.expires_after(q->impl->timeout);
    q->timer.async_wait(TimerHandler{q});
  });

  int id = 0;
  int r = UB_INITFAIL;
  {
    std::shared_lock lock(ctx_mu);
    if (ctx != nullptr) {
      r = ub_resolve_async(ctx, presentation_name(q->name).c_str(), static_cast<int>(q->type),
                           kClassIn, q.get(), &on_answer, &id);
    }
  }
  if (r != UB_NOERROR) {
    take(q.get());
    if (!q->finished.exchange(true)) {
      finish(q, failure(DnsStatus::ServFail, std::string("libunbound: ") + ub_strerror(r)));
    }
    return;
  }
  bool cancel_now = false;
  {
    std::lock_guard lock(q->mu);
    q->async_id = id;
    q->submitted = true;
    cancel_now = q->cancel_wanted;
  }
  if (cancel_now) cancel_in_unbound(q);
}

void UnboundResolver::Impl::cancel_in_unbound(const std::shared_ptr<Query>& q) {
  int id = 0;
  {
    std::lock_guard lock(q->mu);
    if (!q->submitted) {
      q->cancel_wanted = true;  // start() cancels once it knows the id
      return;
    }
    id = q->async_id;
  }
  int r = UB_NOID;
  {
    std::shared_lock lock(ctx_mu);
    if (ctx != nullptr) r = ub_cancel(ctx, id);
  }
  // On success libunbound never calls back for id; otherwise the callback
  // is on its way and will take the query itself.
  if (r == UB_NOERROR) take(q.get());
}

void UnboundResolver::Impl::abort(const std::shared_ptr<Query>& q, DnsStatus status,
                                  std::string detail) {
  if (q->finished.exchange(true)) return;
  cancel_in_unbound(q);
  finish(q, failure(status, std::move(detail)));
}

void UnboundResolver::Impl::finish(const std::shared_ptr<Query>& q, DnsAnswer answer) {
  if (pending.fetch_sub(1) == 1) {
    asio::post(watch_strand, [self = shared_from_this()] { self->stop_watching_if_idle(); });
  }
  deliver(q, std::move(answer));
}

// The reading loop runs only while queries are pending, so an io_context
// with nothing else to do can return from run().
void UnboundResolver::Impl::ensure_watching() {
  if (watching || !watcher) return;
  watching = true;
  watch();
}

void UnboundResolver::Impl::watch() {
  watcher->async_wait(
      asio::posix::descriptor_base::wait_read,
      [self = shared_from_this()](boost::system::error_code ec) { self->on_readable(ec); });
}

void UnboundResolver::Impl::on_readable(boost::system::error_code ec) {
  if (!ec) {
    std::shared_lock lock(ctx_mu);
    if (ctx != nullptr) ub_process(ctx);  // runs on_answer for each answer read
  } else if (ec != asio::error::operation_aborted) {
    watching = false;  // the descriptor is gone (shutdown)
    return;
  }
  if (pending.load() > 0 && watcher && watcher->is_open()) {
    watch();
  } else {
    watching = false;
  }
}

void UnboundResolver::Impl::stop_watching_if_idle() {
  if (watching && pending.load() == 0 && watcher) watcher->cancel();
}

void UnboundResolver::Impl::shutdown() {
  std::vector<std::shared_ptr<Query>> outstanding;
  {
    std::lock_guard lock(live_mu);
    if (closed) return;
    closed = true;
    for (const auto& [key, q] : live) outstanding.push_back(q);
  }
  for (const auto& q : outstanding) {
    if (!q->finished.exchange(true)) finish(q, failure(DnsStatus::ServFail, "resolver shut down"));
  }
  {
    // Waits for a running ub_process(); afterwards no callback can come.
    std::unique_lock lock(ctx_mu);
    if (ctx != nullptr) ub_ctx_delete(ctx);
    ctx = nullptr;
  }
  {
    std::lock_guard lock(live_mu);
    live.clear();
  }
  asio::post(watch_strand, [self = shared_from_this()] {
    if (self->watcher) {
      boost::system::error_code ignored;
      self->watcher->close(ignored);
    }
  });
}

UnboundResolver::UnboundResolver(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

UnboundResolver::~UnboundResolver() { impl_->shutdown(); }

void UnboundResolver::shutdown() { impl_->shutdown(); }

asio::awaitable<DnsAnswer> UnboundResolver::query(std::string name, RrType type) {
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(DnsAnswer)>(
      QueryInitiation{}, asio::use_awaitable, impl_, std::move(name), type);
}

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::create(asio::any_io_executor executor,
                                                                 const UnboundOptions& options) {
  if (options.timeout.count() <= 0)
    return make_error(Errc::BadInput, "DNS timeout must be positive");
  auto impl = std::make_shared<Impl>(std::move(executor), options.timeout);
  impl->ctx = ub_ctx_create();
  if (impl->ctx == nullptr) return make_error(Errc::Io, "ub_ctx_create failed");
  ub_ctx* ctx = impl->ctx;
  auto ub_error = [](std::string what, int r) {
    return make_error(Errc::BadInput, std::move(what) + ": " + ub_strerror(r));
  };
  // A worker thread rather than a forked process: safe in a threaded server.
  if (int r = ub_ctx_async(ctx, 1); r != UB_NOERROR) return ub_error("ub_ctx_async", r);
  if (options.forwarders.empty()) {
    const char* file = options.resolv_conf.empty() ? nullptr : options.resolv_conf.c_str();
    if (int r = ub_ctx_resolvconf(ctx, file); r != UB_NOERROR) {
      return ub_error("reading " + (file ? options.resolv_conf : std::string("resolv.conf")), r);
    }
  } else {
    for (const auto& f : options.forwarders) {
      auto address = unbound_forwarder(f);
      if (!address.ok()) return std::move(address).error();
      if (int r = ub_ctx_set_fwd(ctx, address->c_str()); r != UB_NOERROR) {
        return ub_error("forwarder " + f, r);
      }
    }
  }
  if (!options.trust_anchor_file.empty()) {
    if (!std::ifstream(options.trust_anchor_file)) {
      return make_error(Errc::NotFound,
                        "cannot read trust anchor file " + options.trust_anchor_file);
    }
    if (int r = ub_ctx_add_ta_file(ctx, options.trust_anchor_file.c_str()); r != UB_NOERROR) {
      return ub_error("trust anchor file " + options.trust_anchor_file, r);
    }
  }
  const int fd = ::fcntl(ub_fd(ctx), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return make_error(Errc::Io, std::string("dup of ub_fd: ") + std::strerror(errno));
  impl->watcher = std::make_unique<asio::posix::stream_descriptor>(impl->watch_strand, fd);
  return std::unique_ptr<UnboundResolver>(new UnboundResolver(std::move(impl)));
}

Result<std::string> unbound_forwarder(std::string_view s) {
  auto bad = [&](const char* why) {
    return make_error(Errc::BadInput,
                      std::string(why) + " in DNS forwarder \"" + std::string(s) + "\"");
  };
  std::string_view host = s;
  std::string_view port;
  bool has_port = false;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return bad("missing ']'");
    host = s.substr(1, close - 1);
    const std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("expected ':port' after ']'");
      port = rest.substr(1);
      has_port = true;
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {  // IPv4 with a port
    const auto colon = s.find(':');
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    has_port = true;
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(std::string(host), ec);
  if (ec) return bad("not an IP address");
  std::string out = address.to_string();
  if (has_port) {
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return bad("bad port");
    }
    const int n = std::stoi(std::string(port));
    if (n < 1 || n > 65535) return bad("bad port");
    out += "@" + std::to_string(n);  // libunbound's address@port form
  }
  return out;
}

}  // namespace stampd::net
