// relay.h: the mail transaction of one client session, one at a time: the
// upstream connection (taken from the I/O thread's pool when MAIL goes
// upstream, at MAIL or with the first RCPT, given back after the final
// reply), the pipeline stages, the spool and what the
// transaction gathered. The Connection owns the socket and the Session; it
// feeds Relay the commands the Session allowed and the DATA bytes, and sends
// the replies Relay returns. Relay never touches the client's socket, and
// upstream trouble is a reply value (4xx), never an exception.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "net/result.h"
#include "obs/record.h"
#include "proxy/message_assembler.h"
#include "proxy/pipeline.h"
#include "proxy/runtime.h"
#include "proxy/spool.h"
#include "proxy/upstream/pool.h"
#include "proxy/upstream/upstream.h"
#include "smtp/command.h"
#include "smtp/data_decoder.h"
#include "smtp/reply.h"
#include "smtp/session.h"

namespace stampd::proxy {

// Outcome is how a message ended: the reply for the client and its class.
struct Outcome {
  obs::MessageOutcome kind = obs::MessageOutcome::Rejected;
  smtp::Reply reply;
};

class Relay {
 public:
  // Relay uses session and record, which the connection owns and keeps
  // alive longer, and takes its upstream connections from pool (one of
  // runtime's, which keeps it alive).
  Relay(std::shared_ptr<const Runtime> runtime, UpstreamPool& pool, smtp::Session& session,
        obs::SessionRecord& record);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // hello handles EHLO/HELO: it ends any transaction (RFC 5321 §4.1.4) and,
  // for a client that may relay, sets the extensions the session offers
  // from what the upstream offers (connecting once if nobody has yet).
  boost::asio::awaitable<void> hello();
  // mail starts a transaction: the stages' on_mail_from, then the upstream's
  // MAIL on a pooled connection (on another one when it turns out to have
  // died while kept). Applied to the session when positive.
  // ahead are the commands the client pipelined behind this one (RFC 2920):
  // the recipients among them that the session will take whatever the
  // upstream answers go to the upstream in the same write, and DATA when
  // it came right behind them (see data_refused). A MAIL with nothing
  // behind it, to an upstream that offers PIPELINING, is answered once the
  // stages took it and goes upstream with the first RCPT (see rcpt).
  boost::asio::awaitable<smtp::Reply> mail(smtp::Command cmd,
                                           std::span<const smtp::Command> ahead = {});
  // rcpt forwards RCPT; the upstream's verdict is the client's. After a
  // MAIL answered here, the first RCPT takes the connection and sends MAIL
  // and itself in one write; when the upstream refuses MAIL, that refusal
  // is this recipient's reply (as Postfix's smtpd_delay_reject has it) and
  // the next RCPT tries MAIL again.
  boost::asio::awaitable<smtp::Reply> rcpt(smtp::Command cmd,
                                           std::span<const smtp::Command> ahead = {});

  // lost is the reply for DATA or BDAT when the upstream connection died
  // after the client's MAIL was accepted: the transaction can only fail,
  // and temporarily (a 5xx such as "need MAIL" would make the client bounce
  // recipients an upstream has not refused). It ends the transaction.
  std::optional<smtp::Reply> lost();
  // data_refused is the reply for the client's DATA when the DATA sent
  // ahead with the recipients was refused upstream (nullopt: go on). The
  // transaction stays; a DATA sent again goes at the end of the message.
  // A DATA answered 354 has the upstream wait for the message: a message
  // refused here then costs that connection (closed without QUIT, nothing
  // delivered), so after one such loss the session sends DATA at the end.
  std::optional<smtp::Reply> data_refused();

  // begin_data, add and data_complete take the bytes after DATA as the
  // client sent them (dot-stuffed); add returns how many it used: fewer than
  // given once the end of data came (the rest is the client's next command).
  void begin_data();
  std::size_t add(std::string_view received);
  bool data_complete() const { return decoder_ && decoder_->done(); }
  // begin_chunks and add_chunk take a message that comes in BDAT chunks
  // (RFC 3030): the bytes as they are, no dot-stuffing and no end-of-data;
  // they stream into the same spool and stages as DATA's. end_chunks marks
  // the end (BDAT LAST); finish follows as for DATA.
  void begin_chunks();
  void add_chunk(std::string_view octets);
  void end_chunks();
  bool in_chunks() const { return decoder_.has_value() && chunked_; }
  // refuse_chunks ends a transaction whose BDAT was refused (the message
  // too big): the upstream is reset and the message logged as rejected.
  boost::asio::awaitable<void> refuse_chunks(smtp::Reply reply);
  // finish decides and relays the message once the end of data came, and
  // ends the transaction.
  boost::asio::awaitable<Outcome> finish();
  // abort ends a transaction whose client went away during DATA: the
  // upstream connection is closed (QUIT), so no partial message is ever
  // completed there.
  boost::asio::awaitable<void> abort(std::string why);

  // reset aborts the transaction in progress (RSET) and gives the connection back.
  boost::asio::awaitable<void> reset();
  // close ends the session: a transaction still open is reset, the
  // connection given back.
  boost::asio::awaitable<void> close();

  unsigned transactions() const { return transactions_; }

 private:
  using Clock = std::chrono::steady_clock;

