#include "proxy/server.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <random>

#include "net/host_port.h"
#include "proxy/connection.h"

namespace stampd::proxy {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// A failing accept(2) is retried after kAcceptPause, and said again in
// the log every kAcceptTroubleRepeat while it lasts.
constexpr std::chrono::milliseconds kAcceptPause{100};
constexpr std::chrono::seconds kAcceptTroubleRepeat{10};

// AcceptTrouble is one listener's run of failed accepts.
struct AcceptTrouble {
  std::uint64_t failures = 0;
  std::chrono::steady_clock::time_point since;
  std::chrono::steady_clock::time_point said;
};

// refuse_connection answers an over-the-cap client and hangs up (RFC 5321 §3.1: 421 then close).
asio::awaitable<void> refuse_connection(tcp::socket socket, std::string text) {
  boost::system::error_code ec;
  co_await asio::async_write(socket, asio::buffer(text),
                             asio::redirect_error(asio::use_awaitable, ec));
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

// serve_slot holds the connection's place under the caps for as long as the session runs.
asio::awaitable<void> serve_slot(std::unique_ptr<net::ByteStream> stream, ConnectionContext context,
                                 ConnectionLimiter::Slot slot) {
  (void)slot;
  struct Open {
    explicit Open(obs::Recorder& r) : recorder(r) { recorder.connection_opened(); }
    ~Open() { recorder.connection_closed(); }
    obs::Recorder& recorder;
  } open(*context.recorder);
  co_await serve_connection(std::move(stream), std::move(context));
}

}  // namespace

Server::Server(asio::io_context& io, std::vector<asio::any_io_executor> threads,
               std::shared_ptr<const Runtime> runtime, obs::Recorder& recorder)
    : io_(io), threads_(std::move(threads)), recorder_(recorder), runtime_(std::move(runtime)) {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06x", rd() & 0xffffff);
  id_prefix_ = buf;
}

std::shared_ptr<const Runtime> Server::runtime() const {
  std::lock_guard lock(runtime_mutex_);
  return runtime_;
}

void Server::swap_runtime(std::shared_ptr<const Runtime> runtime) {
  std::lock_guard lock(runtime_mutex_);
  runtime_ = std::move(runtime);
}

void Server::listen() {
  const auto config = runtime()->config;
  for (const auto& text : config->server.listen) bind(text, "listen", false);
  for (const auto& text : config->server.listen_tls) bind(text, "listen_tls", true);
}

void Server::bind(const std::string& text, const char* key, bool implicit_tls) {
  const auto& path = runtime()->config->path;
  auto hp = net::split_host_port(text);
  auto ip = hp ? net::parse_ip(hp->host) : std::nullopt;
  if (!ip) throw ConfigError(path + ": [server] " + key + ": bad address '" + text + "'");
  tcp::endpoint endpoint(*ip, static_cast<unsigned short>(std::stoul(hp->port)));
  auto acceptor = std::make_unique<tcp::acceptor>(io_);
  boost::system::error_code ec;
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && endpoint.address().is_v6()) acceptor->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw ConfigError(path + ": [server] " + key + ": cannot listen on " + text + ": " +
                      ec.message());
  }
  acceptors_.push_back(std::move(acceptor));
  implicit_tls_.push_back(implicit_tls);
  listen_texts_.push_back(text);
}

std::vector<std::string> Server::local_endpoints() const {
  std::vector<std::string> out;
  for (const auto& a : acceptors_) {
    boost::system::error_code ec;
    auto ep = a->local_endpoint(ec);
    if (!ec) out.push_back(net::endpoint_text(ep.address(), ep.port()));
  }
  return out;
}

void Server::start() {
  for (std::size_t i = 0; i < acceptors_.size(); ++i) {
    asio::co_spawn(io_, accept_loop(i), asio::detached);
  }
}

void Server::drain() {
  draining_ = true;
  drain_notice_.start();
}

void Server::stop() {
  stopped_ = true;
  for (auto& a : acceptors_) {
    boost::system::error_code ec;
    a->close(ec);
  }
}

