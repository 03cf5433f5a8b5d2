#include "proxy/connection.h"

#include <chrono>
#include <vector>

#include "net/host_port.h"
#include "proxy/connection_impl.h"

namespace stampd::proxy::detail {

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

std::string Connection::slower_than_rate() const {
  return "the message came slower than min_data_rate (" +
         std::to_string(config_.server.min_data_rate) + " octets/s)";
}

asio::awaitable<net::Result<std::span<const char>>> Connection::read_message_chunk(
    const DataDeadline& deadline, std::uint64_t received) {
  const auto wait = deadline.wait(received, DataDeadline::Clock::now());
  if (wait == DataDeadline::Clock::duration::zero()) {
    co_return net::make_error(net::Errc::Timeout, slower_than_rate());
  }
  auto chunk = co_await reader_.read_chunk(wait);
  if (!chunk && chunk.error().code == net::Errc::Timeout && wait < config_.server.data_timeout) {
    co_return net::make_error(net::Errc::Timeout, slower_than_rate());
  }
  co_return chunk;
}

asio::awaitable<const char*> Connection::data(smtp::Command cmd) {
  if (auto lost = relay_.lost()) {
    reply(*lost);
    co_return nullptr;
  }
  if (auto refused = relay_.data_refused()) {
    reply(*refused);
    co_return nullptr;
  }
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
  if (!co_await flush()) {
    co_await relay_.close();
    co_return "write-failed";
  }
  relay_.begin_data();
  // A message streams through a large buffer; an idle session keeps a small one.
  reader_.reserve(kDataBuffer);
  const DataDeadline deadline(config_.server.data_timeout, config_.server.min_data_rate,
                              DataDeadline::Clock::now());
  std::uint64_t received = 0;
  while (!relay_.data_complete()) {
    auto chunk = co_await read_message_chunk(deadline, received);
    if (!chunk) co_return co_await message_read_failed(chunk.error());
    const std::size_t used = relay_.add(std::string_view(chunk->data(), chunk->size()));
    reader_.consume(used);
    received += used;
  }
  reader_.release();
  const Outcome outcome = co_await relay_.finish();
  reply(outcome.reply);
  co_return nullptr;
}

std::vector<smtp::Command> Connection::pipelined_ahead() const {
  std::vector<smtp::Command> ahead;
  if (!reader_.buffered()) return ahead;
  for (const std::string_view line : reader_.complete_lines(kMaxAhead + 1)) {
    if (line.size() > config_.server.max_command_line_length) break;
    smtp::Command next = smtp::parse_command(line);
    const smtp::Verb verb = next.verb;
    if (verb != smtp::Verb::Rcpt && verb != smtp::Verb::Data) break;
    ahead.push_back(std::move(next));
    if (verb == smtp::Verb::Data) break;
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
      const std::vector<smtp::Command> ahead = pipelined_ahead();
      const smtp::Reply r = co_await relay_.mail(std::move(cmd), ahead);
      reply(r);
      co_return nullptr;
    }
    case smtp::Verb::Rcpt: {
      const std::vector<smtp::Command> ahead = pipelined_ahead();
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

asio::awaitable<bool> Connection::start() {
  if (context_.proxy_protocol && !co_await read_proxy_header()) {
    co_await stream_->shutdown(std::chrono::seconds(1));
    co_return false;
  }
  record_.connected(net::endpoint_text(context_.client.address, context_.client.port),
                    context_.local_endpoint, context_.client.trusted);
  // RFC 8314 §3.3: on an implicit-TLS listener the handshake comes first.
  if (context_.implicit_tls && !co_await handshake(obs::TlsStart::Implicit)) {
    co_await stream_->shutdown(std::chrono::seconds(1));
    record_.disconnected("tls-failed", 0);
    co_return false;
  }
  reply(make_reply(220, "", config_.server.hostname + " ESMTP stampd"));
  if (context_.drain != nullptr) {
    drain_watch_ = context_.drain->watch(stream_->executor(), [this] { on_drain(); });
  }
  co_return true;
}

asio::awaitable<const char*> Connection::next() {
  const auto& s = config_.server;
  // A drain ends a session between transactions at once (RFC 5321 §3.8);
  // what the client already pipelined is answered first.
  if (drain_requested_ && between_transactions() && reader_.complete_lines(1).empty()) {
    reply(make_reply(421, "4.3.2", s.hostname + " Service shutting down, closing connection"));
    co_return "drain";
  }
  // Pipelined commands are answered together (RFC 2920).
  const bool write_now = !reader_.buffered() || out_.size() > 64 * 1024;
  if (write_now) {
    const bool written = co_await flush();
    if (!written) co_return "write-failed";
  }
  idle_ = between_transactions();
  auto line = co_await reader_.read_line(s.max_command_line_length, s.command_timeout);
  idle_ = false;
  if (!line && drain_requested_ && between_transactions()) co_return nullptr;  // the 421 above
  if (line) {
    const char* end_reason = co_await serve(*line);
    if (end_reason == nullptr && session_.state() == smtp::Session::State::Closed) co_return "quit";
    co_return end_reason;
  }
  if (line.error().code == net::Errc::LimitExceeded) {
    const auto r = make_reply(500, "5.5.2", "Line too long");
    session_.note_refusal(r);
    reply(r);
    co_return nullptr;
  }
  if (line.error().code != net::Errc::Timeout) co_return "client-closed";
  reply(make_reply(421, "4.4.2", s.hostname + " Timeout exceeded, closing connection"));
  co_return "timeout";
}

asio::awaitable<void> Connection::run() {
  if (!co_await start()) co_return;
  const char* end_reason = nullptr;
  while (end_reason == nullptr) end_reason = co_await next();
  co_await flush();
  // QUIT upstream aborts anything unfinished there (RFC 5321 §4.1.1.10).
  co_await relay_.close();
  co_await stream_->shutdown(std::chrono::seconds(5));
  record_.disconnected(end_reason, relay_.transactions());
}

}  // namespace stampd::proxy::detail

namespace stampd::proxy {

boost::asio::awaitable<void> serve_connection(std::unique_ptr<net::ByteStream> stream,
                                              ConnectionContext context) {
  detail::Connection connection(std::move(stream), std::move(context));
  co_await connection.run();
}

}  // namespace stampd::proxy