  // take leases a connection for a transaction; the reply for the client
  // when none can be had (all busy, or no server answers).
  boost::asio::awaitable<std::optional<smtp::Reply>> take();
  // take_for takes a connection for mail and checks mail again against what
  // it offers; the reply for the client when it cannot go there.
  boost::asio::awaitable<std::optional<smtp::Reply>> take_for(const smtp::Command& mail);
  // give_back returns the connection to the pool (kept or closed there).
  void give_back();
  boost::asio::awaitable<smtp::Reply> upstream_mail(const smtp::Command& cmd, Ahead ahead);
  // open_upstream sends MAIL (and ahead) on the connection taken, with one
  // more try on another connection when a kept one turns out dead and the
  // moves to other servers when it failed; the upstream's reply.
  boost::asio::awaitable<smtp::Reply> open_upstream(const smtp::Command& cmd, Ahead ahead);
  // may_defer tells whether MAIL may wait for the first RCPT: nothing was
  // pipelined behind it and the upstream pipelines.
  bool may_defer(std::span<const smtp::Command> ahead) const;
  // send_deferred_mail sends the MAIL answered here, with rcpt and what may
  // go behind it; nullopt when the upstream took MAIL, else rcpt's reply.
  boost::asio::awaitable<std::optional<smtp::Reply>> send_deferred_mail(
      const smtp::Command& rcpt, std::span<const smtp::Command> ahead);
  // sendable_ahead picks from ahead the recipients that may be sent before
  // cmd's reply is known: those the session accepts even if every one
  // before them is accepted (a recipient refused here must never reach
  // the upstream), up to the first other command; and whether a DATA
  // right behind them may go too (the session would take it, and no
  // connection was abandoned after a 354 in this session).
  struct Sendable {
    std::vector<smtp::Recipient> recipients;
    bool data = false;  // DATA may follow them: the session will take it
  };
  Sendable sendable_ahead(const smtp::Command& cmd, std::span<const smtp::Command> ahead) const;
  // read_data_ahead reads the reply to a DATA sent ahead once every
  // recipient's reply was read.
  boost::asio::awaitable<void> read_data_ahead();
  // note_abandoned logs a connection reset or close had to drop after a
  // 354, and stops sending DATA ahead in this session.
  void note_abandoned();
  boost::asio::awaitable<smtp::Reply> upstream_data();
  // can_move says whether the transaction may move to another server: the
  // connection died (not a verdict, not our own error), another server is
  // configured and not yet tried in this transaction, and there is time
  // left inside patience, what the client waits for this step's reply.
  bool can_move(Clock::time_point step_started, Clock::duration patience) const;
  // move_transaction marks the server the connection died on as failing
  // and takes a connection to another one, replaying MAIL (unless the step
  // is MAIL itself) and the recipients accepted so far. True when the
  // transaction now lives there, identical; false with the client's reply
  // in why (4xx) when no connection came or the new server did not accept
  // what the client was already told it had.
  boost::asio::awaitable<bool> move_transaction(const char* step, smtp::Reply& why);
  // upstream_trouble records a failure; when the connection died, the
  // upstream's transaction died with it, and so does ours. server_failed:
  // count it against the server (not for a kept connection it closed idle).
  void upstream_trouble(std::string_view step, bool server_failed = true);
  // settle turns the upstream's reply to MAIL or RCPT into the client's and
  // applies it: to the session when positive; when the connection died,
  // MAIL's transaction ends and RCPT's is lost (its envelope stays with the
  // client, each later command of it gets a 4xx).
  smtp::Reply settle(const smtp::Command& cmd, smtp::Reply r, const char* step, const char* key);
  // note_reply logs (at debug) the client's reply to MAIL or RCPT.
  void note_reply(const char* step, const char* key, const std::string& argument,
                  const smtp::Reply& r);
  // refusal is the reply for a message the decoder or the spool could not take.
  std::optional<Outcome> refusal();
  void summarize(const Outcome& outcome, std::string_view reply_summary);
  void start_message(bool chunked);
  // feed passes client bytes through the decoder into the assembler.
  std::size_t feed(std::string_view received);
  // assemble hands decoded bytes to the assembler, unless it failed before.
  void assemble(std::string_view decoded);
  class DecodedSink;
  void end_transaction();

  std::shared_ptr<const Runtime> runtime_;
  const Config& config_;
  UpstreamPool& pool_;
  std::unique_ptr<Upstream> upstream_;  // held during a transaction only
  bool fresh_ = false;                  // upstream_ was opened for this transaction
  smtp::Session& session_;
  obs::SessionRecord& record_;
  Spool spool_;
  Pipeline pipeline_;
  Transaction tx_;
  std::size_t sent_ahead_ = 0;  // recipients sent ahead, not yet asked for
  // What the upstream accepted in this transaction, for a move to another
  // server: the MAIL command and the recipients, in order.
  std::optional<smtp::Command> mail_cmd_;
  std::vector<smtp::Recipient> accepted_;
  std::size_t moves_ = 0;                    // servers moved to in this transaction
  std::optional<smtp::Reply> data_refused_;  // the upstream refused the DATA sent ahead
  unsigned transactions_ = 0;
  bool lost_ = false;           // the upstream died inside this transaction
  bool data_ahead_ok_ = true;   // no connection was abandoned after a 354 in this session
  bool mail_deferred_ = false;  // MAIL was answered here and waits for the first RCPT
  bool caps_changed_ = false;   // take() learned other capabilities than the session had
  Clock::time_point started_;
  // The message being received.
  std::optional<smtp::DataDecoder> decoder_;
  std::optional<MessageAssembler> assembler_;
  std::optional<net::Error> local_error_;
  std::string decoded_;   // small decoded pieces, gathered for the assembler
  bool chunked_ = false;  // the message comes in BDAT chunks
};

}  // namespace stampd::proxy
