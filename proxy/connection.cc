#include "proxy/connection.h"

#include <algorithm>
#include <array>
#include <chrono>

#include "net/line_reader.h"
#include "net/proxy_protocol.h"
#include "obs/health.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "proxy/message_assembler.h"
#include "proxy/spool.h"
#include "smtp/command.h"
#include "smtp/data_decoder.h"

namespace stampd::proxy {

namespace asio = boost::asio;

namespace {

using Clock = std::chrono::steady_clock;

std::string client_text(const smtp::ClientInfo& c) {
  const auto ip = net::unmap(c.address);
  return (ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string()) + ":" + std::to_string(c.port);
}

const char* verb_name(smtp::Verb verb) {
  switch (verb) {
    case smtp::Verb::Helo:
      return "HELO";
    case smtp::Verb::Ehlo:
      return "EHLO";
    case smtp::Verb::Mail:
      return "MAIL";
    case smtp::Verb::Rcpt:
      return "RCPT";
    case smtp::Verb::Data:
      return "DATA";
    case smtp::Verb::Rset:
      return "RSET";
    case smtp::Verb::Noop:
      return "NOOP";
    case smtp::Verb::Quit:
      return "QUIT";
    case smtp::Verb::Vrfy:
      return "VRFY";
    case smtp::Verb::Help:
      return "HELP";
    case smtp::Verb::Xforward:
      return "XFORWARD";
    case smtp::Verb::Starttls:
      return "STARTTLS";
    case smtp::Verb::Auth:
      return "AUTH";
    case smtp::Verb::Bdat:
      return "BDAT";
    case smtp::Verb::Expn:
      return "EXPN";
    case smtp::Verb::Etrn:
      return "ETRN";
    case smtp::Verb::Turn:
      return "TURN";
    case smtp::Verb::Unknown:
      return "unknown";
  }
  return "?";
}

// command_counter and reply_counter find their series once, not per line.
prometheus::Counter& command_counter(smtp::Verb verb) {
  static const auto counters = [] {
    std::array<prometheus::Counter*, static_cast<std::size_t>(smtp::Verb::Unknown) + 1> all{};
    for (std::size_t i = 0; i < all.size(); ++i) {
      all[i] = &obs::metrics().commands.Add({{"verb", verb_name(static_cast<smtp::Verb>(i))}});
    }
    return all;
  }();
  return *counters[static_cast<std::size_t>(verb)];
}

prometheus::Counter& reply_counter(int code) {
  static const auto counters = [] {
    std::array<prometheus::Counter*, 4> all{};
    for (int c = 2; c <= 5; ++c)
      all[c - 2] = &obs::metrics().replies.Add({{"class", obs::Metrics::reply_class(c * 100)}});
    return all;
  }();
  return *counters[std::clamp(code / 100, 2, 5) - 2];
}

class Connection {
 public:
  Connection(std::unique_ptr<net::ByteStream> stream, ConnectionContext context)
      : context_(std::move(context)),
        config_(*context_.runtime->config),
        stream_(std::move(stream)),
        reader_(*stream_, 64 * 1024),
        session_(smtp::SessionLimits{config_.server.max_recipients, config_.server.max_message_size,
                                     config_.server.max_commands, config_.server.max_errors},
                 context_.client, config_.server.hostname),
        upstream_(context_.runtime->upstreams->make(stream_->executor())),
        spool_(config_.server.spool_memory, config_.server.spool_dir) {}

  asio::awaitable<void> run();

 private:
  // read_proxy_header takes the PROXY protocol header off the connection.
  asio::awaitable<bool> read_proxy_header();
  asio::awaitable<bool> flush();
  void reply(const smtp::Reply& r) {
    reply_counter(r.code).Increment();
    out_ += r.wire();
  }
  static void observe_upstream(Clock::time_point asked) {
    obs::metrics().upstream_reply_duration.Observe(
        std::chrono::duration<double>(Clock::now() - asked).count());
  }
  // open_upstream connects (timed, counted) and returns the capabilities.
  asio::awaitable<std::optional<smtp::UpstreamCapabilities>> open_upstream();
  asio::awaitable<void> on_hello(const smtp::Command& cmd);
  asio::awaitable<void> on_mail(const smtp::Command& cmd);
  asio::awaitable<void> on_rcpt(const smtp::Command& cmd);
  // on_data returns false when the connection must end.
  asio::awaitable<bool> on_data(const smtp::Command& cmd);
  asio::awaitable<void> on_rset(const smtp::Command& cmd);
  void upstream_trouble(std::string_view step);
  void log_message(const char* outcome, const smtp::Reply& r);

