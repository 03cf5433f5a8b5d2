#include "proxy/relay.h"

#include <cassert>
#include <string_view>
#include <utility>
#include <vector>

#include "net/host_port.h"

namespace stampd::proxy {

namespace asio = boost::asio;
using smtp::make_reply;
using smtp::Reply;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// RFC 5321 §4.5.3.2: how long a client waits at least for the reply to
// MAIL and RCPT (5 min) and to the end of data (10 min). A move to another
// server starts only while it can still answer in time.
constexpr auto kMailPatience = std::chrono::minutes(5);
constexpr auto kDotPatience = std::chrono::minutes(10);

Reply lost_reply() { return make_reply(451, "4.4.2", "Upstream connection lost, try again later"); }

obs::MessageOutcome outcome_of(const Reply& r) {
  if (r.positive()) return obs::MessageOutcome::Relayed;
  return r.transient() ? obs::MessageOutcome::Tempfailed : obs::MessageOutcome::Rejected;
}

}  // namespace

Relay::Relay(std::shared_ptr<const Runtime> runtime, UpstreamPool& pool, smtp::Session& session,
             obs::SessionRecord& record)
    : runtime_(std::move(runtime)),
      config_(*runtime_->config),
      pool_(pool),
      session_(session),
      record_(record),
      spool_(config_.server.spool_memory, config_.server.spool_dir) {}

asio::awaitable<std::optional<Reply>> Relay::take() {
  const auto started = Clock::now();
  UpstreamPool::Lease lease = co_await pool_.acquire(started + config_.server.command_timeout);
  upstream_ = std::move(lease.upstream);
  if (!upstream_) {
    record_.note(obs::LogLevel::Warning, "upstream-busy",
                 {{"reason", "every upstream connection stayed in use"}});
    co_return make_reply(451, "4.4.5", "Upstream connections busy, try again later");
  }
  if (!upstream_->connected()) {
    const UpstreamErrorKind kind = upstream_->last_error_kind();
    upstream_trouble("connect");
    give_back();
    // RFC 3463: 4.7.0 when the server answered but our TLS or login failed
    // (a security matter for its admin), 4.4.1 when it did not answer.
    if (kind == UpstreamErrorKind::Tls || kind == UpstreamErrorKind::Auth) {
      co_return make_reply(451, "4.7.0", "Upstream server refused our connection, try again later");
    }
    co_return make_reply(451, "4.4.1", "Upstream server unavailable, try again later");
  }
  fresh_ = lease.opened;
  if (fresh_) record_.upstream_ok(seconds_since(started));
  caps_changed_ = false;
  if (const auto& caps = pool_.capabilities();
      caps && !(*caps == session_.upstream_capabilities())) {
    session_.set_upstream_capabilities(*caps);
    caps_changed_ = true;
  }
  co_return std::nullopt;
}

asio::awaitable<std::optional<Reply>> Relay::take_for(const smtp::Command& mail) {
  const std::optional<Reply> failed = co_await take();
  if (failed) co_return failed;
  // This connection may offer less than what we advertised. A binary body
  // cannot be converted, but another try may find a server that takes it.
  if (mail.body_is("BINARYMIME") && !session_.binarymime_offered()) {
    give_back();
    co_return make_reply(451, "4.6.3", "Upstream does not take BINARYMIME now, try again later");
  }
  std::optional<Reply> refused;
  if (!mail_deferred_) {
    refused = session_.check(mail);
  } else if (caps_changed_) {
    // The session took this MAIL under what the pool knew then; this
    // connection taught it otherwise (the server changed): check it anew.
    smtp::Session fresh = session_;
    fresh.reset_transaction();
    refused = fresh.check(mail);
  }
  if (refused) give_back();
  co_return refused;
}

void Relay::give_back() { pool_.release(std::move(upstream_)); }

void Relay::upstream_trouble(std::string_view step, bool server_failed) {
  if (!upstream_) return;
  // The server is failing; others may still be fine (and /readyz with them).
  // A failed connect was recorded there by the connection itself.
  ServerHealth* servers = pool_.servers();
  if (servers != nullptr && server_failed && step != "connect") servers->failed(upstream_->peer());
  const bool others_up = servers != nullptr && !servers->all_failing();
  record_.upstream_failed(step, upstream_->last_error_kind(), upstream_->peer(),
                          upstream_->last_error(), others_up);
}

