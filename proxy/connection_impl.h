// connection_impl.h: the Connection class behind serve_connection, shared
// by the files that define its parts: connection.cc (the command loop),
// connection_start.cc (the PROXY header), connection_tls.cc (STARTTLS and
// the handshake), connection_chunks.cc (BDAT) and connection_auth.cc (AUTH).
// Private to proxy/; nothing outside includes it.
#pragma once

#include <openssl/crypto.h>

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <vector>

#include "net/byte_stream.h"
#include "net/host_port.h"
#include "net/line_reader.h"
#include "net/proxy_protocol.h"
#include "net/tls_server.h"
#include "obs/record.h"
#include "proxy/connection.h"
#include "proxy/data_deadline.h"
#include "proxy/relay.h"
#include "smtp/command.h"
#include "smtp/sasl.h"

namespace stampd::proxy::detail {

namespace asio = boost::asio;
using smtp::make_reply;

constexpr std::size_t kDataBuffer = 64 * 1024;
// At most this many pipelined recipients (and DATA) go upstream in one write.
constexpr std::size_t kMaxAhead = 100;

class Connection {
 public:
  Connection(std::unique_ptr<net::ByteStream> stream, ConnectionContext context)
      : context_(std::move(context)),
        config_(*context_.runtime->config),
        stream_(std::move(stream)),
        reader_(*stream_, kDataBuffer),
        session_(smtp::SessionLimits{config_.server.max_recipients, config_.server.max_message_size,
                                     config_.server.max_commands, config_.server.max_errors},
                 context_.client, config_.server.hostname),
        record_(*context_.recorder, context_.session_id),
        relay_(context_.runtime, context_.runtime->upstreams->pool(context_.thread), session_,
               record_) {
    // STARTTLS where a certificate is and TLS is not already on (RFC 8314 listeners).
    session_.set_tls_policy({.starttls = tls() != nullptr && !context_.implicit_tls,
                             .required = config_.server.require_tls});
    session_.set_auth_policy(context_.auth);
  }

  asio::awaitable<void> run();

 private:
  // start reads the PROXY header and runs an implicit-TLS handshake where
  // the listener wants them, then greets; false when the connection ended.
  asio::awaitable<bool> start();
  // next serves one command line (or a drain, timeout or error); it returns
  // why the connection must end, or nullptr to go on.
  asio::awaitable<const char*> next();

  // read_proxy_header takes the PROXY protocol header off the connection.
  asio::awaitable<bool> read_proxy_header();
  // tls is the session's certificates (those of the runtime it started with).
  const net::ServerTls* tls() const { return context_.runtime->server_tls.get(); }
  // starttls answers STARTTLS and runs the handshake (RFC 3207).
  asio::awaitable<const char*> starttls(smtp::Command cmd);
  // handshake runs the server side of a TLS handshake and starts the
  // session over on success; on failure the connection must end.
  asio::awaitable<bool> handshake(obs::TlsStart start);
  asio::awaitable<bool> flush();
  void reply(const smtp::Reply& r) {
    record_.reply(r.code);
    out_ += r.wire();
  }
  // serve answers one command line; it returns why the connection must end,
  // or nullptr to go on.
  asio::awaitable<const char*> serve(std::string_view line);
  asio::awaitable<const char*> dispatch(smtp::Command cmd);
  // pipelined_ahead parses the RCPT commands the client already sent behind
  // the current one, and the DATA right behind them (they stay buffered,
  // and are served in turn).
  std::vector<smtp::Command> pipelined_ahead() const;
  asio::awaitable<const char*> data(smtp::Command cmd);
  // bdat reads one BDAT chunk into the message (RFC 3030); skip_chunk reads
  // and drops the chunk of a refused BDAT, so the next command is a command.
  asio::awaitable<const char*> bdat(smtp::Command cmd);
  asio::awaitable<const char*> skip_chunk(std::uint64_t size);
  // refuse_bdat answers a BDAT the session refused, keeping the stream in step.
  asio::awaitable<const char*> refuse_bdat(const smtp::Command& cmd, const smtp::Reply& refusal);
  // read_message_chunk reads message bytes (DATA or a BDAT chunk) within
  // deadline; received is what the message brought so far.
  asio::awaitable<net::Result<std::span<const char>>> read_message_chunk(
      const DataDeadline& deadline, std::uint64_t received);
  std::string slower_than_rate() const;
  // message_read_failed ends a message whose client went away or stalled.
  asio::awaitable<const char*> message_read_failed(const net::Error& error);
  // authenticate runs an AUTH exchange (RFC 4954) and checks the
  // credentials, throttled per client address and per user.
  asio::awaitable<const char*> authenticate(smtp::Command cmd);
  // auth_failed answers a wrong password after the failure delay; the
  // connection ends once the address or the user has too many failures.
  asio::awaitable<const char*> auth_failed(const std::string& user, bool known);
  // check_password verifies credentials against users on the server's
  // password pool, so a slow hash never stalls this thread's sessions.
  asio::awaitable<bool> check_password(std::shared_ptr<const UserDb> users,
                                       const smtp::Credentials& credentials);
  AuthThrottle::Limits throttle_limits() const {
    return {config_.auth.max_failures,
            std::chrono::duration_cast<AuthThrottle::Clock::duration>(config_.auth.failure_window)};
  }

  // on_drain ends the wait for a command of a session between transactions.
  void on_drain() {
    drain_requested_ = true;
    if (idle_) stream_->cancel();
  }
  // between_transactions tells whether the session may end for a drain now.
  bool between_transactions() const {
    const auto state = session_.state();
    return state == smtp::Session::State::Connected || state == smtp::Session::State::Greeted;
  }

  ConnectionContext context_;
  const Config& config_;
  std::unique_ptr<net::ByteStream> stream_;
  net::LineReader reader_;
  smtp::Session session_;
  obs::SessionRecord record_;
  Relay relay_;
  std::string out_;
  std::shared_ptr<DrainNotice::Watch> drain_watch_;
  bool drain_requested_ = false;
  bool idle_ = false;      // waiting for a command between transactions
  std::string mechanism_;  // of the AUTH exchange in progress, for its log line
};

}  // namespace stampd::proxy::detail