  ConnectionContext context_;
  const Config& config_;
  std::unique_ptr<net::ByteStream> stream_;
  net::LineReader reader_;
  smtp::Session session_;
  std::unique_ptr<Upstream> upstream_;
  Spool spool_;
  std::string out_;
  bool upstream_opened_ = false;
  unsigned message_count_ = 0;
  // The transaction in progress.
  Transaction tx_;
  std::vector<std::unique_ptr<Stage>> stages_;
  Clock::time_point tx_start_;
  std::uint64_t message_size_ = 0;
};

asio::awaitable<bool> Connection::flush() {
  if (out_.empty()) co_return true;
  auto sent = co_await stream_->write_all(asio::buffer(out_), config_.server.command_timeout);
  out_.clear();
  if (!sent) {
    obs::log_info("client-write-failed",
                  {{"session", context_.session_id}, {"error", sent.error().message()}});
    co_return false;
  }
  co_return true;
}

void Connection::upstream_trouble(std::string_view step) {
  obs::metrics()
      .upstream_errors.Add({{"kind", to_string(upstream_->last_error_kind())}})
      .Increment();
  obs::health().upstream_result(false);
  obs::log_warning("upstream-error", {{"session", context_.session_id},
                                      {"step", step},
                                      {"kind", to_string(upstream_->last_error_kind())},
                                      {"error", upstream_->last_error()}});
  // The upstream's transaction died with its connection: so does ours.
  if (!upstream_->connected()) {
    upstream_opened_ = false;
    session_.reset_transaction();
    stages_.clear();
  }
}

void Connection::log_message(const char* outcome, const smtp::Reply& r) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(Clock::now() - tx_start_).count();
  const std::string rcpts = std::to_string(session_.envelope().recipients.size());
  const std::string size = std::to_string(message_size_);
  const std::string duration = std::to_string(ms);
  const std::string from = "<" + session_.envelope().mail_from + ">";
  const std::string upstream_reply = r.summary();
  const std::string client = client_text(context_.client);
  const std::string peer = upstream_->peer();
  std::vector<obs::LogField> fields{{"session", context_.session_id},
                                    {"msg", tx_.id},
                                    {"outcome", outcome},
                                    {"client", client},
                                    {"from", from},
                                    {"rcpts", rcpts},
                                    {"size", size},
                                    {"upstream", peer},
                                    {"reply", upstream_reply},
                                    {"duration_ms", duration}};
  // Behind a content_filter the client is the MTA; XFORWARD names the real one.
  const auto& xforward = session_.xforward();
  if (const auto* addr = xforward.find("ADDR")) fields.emplace_back("xforward_addr", *addr);
  if (const auto* helo = xforward.find("HELO")) fields.emplace_back("xforward_helo", *helo);
  for (const auto& [k, v] : tx_.log_fields) fields.emplace_back(k, v);
  // Counted before it is logged: whoever reads the log line and then
  // scrapes /metrics finds the message counted.
  auto& m = obs::metrics();
  m.messages.Add({{"outcome", outcome}}).Increment();
  m.message_size.Observe(static_cast<double>(message_size_));
  m.bytes_received.Increment(static_cast<double>(message_size_));
  m.relay_duration.Observe(static_cast<double>(ms) / 1000.0);
  obs::Logger::write(LogLevel::Info, "message", fields);
}

asio::awaitable<std::optional<smtp::UpstreamCapabilities>> Connection::open_upstream() {
  const auto start = Clock::now();
  auto caps = co_await upstream_->open();
  if (caps) {
    upstream_opened_ = true;
    session_.set_upstream_capabilities(*caps);
    obs::health().upstream_result(true);
    obs::metrics().upstream_connect_duration.Observe(
        std::chrono::duration<double>(Clock::now() - start).count());
  } else {
    upstream_trouble("connect");
  }
  co_return caps;
}

asio::awaitable<void> Connection::on_hello(const smtp::Command& cmd) {
  // A new EHLO ends any transaction (RFC 5321 §4.1.4).
  if (session_.state() == smtp::Session::State::HaveMail ||
      session_.state() == smtp::Session::State::HaveRcpt) {
    co_await upstream_->reset();
    stages_.clear();
  }
  // Only clients that may relay cause an upstream connection; its EHLO tells
  // which extensions we may offer.
  if (session_.client().trusted && !upstream_opened_) {
    (void)co_await open_upstream();
  }
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
}

asio::awaitable<void> Connection::on_mail(const smtp::Command& cmd) {
  tx_ = Transaction{};
  tx_.id = context_.session_id + "." + std::to_string(++message_count_);
  tx_.session = &session_;
  tx_.mail_from = cmd.argument;
  tx_start_ = Clock::now();
  message_size_ = 0;
  stages_.clear();
  for (const auto& factory : context_.runtime->stage_factories) {
    for (auto& stage : factory->make_stages()) stages_.push_back(std::move(stage));
  }
  for (auto& stage : stages_) {
    Verdict verdict = co_await stage->on_mail_from(tx_);
    if (verdict.stopped()) {
      const std::string summary = verdict.reply->summary();
      std::vector<obs::LogField> fields{{"session", context_.session_id},
                                        {"msg", tx_.id},
                                        {"stage", stage->name()},
                                        {"reason", verdict.reason},
                                        {"reply", summary}};
      // What the stages found (spf=, spf_ip=, spf_action=...): a refusal
      // names the address that was checked, as event=message does.
      for (const auto& [k, v] : tx_.log_fields) fields.emplace_back(k, v);
      obs::Logger::write(LogLevel::Info, "mail-refused", fields);
      reply(*verdict.reply);
      stages_.clear();
      co_return;
    }
  }
  // The connection may have died since (a failed RSET, an upstream that
  // timed out): open a new one rather than fail this MAIL. (A named bool:
  // g++ 12 miscompiled this coroutine with the || inside the if.)
  const bool reopen = !upstream_opened_ || !upstream_->connected();
  if (reopen) {
    auto caps = co_await open_upstream();
    if (!caps) {
      reply(smtp::make_reply(451, "4.4.1", "Upstream server unavailable, try again later"));
      co_return;
    }
    // The new connection may offer less than the one we advertised for.
    if (auto refusal = session_.check(cmd)) {
      reply(*refusal);
      co_return;
    }
  }
  const auto asked = Clock::now();
  smtp::Reply r = co_await upstream_->mail(session_, cmd);
  observe_upstream(asked);
  // (Not after a 421: then the upstream itself asked us to go away.)
  const bool idle_drop = !r.positive() && r.code != 421 && !upstream_->connected() &&
                         upstream_->last_error_kind() == UpstreamErrorKind::Dropped;
  if (idle_drop) {
    // Servers close idle connections (Postfix after 300 s): one fresh try
    // before the client hears of it.
    upstream_trouble("mail");
    auto caps = co_await open_upstream();
    if (caps) r = co_await upstream_->mail(session_, cmd);
  }
  r = smtp::upstream_reply_for_client(std::move(r));
  if (r.positive()) {
    session_.apply(cmd);
  } else if (!upstream_->connected()) {
    upstream_trouble("mail");
  }
  obs::log_debug("mail", {{"session", context_.session_id},
                          {"msg", tx_.id},
                          {"from", cmd.argument},
                          {"reply", r.summary()}});
  reply(r);
}

asio::awaitable<void> Connection::on_rcpt(const smtp::Command& cmd) {
  // Named, not a temporary: g++ 12 mis-destroys aggregate temporaries that
  // live across a co_await.
  const smtp::Recipient recipient{cmd.argument, cmd.params};
  const auto asked = Clock::now();
  smtp::Reply r = co_await upstream_->rcpt(recipient);
  observe_upstream(asked);
  r = smtp::upstream_reply_for_client(std::move(r));
  if (r.positive()) {
    session_.apply(cmd);
  } else if (!upstream_->connected()) {
    upstream_trouble("rcpt");
  }
  obs::log_debug("rcpt", {{"session", context_.session_id},
                          {"msg", tx_.id},
                          {"to", cmd.argument},
                          {"reply", r.summary()}});
  reply(r);
}

asio::awaitable<void> Connection::on_rset(const smtp::Command& cmd) {
  co_await upstream_->reset();
  stages_.clear();
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
}

asio::awaitable<bool> Connection::on_data(const smtp::Command& cmd) {
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
  if (!co_await flush()) {
    co_await upstream_->close();
    co_return false;
  }
  const auto& s = config_.server;
  smtp::DataDecoder decoder({s.bare_line_endings == BareLineEndings::Normalize,
                             s.max_data_line_length, session_.message_size_limit()});
  spool_.clear();
  MessageAssembler assembler(tx_, stages_, spool_, s.max_header_size);
  std::optional<net::Error> local_error;
  std::string decoded;
  decoded.reserve(72 * 1024);
  while (!decoder.done()) {
    auto chunk = co_await reader_.read_chunk(s.data_timeout);
    if (!chunk) {
      // RFC 5321 §3.8 / DESIGN: a client that goes away mid-DATA never
      // causes a partial message upstream. QUIT aborts the transaction there.
      co_await upstream_->close();
      message_size_ = decoder.size();
      log_message("aborted",
                  smtp::make_reply(0, "", "client " + chunk.error().message() + " during DATA"));
      if (chunk.error().code == net::Errc::Timeout) {
        reply(smtp::make_reply(421, "4.4.2",
                               config_.server.hostname + " Timeout exceeded, closing connection"));
        co_await flush();
      }
      co_return false;
    }
    const std::size_t used = decoder.feed(std::string_view(chunk->data(), chunk->size()), decoded);
    reader_.consume(used);
    if (!decoded.empty()) {
      if (!local_error) {
        if (auto added = assembler.add(decoded); !added) local_error = std::move(added).error();
      }
      decoded.clear();
    }
  }
  message_size_ = decoder.size();
  if (!local_error) {
    if (auto finished = assembler.finish(); !finished) local_error = std::move(finished).error();
  }

  smtp::Reply r;
  const char* outcome = "rejected";
  switch (decoder.problem()) {
    case smtp::DataDecoder::Problem::TooBig:
      r = smtp::make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
      break;
    case smtp::DataDecoder::Problem::LineTooLong:
      r = smtp::make_reply(
          550, "5.5.2",
          "Message has a line longer than " + std::to_string(s.max_data_line_length) + " octets");
      break;
    case smtp::DataDecoder::Problem::BareLineEnding:
      r = smtp::make_reply(550, "5.6.0", "Message has a bare CR or LF; lines must end with CRLF");
      break;
    case smtp::DataDecoder::Problem::None:
      break;
  }
  if (r.code == 0 && local_error) {
    if (local_error->code == net::Errc::LimitExceeded) {
      r = smtp::make_reply(552, "5.3.4", "Message header too large");
    } else {
      r = smtp::make_reply(451, "4.3.0", "Local error, try again later");
      outcome = "tempfailed";
      obs::log_error(
          "spool-error",
          {{"session", context_.session_id}, {"msg", tx_.id}, {"error", local_error->message()}});
    }
  }
  if (r.code == 0) {
    Message message{assembler.header_block(), &spool_, spool_.size()};
    for (auto& stage : stages_) {
      Verdict verdict = co_await stage->on_end_of_data(tx_, message);
      if (verdict.stopped()) {
        r = *verdict.reply;
        tx_.log_fields.emplace_back("refused_by", stage->name());
        tx_.log_fields.emplace_back("reason", verdict.reason);
        outcome = r.transient() ? "tempfailed" : "rejected";
        break;
      }
    }
  }
  if (r.code == 0) {
    const auto asked = Clock::now();
    r = co_await upstream_->data(tx_.prepend_fields, spool_);
    observe_upstream(asked);
    r = smtp::upstream_reply_for_client(std::move(r));
    outcome = r.positive() ? "relayed" : (r.transient() ? "tempfailed" : "rejected");
    if (!upstream_->connected()) upstream_trouble("data");
  } else {
    co_await upstream_->reset();
  }
  log_message(outcome, r);
  reply(r);
  spool_.clear();
  stages_.clear();
  session_.reset_transaction();
  co_return true;
}

asio::awaitable<bool> Connection::read_proxy_header() {
  for (;;) {
    auto chunk = co_await reader_.read_chunk(std::chrono::seconds(10));
    if (!chunk) {
      obs::log_info("proxy-header-missing",
                    {{"session", context_.session_id}, {"error", chunk.error().message()}});
      co_return false;
    }
    const auto parsed = net::parse_proxy_header(std::string_view(chunk->data(), chunk->size()));
    if (parsed.status == net::ProxyParse::Status::Invalid ||
        (parsed.status == net::ProxyParse::Status::NeedMore &&
         chunk->size() >= net::kMaxProxyHeader)) {
      obs::log_warning("proxy-header-invalid",
                       {{"session", context_.session_id},
                        {"balancer", client_text(context_.client)},
                        {"error", parsed.error.empty() ? "too long" : parsed.error}});
      co_return false;
    }
    if (parsed.status == net::ProxyParse::Status::Done) {
      reader_.consume(parsed.header.length);
      if (parsed.header.source) {
        const net::IpAddress address = net::unmap(*parsed.header.source);
        const smtp::ClientInfo client{address, parsed.header.source_port,
                                      config_.server.trusts(address)};
        obs::log_debug("proxy-header", {{"session", context_.session_id},
                                        {"balancer", client_text(context_.client)},
                                        {"client", client_text(client)}});
        context_.client = client;
        session_.set_client(client);
      }
      co_return true;
    }
    // NeedMore: a v2 header can arrive in pieces; read_chunk returns what is
    // buffered, so wait for more by reading again after consuming nothing.
    if (!co_await reader_.fill_more(std::chrono::seconds(10))) co_return false;
  }
}

asio::awaitable<void> Connection::run() {
  const auto& s = config_.server;
  if (context_.proxy_protocol && !co_await read_proxy_header()) {
    co_await stream_->shutdown(std::chrono::seconds(1));
    co_return;
  }
  const std::string client = client_text(context_.client);
  obs::log_info("connect", {{"session", context_.session_id},
                            {"client", client},
                            {"local", context_.local_endpoint},
                            {"trusted", context_.client.trusted ? "yes" : "no"}});
  reply(smtp::make_reply(220, "", s.hostname + " ESMTP stampd"));
  const char* end_reason = "quit";
  for (;;) {
    if (!reader_.buffered() || out_.size() > 64 * 1024) {
      if (!co_await flush()) {
        end_reason = "write-failed";
        break;
      }
    }
    auto line = co_await reader_.read_line(s.max_command_line_length, s.command_timeout);
    if (!line) {
      const auto& e = line.error();
      if (e.code == net::Errc::LimitExceeded) {
        const smtp::Reply r = smtp::make_reply(500, "5.5.2", "Line too long");
        session_.note_refusal(r);
        reply(r);
        continue;
      }
      if (e.code == net::Errc::Timeout) {
        reply(smtp::make_reply(421, "4.4.2", s.hostname + " Timeout exceeded, closing connection"));
        co_await flush();
        end_reason = "timeout";
      } else {
        end_reason = "client-closed";
      }
      break;
    }
    smtp::Command cmd = smtp::parse_command(*line);
    session_.count(cmd);
    command_counter(cmd.verb).Increment();
    if (auto refusal = session_.check(cmd)) {
      session_.note_refusal(*refusal);
      obs::log_debug("refused", {{"session", context_.session_id},
                                 {"command", verb_name(cmd.verb)},
                                 {"reply", refusal->summary()}});
      reply(*refusal);
      if (refusal->code == 421) {
        co_await flush();
        end_reason = "limit";
        break;
      }
      continue;
    }
    switch (cmd.verb) {
      case smtp::Verb::Helo:
      case smtp::Verb::Ehlo:
        co_await on_hello(cmd);
        break;
      case smtp::Verb::Mail:
        co_await on_mail(cmd);
        break;
      case smtp::Verb::Rcpt:
        co_await on_rcpt(cmd);
        break;
      case smtp::Verb::Data:
        if (!co_await on_data(cmd)) {
          co_return;  // on_data logged and closed the upstream
        }
        break;
      case smtp::Verb::Rset:
        co_await on_rset(cmd);
        break;
      default:  // QUIT, NOOP, VRFY, HELP, ...: answered here
        session_.apply(cmd);
        reply(session_.local_reply(cmd));
        break;
    }
    if (session_.state() == smtp::Session::State::Closed) {
      co_await flush();
      break;
    }
  }
  // QUIT upstream aborts anything unfinished there (RFC 5321 §4.1.1.10).
  co_await upstream_->close();
  co_await stream_->shutdown(std::chrono::seconds(5));
  obs::log_info("disconnect", {{"session", context_.session_id},
                               {"reason", end_reason},
                               {"transactions", std::to_string(message_count_)}});
}

}  // namespace

asio::awaitable<void> serve_connection(std::unique_ptr<net::ByteStream> stream,
                                       ConnectionContext context) {
  Connection connection(std::move(stream), std::move(context));
  co_await connection.run();
}

}  // namespace stampd::proxy