bool Relay::can_move(Clock::time_point step_started, Clock::duration patience) const {
  const ServerHealth* servers = pool_.servers();
  if (servers == nullptr || moves_ + 1 >= servers->size()) return false;
  if (!upstream_ || upstream_->connected()) return false;
  const auto kind = upstream_->last_error_kind();
  if (kind == UpstreamErrorKind::Local || kind == UpstreamErrorKind::None) return false;
  return Clock::now() - step_started + config_.upstream.connect_timeout < patience;
}

asio::awaitable<bool> Relay::move_transaction(const char* step, Reply& why) {
  const std::string from = upstream_->peer();
  upstream_trouble(step);
  give_back();
  ++moves_;
  sent_ahead_ = 0;  // their replies died with the connection
  const std::optional<Reply> failed = co_await take();
  if (failed) {
    why = *failed;
    co_return false;
  }
  const std::string to = upstream_->peer();
  record_.note(obs::LogLevel::Warning, "upstream-failover",
               {{"msg", tx_.id}, {"step", step}, {"from", from}, {"to", to}});
  // The client was told 250 for these; the new server must say so too.
  Reply r = make_reply(250, "2.1.0", "Ok");
  if (std::string_view(step) != "mail") r = co_await upstream_->mail(session_, *mail_cmd_, {});
  for (std::size_t i = 0; i < accepted_.size() && r.positive(); ++i) {
    r = co_await upstream_->rcpt(accepted_[i], {});
  }
  if (r.positive()) co_return true;
  if (upstream_->connected()) {
    // Not the transaction the client built: give it up, and let the client
    // try again later (then each recipient gets this server's verdict).
    record_.note(obs::LogLevel::Warning, "upstream-failover-refused",
                 {{"msg", tx_.id}, {"to", to}, {"reply", r.summary()}});
    co_await upstream_->reset();
    give_back();
  } else {
    upstream_trouble(step);
    give_back();
  }
  why = make_reply(451, "4.4.2", "Upstream connection failed, try again later");
  co_return false;
}

asio::awaitable<void> Relay::hello() {
  co_await reset();
  // A client that can neither relay nor log in learns nothing of the upstream.
  if (!session_.may_relay() && !session_.auth_offered()) co_return;
  // What we offer follows what the upstream offers; the first client ever
  // makes us find out.
  if (!pool_.capabilities()) {
    const std::optional<Reply> failed = co_await take();
    if (!failed) give_back();
  }
  if (const auto& caps = pool_.capabilities()) session_.set_upstream_capabilities(*caps);
}

Relay::Sendable Relay::sendable_ahead(const smtp::Command& cmd,
                                      std::span<const smtp::Command> ahead) const {
  Sendable out;
  if (ahead.empty() || !upstream_) return out;
  // The session as it will be when every command up to here was accepted;
  // an upstream refusal only ever leaves it accepting more.
  smtp::Session trial = session_;
  trial.apply(cmd);
  for (const auto& next : ahead) {
    trial.count(next);
    if (next.verb == smtp::Verb::Data) {
      out.data = data_ahead_ok_ && !trial.check(next);
      break;
    }
    if (next.verb != smtp::Verb::Rcpt || trial.check(next)) break;
    trial.apply(next);
    out.recipients.push_back({next.argument, next.params});
  }
  return out;
}

asio::awaitable<Reply> Relay::upstream_mail(const smtp::Command& cmd, Ahead ahead) {
  const auto asked = Clock::now();
  sent_ahead_ = ahead.recipients.size();
  Reply r = co_await upstream_->mail(session_, cmd, ahead);
  record_.upstream_reply_time(seconds_since(asked));
  if (!r.positive()) sent_ahead_ = 0;  // the upstream read their refusals
  co_return r;
}

