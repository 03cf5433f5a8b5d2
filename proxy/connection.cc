#include "proxy/connection.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <vector>

#include "net/host_port.h"
#include "net/line_reader.h"
#include "net/proxy_protocol.h"
#include "net/tls_server.h"
#include "proxy/relay.h"
#include "smtp/command.h"
#include "smtp/sasl.h"

namespace stampd::proxy {

namespace asio = boost::asio;
using smtp::make_reply;

namespace {

constexpr std::size_t kDataBuffer = 64 * 1024;
// At most this many pipelined recipients go upstream in one write.
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
  // pipelined_recipients parses the RCPT commands the client already sent
  // behind the current one (they stay buffered, and are served in turn).
  std::vector<smtp::Command> pipelined_recipients() const;
  asio::awaitable<const char*> data(smtp::Command cmd);
  // bdat reads one BDAT chunk into the message (RFC 3030); skip_chunk reads
  // and drops the chunk of a refused BDAT, so the next command is a command.
  asio::awaitable<const char*> bdat(smtp::Command cmd);
  asio::awaitable<const char*> skip_chunk(std::uint64_t size);
  // refuse_bdat answers a BDAT the session refused, keeping the stream in step.
  asio::awaitable<const char*> refuse_bdat(const smtp::Command& cmd, const smtp::Reply& refusal);
  // message_read_failed ends a message whose client went away or stalled.
  asio::awaitable<const char*> message_read_failed(const net::Error& error);
  // authenticate runs an AUTH exchange (RFC 4954) and checks the
  // credentials, throttled per client address and per user.
  asio::awaitable<const char*> authenticate(smtp::Command cmd);
  // auth_failed answers a wrong password after the failure delay; the
  // connection ends once the address or the user has too many failures.
  asio::awaitable<const char*> auth_failed(const std::string& user, bool known);
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

asio::awaitable<bool> Connection::flush() {
  if (out_.empty()) co_return true;
  auto sent = co_await stream_->write_all(asio::buffer(out_), config_.server.command_timeout);
  out_.clear();
  if (!sent) {
    const std::string error = sent.error().message();
    record_.note(obs::LogLevel::Info, "client-write-failed", {{"error", error}});
    co_return false;
  }
  co_return true;
}

asio::awaitable<const char*> Connection::message_read_failed(const net::Error& error) {
  // RFC 5321 §3.8 / DESIGN: a client that goes away mid-message never
  // causes a partial message upstream.
  co_await relay_.abort(error.message());
  if (error.code != net::Errc::Timeout) co_return "client-closed";
  reply(
      make_reply(421, "4.4.2", config_.server.hostname + " Timeout exceeded, closing connection"));
  co_await flush();
  co_return "timeout";
}

asio::awaitable<const char*> Connection::data(smtp::Command cmd) {
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
  if (!co_await flush()) {
    co_await relay_.close();
    co_return "write-failed";
  }
  relay_.begin_data();
  // A message streams through a large buffer; an idle session keeps a small one.
  reader_.reserve(kDataBuffer);
  while (!relay_.data_complete()) {
    auto chunk = co_await reader_.read_chunk(config_.server.data_timeout);
    if (!chunk) co_return co_await message_read_failed(chunk.error());
    reader_.consume(relay_.add(std::string_view(chunk->data(), chunk->size())));
  }
  reader_.release();
  const Outcome outcome = co_await relay_.finish();
  reply(outcome.reply);
  co_return nullptr;
}

asio::awaitable<const char*> Connection::bdat(smtp::Command cmd) {
  if (session_.state() == smtp::Session::State::HaveRcpt) relay_.begin_chunks();
  session_.apply(cmd);
  if (cmd.chunk_size > 0) reader_.reserve(kDataBuffer);
  // Exactly chunk_size octets, whatever they hold; the bytes after them are
  // the next command, pipelined or not (RFC 3030 §2).
  for (std::uint64_t left = cmd.chunk_size; left > 0;) {
    auto chunk = co_await reader_.read_chunk(config_.server.data_timeout);
    if (!chunk) co_return co_await message_read_failed(chunk.error());
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk->size()));
    relay_.add_chunk(std::string_view(chunk->data(), take));
    reader_.consume(take);
    left -= take;
  }
  if (!cmd.last_chunk) {
    reply(session_.local_reply(cmd));
    co_return nullptr;
  }
  reader_.release();
  relay_.end_chunks();
  const Outcome outcome = co_await relay_.finish();
  reply(outcome.reply);
  co_return nullptr;
}