asio::awaitable<void> Server::accept_loop(std::size_t index) {
  auto& acceptor = *acceptors_[index];
  const std::string local = local_endpoints().at(index);
  AcceptTrouble trouble;
  while (!stopped_) {
    // Connections go to the I/O threads in turn; the socket is born on the
    // one that will serve it.
    const std::size_t thread = next_thread_++ % threads_.size();
    boost::system::error_code ec;
    // The peer's address comes with the accept: no getpeername per session.
    tcp::endpoint remote;
    tcp::socket socket = co_await acceptor.async_accept(
        threads_[thread], remote, asio::redirect_error(asio::use_awaitable, ec));
    const auto now = std::chrono::steady_clock::now();
    if (!ec) {
      if (trouble.failures > 0) {
        recorder_.accept_resumed(local, trouble.failures,
                                 std::chrono::duration<double>(now - trouble.since).count());
        trouble = {};
      }
      admit(std::move(socket), remote, thread, local, implicit_tls_[index], listen_texts_[index]);
      continue;
    }
    if (stopped_ || ec == asio::error::operation_aborted) break;
    // EMFILE and friends: the connection stays in the backlog and the
    // listener stays readable, so retrying at once would spin. Breathe, and
    // say so when it starts and then every kAcceptTroubleRepeat, not ten
    // times a second.
    if (trouble.failures++ == 0) trouble.since = now;
    if (trouble.failures == 1 || now - trouble.said >= kAcceptTroubleRepeat) {
      recorder_.accept_failed(local, ec.message(), trouble.failures);
      trouble.said = now;
    }
    asio::steady_timer pause(io_, kAcceptPause);
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

void Server::admit(tcp::socket socket, const tcp::endpoint& remote, std::size_t thread,
                   const std::string& local, bool implicit_tls, const std::string& listen) {
  auto runtime = this->runtime();
  const auto& s = runtime->config->server;
  const auto ip = net::unmap(remote.address());
  if (draining_) {
    // Shutting down: tell the client to come back (or go to another replica).
    refuse(std::move(socket), remote, obs::ConnectionRefusal::Draining,
           "421 4.3.2 " + s.hostname + " Service shutting down, try again later\r\n");
    return;
  }
  const auto over = limiter_.acquire(ip, s.max_connections, s.max_connections_per_ip);
  if (over != ConnectionLimiter::Refusal::None) {
    refuse(std::move(socket), remote,
           over == ConnectionLimiter::Refusal::Global ? obs::ConnectionRefusal::MaxConnections
                                                      : obs::ConnectionRefusal::MaxConnectionsPerIp,
           "421 4.7.0 " + s.hostname + " Too many connections, try again later\r\n");
    return;
  }
  if (s.proxy_protocol && std::none_of(s.proxy_networks.begin(), s.proxy_networks.end(),
                                       [&](const net::Cidr& n) { return n.contains(ip); })) {
    // Only our balancers may tell us who the client is: no reply at all.
    refuse(std::move(socket), remote, obs::ConnectionRefusal::NotInProxyNetworks, "");
    return;
  }
  ConnectionContext context;
  context.runtime = std::move(runtime);
  context.recorder = &recorder_;
  context.thread = thread;
  context.proxy_protocol = s.proxy_protocol;
  context.implicit_tls = implicit_tls;
  context.drain = &drain_notice_;
  context.session_id = id_prefix_ + std::to_string(++session_counter_);
  context.client = {ip, remote.port(), s.trusts(ip)};
  context.local_endpoint = local;
  const auto& auth = context.runtime->config->auth;
  context.auth = {context.runtime->users != nullptr,
                  std::find(auth.plaintext_listen.begin(), auth.plaintext_listen.end(), listen) !=
                      auth.plaintext_listen.end()};
  context.auth_throttle = &auth_throttle_;
  context.password_checker = &password_checker_;
  start_session(std::move(socket), std::move(context));
}

void Server::refuse(tcp::socket socket, const tcp::endpoint& remote, obs::ConnectionRefusal why,
                    std::string reply) {
  recorder_.connection_refused(why, net::endpoint_text(remote.address(), remote.port()));
  if (reply.empty()) {
    boost::system::error_code ec;
    socket.close(ec);
    return;
  }
  auto executor = socket.get_executor();
  asio::co_spawn(executor, refuse_connection(std::move(socket), std::move(reply)), asio::detached);
}

void Server::start_session(tcp::socket socket, ConnectionContext context) {
  const std::string id = context.session_id;
  const auto ip = context.client.address;
  auto executor = socket.get_executor();
  auto stream = std::make_unique<net::ByteStream>(std::move(socket));
  // The slot travels with the session coroutine and frees its place when it
  // ends; a session that throws is logged and closed, the others go on.
  asio::co_spawn(
      executor,
      serve_slot(std::move(stream), std::move(context), ConnectionLimiter::Slot(&limiter_, ip)),
      [this, id](const std::exception_ptr& e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          recorder_.session_crashed(id, ex.what());
        } catch (...) {
          recorder_.session_crashed(id, "unknown exception");
        }
      });
}

}  // namespace stampd::proxy