asio::awaitable<Reply> Relay::mail(smtp::Command cmd, std::span<const smtp::Command> ahead) {
  tx_ = Transaction{};
  tx_.id = record_.session() + "." + std::to_string(++transactions_);
  tx_.session = &session_;
  tx_.mail_from = cmd.argument;
  started_ = Clock::now();
  mail_cmd_ = cmd;
  accepted_.clear();
  moves_ = 0;
  lost_ = false;
  mail_deferred_ = false;
  data_refused_.reset();
  pipeline_.start(runtime_->stage_factories);
  std::optional<Refusal> refusal = co_await pipeline_.mail_from(tx_);
  if (refusal) {
    // What the stages found (spf=, spf_ip=, ...): a refusal names the
    // address that was checked, as event=message does.
    const std::string summary = refusal->reply.summary();
    std::vector<obs::LogField> fields{{"msg", tx_.id},
                                      {"stage", refusal->stage},
                                      {"reason", refusal->reason},
                                      {"reply", summary}};
    for (const auto& [k, v] : tx_.log_fields) fields.emplace_back(k, v);
    record_.note(obs::LogLevel::Info, "mail-refused", std::move(fields));
    pipeline_.clear();
    co_return refusal->reply;
  }
  if (may_defer(ahead)) {
    // MAIL alone, to an upstream that pipelines: it goes upstream with the
    // first recipient, in one write and one round trip, and that
    // recipient's reply carries the upstream's verdict on the sender.
    mail_deferred_ = true;
    co_return settle(cmd, make_reply(250, "2.1.0", "Ok"), "mail", "from");
  }
  if (!upstream_) {
    const std::optional<Reply> failed = co_await take_for(cmd);
    if (failed) co_return *failed;
  }
  const Sendable sendable = sendable_ahead(cmd, ahead);
  const Ahead both{sendable.recipients, sendable.data};
  Reply r = co_await open_upstream(cmd, both);
  co_return settle(cmd, std::move(r), "mail", "from");
}

bool Relay::may_defer(std::span<const smtp::Command> ahead) const {
  if (!ahead.empty() || upstream_) return false;
  const auto& caps = pool_.capabilities();
  return caps && caps->pipelining;
}

asio::awaitable<Reply> Relay::open_upstream(const smtp::Command& cmd, Ahead ahead) {
  Reply r = co_await upstream_mail(cmd, ahead);
  // A kept connection the server closed while we were not looking (Postfix
  // after 300 s, with or without a 421): one more try on another before the
  // client hears of it. From a connection opened for this transaction, a
  // close is the server's answer.
  const bool idle_drop = !fresh_ && !r.positive() && !upstream_->connected() &&
                         upstream_->last_error_kind() == UpstreamErrorKind::Dropped;
  if (idle_drop) {
    upstream_trouble("mail", false);
    give_back();
    const std::optional<Reply> failed = co_await take();
    if (failed) co_return *failed;
    r = co_await upstream_mail(cmd, ahead);
  }
  // A server that failed while a kept one was replaced, or at MAIL: the
  // next server.
  while (!r.positive() && can_move(started_, kMailPatience)) {
    if (!co_await move_transaction("mail", r)) break;
    r = co_await upstream_mail(cmd, {});
  }
  co_return r;
}

asio::awaitable<std::optional<Reply>> Relay::send_deferred_mail(
    const smtp::Command& rcpt, std::span<const smtp::Command> ahead) {
  if (!upstream_) {
    const std::optional<Reply> failed = co_await take_for(*mail_cmd_);
    if (failed) co_return failed;
  }
  // This recipient goes right behind MAIL, with those the client sent
  // behind it that may go too.
  Sendable sendable = sendable_ahead(rcpt, ahead);
  sendable.recipients.insert(sendable.recipients.begin(), {rcpt.argument, rcpt.params});
  const Ahead behind{sendable.recipients, sendable.data};
  Reply r = co_await open_upstream(*mail_cmd_, behind);
  if (r.positive()) {
    mail_deferred_ = false;
    co_return std::nullopt;
  }
  // The upstream refused the sender (or could not be reached): this
  // recipient gets that verdict, and the next one tries MAIL again.
  r = smtp::upstream_reply_for_client(std::move(r));
  if (upstream_ && !upstream_->connected()) upstream_trouble("mail");
  give_back();
  note_reply("mail", "from", mail_cmd_->argument, r);
  co_return r;
}