asio::awaitable<const char*> Connection::skip_chunk(std::uint64_t size) {
  for (std::uint64_t left = size; left > 0;) {
    auto chunk = co_await reader_.read_chunk(config_.server.data_timeout);
    if (!chunk) {
      if (chunk.error().code != net::Errc::Timeout) co_return "client-closed";
      reply(make_reply(421, "4.4.2",
                       config_.server.hostname + " Timeout exceeded, closing connection"));
      co_return "timeout";
    }
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk->size()));
    reader_.consume(take);
    left -= take;
  }
  co_return nullptr;
}

asio::awaitable<const char*> Connection::refuse_bdat(const smtp::Command& cmd,
                                                     const smtp::Reply& refusal) {
  if (cmd.syntax_error) {
    // The chunk's size is unknown, so where the next command starts is too:
    // hanging up is the only way not to run chunk octets as commands.
    reply(refusal);
    co_return "bdat-syntax";
  }
  // RFC 3030 §2: a refused chunk's octets are still read and dropped. A
  // refusal inside a transaction (too big) fails the whole message; the
  // chunks the client pipelined behind it then find no transaction and are
  // read and refused in turn.
  const bool in_transaction = session_.state() == smtp::Session::State::HaveRcpt ||
                              session_.state() == smtp::Session::State::InChunks;
  if (in_transaction) co_await relay_.refuse_chunks(refusal);
  reply(refusal);
  co_return co_await skip_chunk(cmd.chunk_size);
}

asio::awaitable<const char*> Connection::auth_failed(const std::string& user, bool known) {
  const std::string ip = context_.client.address.to_string();
  const std::size_t failures = context_.auth_throttle->failed(ip, user, throttle_limits());
  // A delay on every failure makes guessing slow even below the limit.
  asio::steady_timer delay(stream_->executor(), config_.auth.failure_delay);
  boost::system::error_code ec;
  co_await delay.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  const auto r = make_reply(535, "5.7.8", "Authentication credentials invalid");
  // An unknown name may be a password typed in the wrong field: not logged.
  record_.auth(obs::AuthResult::Failed, mechanism_, known ? user : "", r.summary());
  reply(r);
  if (failures >= config_.auth.max_failures) co_return "auth-failures";
  co_return nullptr;
}

asio::awaitable<const char*> Connection::authenticate(smtp::Command cmd) {
  const std::string ip = context_.client.address.to_string();
  mechanism_.clear();
  if (context_.auth_throttle->blocked(ip, "", throttle_limits())) {
    const auto r = make_reply(454, "4.7.0", "Too many failed authentications, try again later");
    record_.auth(obs::AuthResult::Throttled, "", "", r.summary());
    reply(r);
    co_return "auth-throttled";
  }
  std::optional<smtp::SaslExchange> exchange;
  smtp::SaslStep step = smtp::SaslExchange::start(cmd.argument, exchange);
  if (exchange) mechanism_ = smtp::mechanism_name(exchange->mechanism());
  while (step.kind == smtp::SaslStep::Kind::Challenge) {
    reply(step.reply);
    if (!co_await flush()) co_return "write-failed";
    auto line = co_await reader_.read_line(config_.server.max_command_line_length,
                                           config_.server.command_timeout);
    if (!line) {
      record_.auth(obs::AuthResult::Aborted, mechanism_, "", "client gone");
      if (line.error().code == net::Errc::LimitExceeded) {
        reply(make_reply(500, "5.5.6", "Authentication exchange line too long"));
        co_return "auth-line-too-long";
      }
      co_return "client-closed";
    }
    step = exchange->feed(*line);
  }
  if (step.kind == smtp::SaslStep::Kind::Failed) {
    if (step.reply.code == 535) co_return co_await auth_failed("", false);
    record_.auth(obs::AuthResult::Aborted, mechanism_, "", step.reply.summary());
    reply(step.reply);
    co_return nullptr;
  }
  smtp::Credentials credentials = std::move(step.credentials);
  const auto& users = *context_.runtime->users;
  const bool known = users.contains(credentials.username);
  const bool user_blocked =
      context_.auth_throttle->blocked(ip, credentials.username, throttle_limits());
  // A locked user is not checked at all: the answer says nothing about the password.
  const bool ok = !user_blocked && users.verify(credentials.username, credentials.password);
  OPENSSL_cleanse(credentials.password.data(), credentials.password.size());
  if (user_blocked) {
    const auto r = make_reply(454, "4.7.0", "Too many failed authentications, try again later");
    record_.auth(obs::AuthResult::Throttled, mechanism_, known ? credentials.username : "",
                 r.summary());
    reply(r);
    co_return "auth-throttled";
  }
  if (!ok) co_return co_await auth_failed(credentials.username, known);
  context_.auth_throttle->succeeded(credentials.username);
  session_.set_login(credentials.username);
  const auto r = make_reply(235, "2.7.0", "Authentication successful");
  record_.auth(obs::AuthResult::Ok, mechanism_, credentials.username, r.summary());
  reply(r);
  co_return nullptr;
}

