// server.h: the listening side of stampd: binds every [server] listen
// address, accepts connections under the connection caps and hands each to
// one of the I/O threads in turn, where its session runs to the end (a
// session's handlers never change threads), and drains on shutdown.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "obs/record.h"
#include "proxy/auth_throttle.h"
#include "proxy/connection.h"
#include "proxy/connection_limiter.h"
#include "proxy/runtime.h"

namespace stampd::proxy {

class Server {
 public:
  // Server listens on io and runs sessions on the I/O threads' executors
  // (each a single-threaded io_context; the order numbers the upstream
  // pools); it reports through recorder, which must outlive it.
  Server(boost::asio::io_context& io, std::vector<boost::asio::any_io_executor> threads,
         std::shared_ptr<const Runtime> runtime, obs::Recorder& recorder);

  // listen binds every listen address; throws ConfigError naming the one that failed.
  void listen();
  // start begins accepting.
  void start();
  // drain answers new connections 421, ends the sessions idle between
  // transactions with 421, and lets transactions in flight finish (their
  // sessions then get the 421).
  void drain();
  // stop closes the listeners.
  void stop();
  // join_password_checks waits for the password checks in flight; call it
  // once the I/O threads stopped, before their pending handlers are destroyed.
  void join_password_checks() { password_checker_.join(); }
  // swap_runtime makes new sessions use runtime (a reload).
  void swap_runtime(std::shared_ptr<const Runtime> runtime);
  std::shared_ptr<const Runtime> runtime() const;

  std::size_t active_connections() const { return limiter_.active(); }
  bool draining() const { return draining_; }
  // local_endpoints are the bound addresses ("127.0.0.1:10027"), port 0
  // resolved: listen's, then listen_tls's.
  std::vector<std::string> local_endpoints() const;
  // implicit_tls tells whether listener i (as in local_endpoints) is a listen_tls one.
  bool implicit_tls(std::size_t i) const { return implicit_tls_.at(i); }

 private:
  boost::asio::awaitable<void> accept_loop(std::size_t index);
  // admit starts a session for socket, or refuses it (draining, over a cap,
  // not from a balancer when the PROXY protocol is on); listen is the
  // listener's address as configured; remote is the peer as accept saw it.
  void admit(boost::asio::ip::tcp::socket socket, const boost::asio::ip::tcp::endpoint& remote,
             std::size_t thread, const std::string& local, bool implicit_tls,
             const std::string& listen);
  // bind opens one listener; key names its config key for errors.
  void bind(const std::string& text, const char* key, bool implicit_tls);
  // refuse counts and logs the refusal, then answers reply (none: just close).
  void refuse(boost::asio::ip::tcp::socket socket, const boost::asio::ip::tcp::endpoint& remote,
              obs::ConnectionRefusal why, std::string reply);
  void start_session(boost::asio::ip::tcp::socket socket, ConnectionContext context);

  boost::asio::io_context& io_;
  std::vector<boost::asio::any_io_executor> threads_;
  std::size_t next_thread_ = 0;
  obs::Recorder& recorder_;
  mutable std::mutex runtime_mutex_;
  std::shared_ptr<const Runtime> runtime_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::vector<bool> implicit_tls_;  // per acceptor: TLS before the greeting
  std::vector<std::string>
      listen_texts_;  // per acceptor: as in the config ([auth] plaintext_listen)
  ConnectionLimiter limiter_;
  std::atomic<bool> draining_{false};
  DrainNotice drain_notice_;
  AuthThrottle auth_throttle_;                            // failed AUTHs; outlives reloads
  PasswordChecker password_checker_{password_threads()};  // AUTH hashes, off the I/O threads
  std::atomic<bool> stopped_{false};
  std::atomic<unsigned long> session_counter_{0};
  std::string id_prefix_;
};

}  // namespace stampd::proxy