Reply Relay::settle(const smtp::Command& cmd, Reply r, const char* step, const char* key) {
  r = smtp::upstream_reply_for_client(std::move(r));
  if (r.positive()) {
    session_.apply(cmd);
    if (cmd.verb == smtp::Verb::Rcpt) accepted_.push_back({cmd.argument, cmd.params});
  } else if (!upstream_ || !upstream_->connected()) {
    upstream_trouble(step);
    if (cmd.verb == smtp::Verb::Mail) {
      end_transaction();
    } else {
      give_back();
      sent_ahead_ = 0;
      lost_ = true;
    }
  } else if (cmd.verb == smtp::Verb::Mail) {
    give_back();  // no transaction was started: the connection is free
  }
  note_reply(step, key, cmd.argument, r);
  return r;
}

void Relay::note_reply(const char* step, const char* key, const std::string& argument,
                       const Reply& r) {
  if (!record_.debug_enabled()) return;
  const std::string summary = r.summary();
  record_.note(obs::LogLevel::Debug, step, {{"msg", tx_.id}, {key, argument}, {"reply", summary}});
}

asio::awaitable<Reply> Relay::rcpt(smtp::Command cmd, std::span<const smtp::Command> ahead) {
  // A refusal of DATA answers only the DATA right behind the recipients
  // (the session may have refused that one itself: no recipient yet).
  data_refused_.reset();
  if (lost_) co_return lost_reply();
  // Named, not a temporary: g++ 12 mis-destroys aggregate temporaries that
  // live across a co_await.
  const smtp::Recipient recipient{cmd.argument, cmd.params};
  if (mail_deferred_) {
    std::optional<Reply> refused = co_await send_deferred_mail(cmd, ahead);
    if (refused) co_return std::move(*refused);
  }
  Sendable sendable;
  if (sent_ahead_ > 0) {
    --sent_ahead_;  // this one went with an earlier command
  } else {
    sendable = sendable_ahead(cmd, ahead);
    sent_ahead_ = sendable.recipients.size();
  }
  const auto asked = Clock::now();
  const Ahead behind{sendable.recipients, sendable.data};
  Reply r = co_await upstream_->rcpt(recipient, behind);
  record_.upstream_reply_time(seconds_since(asked));
  while (!r.positive() && can_move(asked, kMailPatience)) {
    if (!co_await move_transaction("rcpt", r)) break;
    r = co_await upstream_->rcpt(recipient, {});
  }
  Reply settled = settle(cmd, std::move(r), "rcpt", "to");
  // The last recipient's reply is in: DATA's, sent behind it, comes next.
  if (sent_ahead_ == 0 && upstream_ && upstream_->data_ahead_pending()) co_await read_data_ahead();
  co_return settled;
}

asio::awaitable<void> Relay::read_data_ahead() {
  const auto asked = Clock::now();
  Reply r = co_await upstream_->data_ahead_reply();
  record_.upstream_reply_time(seconds_since(asked));
  if (r.code == 354) co_return;
  if (!upstream_->connected()) {
    // As for a recipient: the envelope stays with the client, its DATA is lost.
    upstream_trouble("data");
    give_back();
    lost_ = true;
    co_return;
  }
  data_refused_ = smtp::upstream_reply_for_client(std::move(r));
}

std::optional<Reply> Relay::data_refused() {
  std::optional<Reply> r = std::move(data_refused_);
  data_refused_.reset();
  return r;
}

void Relay::note_abandoned() {
  if (!upstream_ || !upstream_->abandoned_data()) return;
  data_ahead_ok_ = false;
  if (decoder_) tx_.log_fields.emplace_back("upstream_abandoned", "yes");
}

std::optional<Reply> Relay::lost() {
  if (!lost_) return std::nullopt;
  end_transaction();
  return lost_reply();
}

void Relay::start_message(bool chunked) {
  const auto& s = config_.server;
  chunked_ = chunked;
  decoder_.emplace(smtp::DataDecoder::Options{s.bare_line_endings == BareLineEndings::Normalize,
                                              s.max_data_line_length, session_.message_size_limit(),
                                              chunked, chunked && session_.binarymime()});
  spool_.clear();
  assembler_.emplace(tx_, pipeline_, spool_, s.max_header_size);
  local_error_.reset();
  decoded_.clear();
}