std::vector<smtp::Command> Connection::pipelined_recipients() const {
  std::vector<smtp::Command> ahead;
  if (!reader_.buffered()) return ahead;
  for (const std::string_view line : reader_.complete_lines(kMaxAhead)) {
    if (line.size() > config_.server.max_command_line_length) break;
    smtp::Command next = smtp::parse_command(line);
    if (next.verb != smtp::Verb::Rcpt) break;
    ahead.push_back(std::move(next));
  }
  return ahead;
}

asio::awaitable<const char*> Connection::dispatch(smtp::Command cmd) {
  switch (cmd.verb) {
    case smtp::Verb::Helo:
    case smtp::Verb::Ehlo:
      co_await relay_.hello();
      break;
    case smtp::Verb::Mail: {
      const std::vector<smtp::Command> ahead = pipelined_recipients();
      const smtp::Reply r = co_await relay_.mail(std::move(cmd), ahead);
      reply(r);
      co_return nullptr;
    }
    case smtp::Verb::Rcpt: {
      const std::vector<smtp::Command> ahead = pipelined_recipients();
      const smtp::Reply r = co_await relay_.rcpt(std::move(cmd), ahead);
      reply(r);
      co_return nullptr;
    }
    case smtp::Verb::Data:
      co_return co_await data(std::move(cmd));
    case smtp::Verb::Starttls:
      co_return co_await starttls(std::move(cmd));
    case smtp::Verb::Bdat:
      co_return co_await bdat(std::move(cmd));
    case smtp::Verb::Auth:
      co_return co_await authenticate(std::move(cmd));
    case smtp::Verb::Rset:
      co_await relay_.reset();
      break;
    default:  // QUIT, NOOP, VRFY, HELP, ...: answered here
      break;
  }
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
  co_return nullptr;
}

asio::awaitable<const char*> Connection::serve(std::string_view line) {
  smtp::Command cmd = smtp::parse_command(line);
  session_.count(cmd);
  record_.command(static_cast<std::size_t>(cmd.verb));
  if (auto refusal = session_.check(cmd)) {
    session_.note_refusal(*refusal);
    if (record_.debug_enabled()) {
      const std::string summary = refusal->summary();
      record_.note(obs::LogLevel::Debug, "refused",
                   {{"command", smtp::verb_name(cmd.verb)}, {"reply", summary}});
    }
    if (refusal->code == 421) {
      reply(*refusal);
      co_return "limit";
    }
    if (cmd.verb == smtp::Verb::Bdat) co_return co_await refuse_bdat(cmd, *refusal);
    reply(*refusal);
    co_return nullptr;
  }
  co_return co_await dispatch(std::move(cmd));
}

asio::awaitable<const char*> Connection::starttls(smtp::Command cmd) {
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
  if (!co_await flush()) co_return "write-failed";
  // RFC 3207 §4.2 (CVE-2011-0411): what the client sent behind STARTTLS came
  // in clear, where anyone on the path could have put it; it must not be
  // read as if it had come over TLS.
  if (const std::size_t dropped = reader_.buffered_bytes(); dropped > 0) {
    reader_.discard();
    const std::string bytes = std::to_string(dropped);
    record_.note(obs::LogLevel::Warning, "starttls-input-discarded", {{"bytes", bytes}});
  }
  if (!co_await handshake(obs::TlsStart::Starttls)) co_return "tls-failed";
  co_return nullptr;
}

asio::awaitable<bool> Connection::handshake(obs::TlsStart start) {
  if (tls() == nullptr) {
    // A listen_tls listener after a reload that took every certificate away.
    record_.tls_failed(start, obs::TlsFailure::Error, "no certificate configured");
    co_return false;
  }
  auto done =
      co_await stream_->start_tls_server(tls()->context(), config_.server.tls_handshake_timeout);
  if (!done) {
    const auto& code = done.error().code;
    const auto is = [&](boost::system::error_code want) { return code == std::error_code(want); };
    auto failure = obs::TlsFailure::Error;
    if (code == net::Errc::Timeout) {
      failure = obs::TlsFailure::Timeout;
    } else if (is(asio::error::eof) || is(asio::error::connection_reset) ||
               is(asio::ssl::error::stream_truncated)) {
      failure = obs::TlsFailure::Closed;  // the client went away mid-handshake
    }
    const std::string detail = done.error().message();
    record_.tls_failed(start, failure, detail);
    co_return false;
  }
  smtp::TlsInfo info{stream_->tls_protocol(), stream_->tls_cipher(), stream_->tls_server_name()};
  record_.tls_started(start, info.protocol, info.cipher, info.server_name);
  session_.tls_started(std::move(info));
  co_return true;
}