void Relay::begin_data() { start_message(false); }

void Relay::begin_chunks() { start_message(true); }

// DecodedSink takes the decoder's output: a run of 4 KiB or more (most of a
// message) goes to the assembler as it is, a view into the receive buffer;
// smaller pieces (the lines around a removed dot or a normalized line
// ending) are gathered first, so the spool and the hashes are not fed
// line by line.
class Relay::DecodedSink final : public smtp::DataDecoder::Output {
 public:
  explicit DecodedSink(Relay& relay) : relay_(relay) {}
  void put(std::string_view bytes) override {
    std::string& gathered = relay_.decoded_;
    if (bytes.size() >= kDirect) {
      drain();
      relay_.assemble(bytes);
      return;
    }
    gathered.append(bytes);
    if (gathered.size() >= kGathered) drain();
  }
  void drain() {
    if (relay_.decoded_.empty()) return;
    relay_.assemble(relay_.decoded_);
    relay_.decoded_.clear();
  }

 private:
  static constexpr std::size_t kDirect = 4096;
  static constexpr std::size_t kGathered = 64 * 1024;
  Relay& relay_;
};

void Relay::assemble(std::string_view decoded) {
  if (local_error_) return;
  if (auto added = assembler_->add(decoded); !added) local_error_ = std::move(added).error();
}

std::size_t Relay::feed(std::string_view received) {
  DecodedSink sink(*this);
  const std::size_t used = decoder_->feed(received, sink);
  sink.drain();
  return used;
}

std::size_t Relay::add(std::string_view received) { return feed(received); }

void Relay::add_chunk(std::string_view octets) {
  // Chunked content has no end-of-data in it: every octet is used.
  [[maybe_unused]] const std::size_t used = feed(octets);
  assert(used == octets.size());
}

void Relay::end_chunks() {
  DecodedSink sink(*this);
  decoder_->end(sink);
  sink.drain();
}

asio::awaitable<void> Relay::refuse_chunks(Reply reply) {
  if (upstream_) co_await upstream_->reset();
  summarize(Outcome{obs::MessageOutcome::Rejected, reply}, reply.summary());
  end_transaction();
}

std::optional<Outcome> Relay::refusal() {
  using Problem = smtp::DataDecoder::Problem;
  const auto rejected = obs::MessageOutcome::Rejected;
  switch (decoder_->problem()) {
    case Problem::TooBig:
      return Outcome{rejected,
                     make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size")};
    case Problem::LineTooLong:
      return Outcome{rejected, make_reply(550, "5.5.2",
                                          "Message has a line longer than " +
                                              std::to_string(config_.server.max_data_line_length) +
                                              " octets")};
    case Problem::BareLineEnding:
      return Outcome{rejected, make_reply(550, "5.6.0",
                                          "Message has a bare CR or LF; lines must end with CRLF")};
    case Problem::None:
      break;
  }
  if (!local_error_) return std::nullopt;
  if (local_error_->code == net::Errc::LimitExceeded) {
    return Outcome{rejected, make_reply(552, "5.3.4", "Message header too large")};
  }
  const std::string error = local_error_->message();
  record_.note(obs::LogLevel::Error, "spool-error", {{"msg", tx_.id}, {"error", error}});
  return Outcome{obs::MessageOutcome::Tempfailed,
                 make_reply(451, "4.3.0", "Local error, try again later")};
}

asio::awaitable<Reply> Relay::upstream_data() {
  const auto asked = Clock::now();
  Reply r = co_await upstream_->data(tx_.prepend_fields, spool_);
  record_.upstream_reply_time(seconds_since(asked));
  co_return r;
}

asio::awaitable<Outcome> Relay::finish() {
  if (!local_error_) {
    if (auto finished = assembler_->finish(); !finished) local_error_ = std::move(finished).error();
  }
  std::optional<Outcome> outcome = refusal();
  if (!outcome) {
    const Message message{assembler_->header_block(), &spool_, spool_.size()};
    std::optional<Refusal> stop = co_await pipeline_.end_of_data(tx_, message);
    if (stop) {
      tx_.log_fields.emplace_back("refused_by", stop->stage);
      tx_.log_fields.emplace_back("reason", stop->reason);
      outcome = Outcome{outcome_of(stop->reply), std::move(stop->reply)};
    }
  }
  if (outcome) {
    co_await upstream_->reset();
    note_abandoned();
  } else {
    const auto asked = Clock::now();
    Reply r = co_await upstream_data();
    // Before the final dot went out (or when the server said 421 to it),
    // no server has the message: the next one may take it. After it went
    // out unanswered, this one may have it; never risk a second copy.
    while (!r.positive() && !upstream_->maybe_delivered() && can_move(asked, kDotPatience)) {
      if (!co_await move_transaction("data", r)) break;
      r = co_await upstream_data();
    }
    if (upstream_ && !upstream_->connected()) upstream_trouble("data");
    // The duplicate window: the server may have queued it, and the client,
    // told 4xx, will send it again. Logged so that duplicates can be
    // counted against it (README, "What can be duplicated").
    if (!r.positive() && upstream_ && upstream_->maybe_delivered()) {
      tx_.log_fields.emplace_back("maybe_delivered", "yes");
    }
    r = smtp::upstream_reply_for_client(std::move(r));
    outcome = Outcome{outcome_of(r), std::move(r)};
  }
  summarize(*outcome, outcome->reply.summary());
  end_transaction();
  co_return std::move(*outcome);
}

asio::awaitable<void> Relay::abort(std::string why) {
  if (upstream_) co_await upstream_->close();
  note_abandoned();
  summarize(Outcome{obs::MessageOutcome::Aborted, {}},
            make_reply(0, "", "client " + why + " during DATA").summary());
  end_transaction();
}

void Relay::summarize(const Outcome& outcome, std::string_view reply_summary) {
  const auto& envelope = session_.envelope();
  const std::string client = net::endpoint_text(session_.client().address, session_.client().port);
  const std::string upstream = upstream_ ? upstream_->peer() : "";
  obs::MessageSummary m;
  m.msg_id = tx_.id;
  m.outcome = outcome.kind;
  m.client = client;
  m.from = envelope.mail_from;
  m.recipients = envelope.recipients.size();
  m.size = decoder_ ? decoder_->size() : 0;
  m.upstream = upstream;
  m.reply = reply_summary;
  m.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
  // Behind a content_filter the client is the MTA; XFORWARD names the real one.
  const auto& xforward = session_.xforward();
  if (const auto* addr = xforward.find("ADDR")) m.extra.emplace_back("xforward_addr", *addr);
  if (const auto* helo = xforward.find("HELO")) m.extra.emplace_back("xforward_helo", *helo);
  if (const auto& tls = session_.tls()) {
    m.extra.emplace_back("tls", tls->protocol);
    m.extra.emplace_back("tls_cipher", tls->cipher);
  }
  if (!session_.login().empty()) m.extra.emplace_back("login", session_.login());
  for (const auto& [k, v] : tx_.log_fields) m.extra.emplace_back(k, v);
  record_.message(m);
}

void Relay::end_transaction() {
  spool_.clear();
  pipeline_.clear();
  assembler_.reset();
  decoder_.reset();
  local_error_.reset();
  session_.reset_transaction();
  sent_ahead_ = 0;
  lost_ = false;
  mail_deferred_ = false;
  data_refused_.reset();
  give_back();
}

asio::awaitable<void> Relay::reset() {
  if (decoder_) {
    // RSET, EHLO or the client's QUIT between BDAT chunks (RFC 3030 §2:
    // RSET clears the chunks received): the message is dropped.
    summarize(Outcome{obs::MessageOutcome::Aborted, {}},
              make_reply(0, "", "client ended the transaction between BDAT chunks").summary());
    decoder_.reset();
    assembler_.reset();
    spool_.clear();
  }
  pipeline_.clear();
  sent_ahead_ = 0;
  lost_ = false;
  mail_deferred_ = false;
  data_refused_.reset();
  if (!upstream_) co_return;
  co_await upstream_->reset();
  note_abandoned();
  give_back();
}

asio::awaitable<void> Relay::close() { co_await reset(); }

}  // namespace stampd::proxy