asio::awaitable<bool> Connection::read_proxy_header() {
  const std::string balancer = net::endpoint_text(context_.client.address, context_.client.port);
  // Read from the stream, not the line reader, and never past the header:
  // on a listen_tls listener the TLS handshake follows it at once.
  std::array<char, net::kMaxProxyHeader> header{};
  std::size_t have = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    const std::string_view seen(header.data(), have);
    const auto parsed = net::parse_proxy_header(seen);
    const bool too_long = parsed.status == net::ProxyParse::Status::NeedMore &&
                          have + net::proxy_header_wanted(seen) > header.size();
    if (parsed.status == net::ProxyParse::Status::Invalid || too_long) {
      const std::string error = parsed.error.empty() ? "too long" : parsed.error;
      record_.note(obs::LogLevel::Warning, "proxy-header-invalid",
                   {{"balancer", balancer}, {"error", error}});
      co_return false;
    }
    if (parsed.status == net::ProxyParse::Status::Done) {
      if (parsed.header.source) {
        const net::IpAddress address = net::unmap(*parsed.header.source);
        context_.client = {address, parsed.header.source_port, config_.server.trusts(address)};
        const std::string client =
            net::endpoint_text(context_.client.address, context_.client.port);
        record_.note(obs::LogLevel::Debug, "proxy-header",
                     {{"balancer", balancer}, {"client", client}});
        session_.set_client(context_.client);
      }
      co_return true;
    }
    const auto left = deadline - std::chrono::steady_clock::now();
    auto n = co_await stream_->read_some(
        asio::buffer(header.data() + have, net::proxy_header_wanted(seen)),
        std::max<net::Duration>(left, std::chrono::milliseconds(1)));
    if (!n) {
      const std::string error = n.error().message();
      record_.note(obs::LogLevel::Info, "proxy-header-missing", {{"error", error}});
      co_return false;
    }
    have += *n;
  }
}

asio::awaitable<void> Connection::run() {
  const auto& s = config_.server;
  if (context_.proxy_protocol && !co_await read_proxy_header()) {
    co_await stream_->shutdown(std::chrono::seconds(1));
    co_return;
  }
  record_.connected(net::endpoint_text(context_.client.address, context_.client.port),
                    context_.local_endpoint, context_.client.trusted);
  // RFC 8314 §3.3: on an implicit-TLS listener the handshake comes first.
  if (context_.implicit_tls && !co_await handshake(obs::TlsStart::Implicit)) {
    co_await stream_->shutdown(std::chrono::seconds(1));
    record_.disconnected("tls-failed", 0);
    co_return;
  }
  reply(make_reply(220, "", s.hostname + " ESMTP stampd"));
  if (context_.drain != nullptr) {
    drain_watch_ = context_.drain->watch(stream_->executor(), [this] { on_drain(); });
  }
  const char* end_reason = nullptr;
  while (end_reason == nullptr) {
    // A drain ends a session between transactions at once (RFC 5321 §3.8);
    // what the client already pipelined is answered first.
    if (drain_requested_ && between_transactions() && reader_.complete_lines(1).empty()) {
      reply(make_reply(421, "4.3.2", s.hostname + " Service shutting down, closing connection"));
      end_reason = "drain";
      break;
    }
    // Pipelined commands are answered together (RFC 2920).
    const bool write_now = !reader_.buffered() || out_.size() > 64 * 1024;
    if (write_now) {
      const bool written = co_await flush();
      if (!written) {
        end_reason = "write-failed";
        break;
      }
    }
    idle_ = between_transactions();
    auto line = co_await reader_.read_line(s.max_command_line_length, s.command_timeout);
    idle_ = false;
    if (!line && drain_requested_ && between_transactions()) continue;  // the 421 above
    if (line) {
      end_reason = co_await serve(*line);
      if (end_reason == nullptr && session_.state() == smtp::Session::State::Closed) {
        end_reason = "quit";
      }
    } else if (line.error().code == net::Errc::LimitExceeded) {
      const auto r = make_reply(500, "5.5.2", "Line too long");
      session_.note_refusal(r);
      reply(r);
    } else if (line.error().code == net::Errc::Timeout) {
      reply(make_reply(421, "4.4.2", s.hostname + " Timeout exceeded, closing connection"));
      end_reason = "timeout";
    } else {
      end_reason = "client-closed";
    }
  }
  co_await flush();
  // QUIT upstream aborts anything unfinished there (RFC 5321 §4.1.1.10).
  co_await relay_.close();
  co_await stream_->shutdown(std::chrono::seconds(5));
  record_.disconnected(end_reason, relay_.transactions());
}

}  // namespace

asio::awaitable<void> serve_connection(std::unique_ptr<net::ByteStream> stream,
                                       ConnectionContext context) {
  Connection connection(std::move(stream), std::move(context));
  co_await connection.run();
}

}  // namespace stampd::proxy
