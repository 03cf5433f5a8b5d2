// Relay driven with strings and a scripted upstream, the way Boost.MySQL tests
// its sans-IO algorithms: every step of the transaction (connect, MAIL, RCPT,
// DATA) against every upstream failure (4xx, 5xx, drop, timeout), checking
// the reply the client gets, what the upstream saw, the session's state, and
// what was counted. The one invariant: a message is delivered exactly once
// when the client gets 250, and not at all otherwise.
#include "proxy/relay.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "obs/health.h"
#include "obs/metrics.h"
#include "proxy/upstream/pool.h"
#include "tests/support/scripted_upstream.h"

namespace stampd::proxy {
namespace {

namespace asio = boost::asio;
using test::Script;
using Step = Script::Step;
using Kind = UpstreamErrorKind;

const char* const kMessage = "From: <a@example.com>\r\nSubject: hi\r\n\r\nbody\r\n..dot\r\n.\r\n";
const char* const kRelayed = "From: <a@example.com>\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n";

// CountingStage counts what the pipeline showed it; it can refuse at MAIL or
// at the end of data, and adds a header field like a signer does.
struct StageLog {
  int mail_from = 0, headers = 0, end_of_data = 0;
  std::string body;
  std::optional<smtp::Reply> refuse_mail, refuse_data;
};

class CountingStage : public Stage {
 public:
  explicit CountingStage(StageLog& log) : log_(log) {}
  const char* name() const override { return "counting"; }
  asio::awaitable<Verdict> on_mail_from(Transaction& tx) override {
    ++log_.mail_from;
    tx.log_fields.emplace_back("counted", "yes");
    if (log_.refuse_mail) co_return Verdict::stop(*log_.refuse_mail, "told to");
    co_return Verdict::next();
  }
  void on_header_block(Transaction&, std::string_view) override { ++log_.headers; }
  void on_body(std::span<const char> chunk) override {
    log_.body.append(chunk.data(), chunk.size());
  }
  asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message&) override {
    ++log_.end_of_data;
    if (log_.refuse_data) co_return Verdict::stop(*log_.refuse_data, "told to");
    tx.prepend_fields.push_back("X-Counted: yes\r\n");
    co_return Verdict::next();
  }

 private:
  StageLog& log_;
};

class CountingFactory : public StageFactory {
 public:
  explicit CountingFactory(StageLog& log) : log_(log) {}
  std::vector<std::unique_ptr<Stage>> make_stages() const override {
    std::vector<std::unique_ptr<Stage>> out;
    out.push_back(std::make_unique<CountingStage>(log_));
    return out;
  }

 private:
  StageLog& log_;
};

smtp::Command command(const std::string& line) { return smtp::parse_command(line); }

// World is the server side of the tests: one I/O thread (an io_context),
// the metrics, the scripted upstream server and the pool of connections to it.
struct World {
  // With server names, the upstream is several scripted servers behind a
  // ServerHealth (servers->scripts[name]); else the one script.
  explicit World(const std::string& config = "", const std::vector<std::string>& names = {}) {
    runtime = std::make_shared<Runtime>();
    runtime->config =
        parse_config("[server]\nmax_message_size = \"4KiB\"\nmax_header_size = \"1KiB\"\n" + config,
                     "relay_test.toml");
    runtime->stage_factories.push_back(std::make_shared<CountingFactory>(stages));
    health.set_listening(true);
    PoolLimits limits;
    limits.max_connections = runtime->config->upstream.max_connections;
    limits.idle_timeout = runtime->config->upstream.idle_timeout;
    if (names.empty()) {
      pool = std::make_shared<UpstreamPool>(
          io.get_executor(), [s = script] { return std::make_unique<test::ScriptedUpstream>(s); },
          limits);
      return;
    }
    servers = std::make_shared<test::ScriptedServers>();
    servers->health = std::make_shared<ServerHealth>(names);
    for (const auto& n : names) servers->scripts[n] = std::make_shared<test::Script>();
    pool = std::make_shared<UpstreamPool>(
        io.get_executor(), [s = servers] { return std::make_unique<test::ScriptedUpstream>(s); },
        limits, nullptr, servers->health);
  }

  // run runs the io_context until done says so (background work such as a
  // pool's QUIT goes on with it).
  template <class Done>
  void run(Done done) {
    io.restart();
    while (!done() && io.run_one_for(std::chrono::seconds(10))) {
    }
    ASSERT_TRUE(done()) << "timed out";
  }

  asio::io_context io;
  obs::Metrics metrics;
  obs::Health health;
  obs::Recorder recorder{metrics, health, smtp::verb_names()};
  std::shared_ptr<test::Script> script = std::make_shared<test::Script>();
  std::shared_ptr<test::ScriptedServers> servers;
  StageLog stages;
  std::shared_ptr<Runtime> runtime;
  std::shared_ptr<UpstreamPool> pool;
};

// Client is one client session's Relay in a World.
struct Client {
  explicit Client(World& w, std::string id = "t", std::size_t max_recipients = 1000)
      : world(w),
        record(w.recorder, std::move(id)),
        session(smtp::SessionLimits{max_recipients, 4096, 10000, 20},
                smtp::ClientInfo{*net::parse_ip("127.0.0.1"), 2525, true}, "stampd.test"),
        relay(w.runtime, *w.pool, session, record) {}

  // run runs one step of the relay to completion.
  template <class T>
  T run(asio::awaitable<T> step) {
    std::optional<T> out;
    std::exception_ptr error;
    asio::co_spawn(world.io, std::move(step), [&](std::exception_ptr e, T v) {
      error = e;
      out.emplace(std::move(v));
    });
    world.run([&] { return out.has_value(); });
    if (error) std::rethrow_exception(error);
    return std::move(*out);
  }

  static asio::awaitable<bool> do_hello(Client* c) {
    co_await c->relay.hello();
    co_return true;
  }
  static asio::awaitable<smtp::Reply> do_mail(Client* c) {
    co_return co_await c->relay.mail(command("MAIL FROM:<a@example.com>"));
  }
  static asio::awaitable<smtp::Reply> do_rcpt(Client* c) {
    co_return co_await c->relay.rcpt(command("RCPT TO:<b@example.net>"));
  }
  // The pipelined forms: the command lines the client sent behind it.
  static asio::awaitable<smtp::Reply> do_mail_ahead(Client* c, std::vector<smtp::Command> ahead) {
    co_return co_await c->relay.mail(command("MAIL FROM:<a@example.com>"), ahead);
  }
  static asio::awaitable<smtp::Reply> do_rcpt_to(Client* c, std::string line,
                                                 std::vector<smtp::Command> ahead) {
    co_return co_await c->relay.rcpt(command(line), ahead);
  }
  static asio::awaitable<Outcome> do_finish(Client* c) { co_return co_await c->relay.finish(); }
  static asio::awaitable<bool> do_refuse_chunks(Client* c) {
    co_await c->relay.refuse_chunks(smtp::make_reply(552, "5.3.4", "too big"));
    co_return true;
  }
  static asio::awaitable<bool> do_reset(Client* c) {
    co_await c->relay.reset();
    co_return true;
  }
  static asio::awaitable<bool> do_abort(Client* c) {
    co_await c->relay.abort("closed the connection");
    co_return true;
  }
  static asio::awaitable<bool> do_close(Client* c) {
    co_await c->relay.close();
    co_return true;
  }

  void hello() {
    run(do_hello(this));
    session.apply(command("EHLO client.test"));
  }
  smtp::Reply mail() { return run(do_mail(this)); }
  smtp::Reply rcpt() { return run(do_rcpt(this)); }
  static std::vector<smtp::Command> commands(const std::vector<std::string>& lines) {
    std::vector<smtp::Command> out;
    for (const auto& l : lines) out.push_back(command(l));
    return out;
  }
  // mail_ahead and rcpt_to serve MAIL or RCPT with lines pipelined behind
  // it; the Connection checks each command with the session first.
  smtp::Reply mail_ahead(const std::vector<std::string>& ahead) {
    return run(do_mail_ahead(this, commands(ahead)));
  }
  smtp::Reply rcpt_to(const std::string& line, const std::vector<std::string>& ahead = {}) {
    if (auto refused = session.check(command(line))) return *refused;
    return run(do_rcpt_to(this, line, commands(ahead)));
  }
  void close() { run(do_close(this)); }
  // send_data feeds DATA and the message, split in two at cut.
  void send_data(const std::string& message, std::size_t cut) {
    session.apply(command("DATA"));
    relay.begin_data();
    std::size_t used = relay.add(std::string_view(message).substr(0, cut));
    used += relay.add(std::string_view(message).substr(used));
    EXPECT_TRUE(relay.data_complete());
    EXPECT_EQ(used, message.size());
  }
  // chunks sends message as BDAT chunks of step octets (the last one LAST,
  // possibly empty) and finishes it, as the Connection does.
  Outcome chunks(const std::string& message, std::size_t step) {
    relay.begin_chunks();
    for (std::size_t pos = 0;; pos += step) {
      const std::string_view piece =
          std::string_view(message).substr(std::min(pos, message.size()), step);
      const bool last = pos + step >= message.size();
      const smtp::Command bdat =
          command("BDAT " + std::to_string(piece.size()) + (last ? " LAST" : ""));
      EXPECT_FALSE(session.check(bdat)) << bdat.argument;
      session.apply(bdat);
      relay.add_chunk(piece);
      if (last) break;
    }
    relay.end_chunks();
    return run(do_finish(this));
  }
  // chunk_started opens a transaction and sends the first BDAT chunk of it.
  void chunk_started(const std::string& bdat, std::string_view octets) {
    hello();
    mail();
    rcpt();
    relay.begin_chunks();
    session.apply(command(bdat));
    relay.add_chunk(octets);
  }
  // data sends DATA and the message and finishes it.
  Outcome data(const std::string& message = kMessage, std::size_t cut = 7) {
    send_data(message, cut);
    return run(do_finish(this));
  }

  World& world;
  obs::SessionRecord record;
  smtp::Session session;
  Relay relay;
};

// Harness is a World with one Client, for the tests of one session.
struct Harness : World, Client {
  explicit Harness(const std::string& config = "")
      : World(config), Client(static_cast<World&>(*this)) {}

  smtp::Reply to_c() { return rcpt_to("RCPT TO:<c@example.net>"); }
  double counted(const char* outcome) {
    return metrics.messages.Add({{"outcome", outcome}}).Value();
  }
  double errors(const char* kind) { return metrics.upstream_errors.Add({{"kind", kind}}).Value(); }
  bool ready() { return health.not_ready_reason().empty(); }

  test::Script* upstream_ = script.get();
  StageLog& stages_ = stages;
  smtp::Session& session_ = session;
  Relay* relay_ = &relay;
  template <class T>
  T run(asio::awaitable<T> (*step)(Client*)) {
    return Client::run(step(this));
  }
};

TEST(Relay, RelaysOnceAndAnswersWithTheUpstreamsReply) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);
  const Outcome out = h.data();
  EXPECT_EQ(out.reply.code, 250);
  EXPECT_EQ(out.kind, obs::MessageOutcome::Relayed);
  ASSERT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(h.upstream_->messages[0], std::string("X-Counted: yes\r\n") + kRelayed);
  EXPECT_EQ(h.upstream_->calls,
            (std::vector<std::string>{"open", "MAIL a@example.com", "RCPT b@example.net", "DATA"}));
  EXPECT_EQ(h.stages_.mail_from, 1);
  EXPECT_EQ(h.stages_.headers, 1);
  EXPECT_EQ(h.stages_.body, "body\r\n.dot\r\n");
  EXPECT_EQ(h.counted("relayed"), 1);
  EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
  EXPECT_TRUE(h.ready());
}

TEST(Relay, TlsOrLoginFailureAtSetUpIsA451With470) {
  for (const Kind kind : {Kind::Tls, Kind::Auth}) {
    Harness h;
    h.upstream_->then(Step::Open, Script::Failure{kind}).then(Step::Open, Script::Failure{kind});
    h.hello();
    const auto r = h.mail();
    EXPECT_EQ(r.code, 451);
    EXPECT_EQ(r.enhanced, "4.7.0");
    EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
    EXPECT_TRUE(h.upstream_->messages.empty());
  }
}

TEST(Relay, ConnectFailureAtHelloThenAtMailIsA451AndNothingIsSent) {
  Harness h;
  h.upstream_->then(Step::Open, Script::Failure{Kind::Connect})
      .then(Step::Open, Script::Failure{Kind::Connect});
  h.hello();
  const auto r = h.mail();
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(r.enhanced, "4.4.1");
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_EQ(h.errors("connect"), 2);
  EXPECT_FALSE(h.ready());
  EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
  EXPECT_TRUE(h.upstream_->messages.empty());
}

TEST(Relay, ConnectFailureAtHelloIsRetriedAtMail) {
  Harness h;
  h.upstream_->then(Step::Open, Script::Failure{Kind::Connect});
  h.hello();
  EXPECT_FALSE(h.ready());
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_TRUE(h.ready());
}

// A MAIL with nothing pipelined behind it, to an upstream that pipelines,
// is answered here and goes upstream with the first RCPT, in one write.
TEST(Relay, MailAloneGoesUpstreamWithTheFirstRecipient) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.session_.state(), smtp::Session::State::HaveMail);
  EXPECT_EQ(h.upstream_->calls, (std::vector<std::string>{"open"}));  // nothing sent yet
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.upstream_->writes,
            (std::vector<std::string>{"MAIL a@example.com|RCPT b@example.net"}));
  EXPECT_EQ(h.to_c().code, 250);
  EXPECT_EQ(h.data().reply.code, 250);
  EXPECT_EQ(h.upstream_->calls,
            (std::vector<std::string>{"open", "MAIL a@example.com", "RCPT b@example.net",
                                      "RCPT c@example.net", "DATA"}));
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
}

// An upstream without PIPELINING gets MAIL when the client sends it.
TEST(Relay, WithoutPipeliningUpstreamMailGoesAtOnce) {
  Harness h;
  h.upstream_->capabilities.pipelining = false;
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.upstream_->calls, (std::vector<std::string>{"open", "MAIL a@example.com"}));
}

// A client that ends the transaction before any RCPT (RSET, QUIT; a sender
// verification probe) never reaches the upstream.
TEST(Relay, MailThenResetNeverReachesTheUpstream) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  h.run(Client::do_reset);
  h.session_.apply(command("RSET"));
  h.close();
  EXPECT_EQ(h.upstream_->calls, (std::vector<std::string>{"open"}));
  EXPECT_EQ(h.world.pool->idle(), 1u);
}

// The upstream's refusal of a MAIL answered here is the first recipient's
// reply; the transaction stays, and the next recipient tries MAIL again.
TEST(Relay, AnUpstreamRefusalOfADeferredMailAnswersEachRecipient) {
  Harness h;
  h.upstream_->then(Step::Mail, smtp::make_reply(553, "5.7.1", "sender refused"))
      .then(Step::Mail, smtp::make_reply(451, "4.3.0", "later"));
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  const smtp::Reply first = h.rcpt();
  EXPECT_EQ(first.code, 553);
  EXPECT_EQ(first.enhanced, "5.7.1");
  EXPECT_EQ(h.session_.state(), smtp::Session::State::HaveMail);
  EXPECT_EQ(h.to_c().code, 451);  // tried again: the upstream's verdict now
  EXPECT_EQ(h.rcpt().code, 250);  // and again: taken
  EXPECT_EQ(h.data().reply.code, 250);
  EXPECT_EQ(h.upstream_->writes,
            (std::vector<std::string>{"MAIL a@example.com|RCPT b@example.net",
                                      "MAIL a@example.com|RCPT c@example.net",
                                      "MAIL a@example.com|RCPT b@example.net"}));
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(h.upstream_->opens, 1);  // a refusal keeps the connection
}

// A MAIL answered here under what the pool knew is checked again when the
// connection its RCPT takes offers less (the server changed meanwhile).
TEST(Relay, ADeferredMailIsCheckedAgainstAServerThatOffersLess) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.run(+[](Client* c) -> asio::awaitable<smtp::Reply> {
               co_return co_await c->relay.mail(command("MAIL FROM:<a@example.com> SIZE=3000"));
             }).code,
            250);
  h.upstream_->capabilities.size = 1000;
  h.upstream_->capabilities.size_offered = true;
  h.upstream_->close_kept();  // the kept connection is gone: a new one learns the new limit
  const smtp::Reply r = h.rcpt();
  EXPECT_EQ(r.code, 552);
  EXPECT_EQ(r.enhanced, "5.3.4");
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_TRUE(h.upstream_->writes.empty());  // nothing went upstream
}

// Each upstream step x each reply class: the upstream's verdict is the
// client's; MAIL's comes with the first RCPT when MAIL was answered here.
TEST(Relay, RefusalsAtEachStepPassThrough) {
  struct Case {
    Step step;
    smtp::Reply reply;
  };
  for (const Case& c : {Case{Step::Mail, smtp::make_reply(451, "4.3.0", "later")},
                        Case{Step::Mail, smtp::make_reply(550, "5.7.1", "no")},
                        Case{Step::Rcpt, smtp::make_reply(450, "4.2.0", "later")},
                        Case{Step::Rcpt, smtp::make_reply(550, "5.1.1", "unknown user")},
                        Case{Step::Data, smtp::make_reply(451, "4.3.0", "later")},
                        Case{Step::Data, smtp::make_reply(554, "5.6.0", "no")}}) {
    for (const bool deferred : {false, true}) {
      SCOPED_TRACE(c.reply.summary() + (deferred ? " deferred" : " lockstep"));
      Harness h;
      h.upstream_->capabilities.pipelining = deferred;
      h.upstream_->then(c.step, c.reply);
      h.hello();
      smtp::Reply got = h.mail();
      if (c.step != Step::Mail || deferred) {
        if (c.step == Step::Mail) {
          EXPECT_EQ(got.code, 250);
        }
        got = h.rcpt();
      }
      if (c.step == Step::Data) {
        const Outcome out = h.data();
        got = out.reply;
        EXPECT_EQ(out.kind, c.reply.transient() ? obs::MessageOutcome::Tempfailed
                                                : obs::MessageOutcome::Rejected);
        EXPECT_EQ(h.counted(c.reply.transient() ? "tempfailed" : "rejected"), 1);
      }
      EXPECT_EQ(got.code, c.reply.code);
      EXPECT_EQ(got.enhanced, c.reply.enhanced);
      EXPECT_TRUE(h.upstream_->messages.empty());
      EXPECT_TRUE(h.ready());  // a refusal is an answer: the upstream is up
    }
  }
}

// Each step x the connection dying (dropped, timed out): 451, the
// transaction is over on both sides, nothing delivered, the failure counted.
TEST(Relay, ConnectionLossAtEachStepIsA451AndEndsTheTransaction) {
  for (Step step : {Step::Mail, Step::Rcpt, Step::Data}) {
    for (Kind kind : {Kind::Dropped, Kind::Timeout}) {
      for (const bool deferred : {false, true}) {
        SCOPED_TRACE(std::to_string(static_cast<int>(step)) + "/" + obs::to_string(kind) +
                     (deferred ? " deferred" : " lockstep"));
        Harness h;
        h.upstream_->capabilities.pipelining = deferred;
        h.upstream_->then(step, Script::Failure{kind});
        // A drop at MAIL is retried once (an idle connection the server
        // closed): the reconnection fails too.
        if (step == Step::Mail) {
          h.upstream_->then(Step::Open, smtp::make_reply(220, "", "first"))
              .then(Step::Open, Script::Failure{kind});
        }
        h.hello();
        smtp::Reply got = h.mail();
        if (step == Step::Mail && deferred) {
          // MAIL was answered here: its loss is the recipient's 451, and the
          // client's transaction stays (its next RCPT tries again).
          EXPECT_EQ(got.code, 250);
          got = h.rcpt();
          EXPECT_EQ(h.session_.state(), smtp::Session::State::HaveMail);
          h.run(Client::do_reset);
          h.session_.apply(command("RSET"));
        }
        if (step != Step::Mail) got = h.rcpt();
        if (step == Step::Rcpt) {
          // The client's transaction stays until its DATA, which gets the 451
          // too (not a 503: that would bounce the recipients).
          EXPECT_EQ(h.session_.state(), smtp::Session::State::HaveMail);
          const std::optional<smtp::Reply> lost = h.relay_->lost();
          ASSERT_TRUE(lost);
          EXPECT_EQ(lost->code, 451);
        }
        if (step == Step::Data) {
          const Outcome out = h.data();
          got = out.reply;
          EXPECT_EQ(out.kind, obs::MessageOutcome::Tempfailed);
        }
        EXPECT_EQ(got.code, 451);
        EXPECT_TRUE(h.upstream_->messages.empty());
        EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
        EXPECT_GE(h.errors(obs::to_string(kind)), 1);
        EXPECT_FALSE(h.ready());
      }
    }
  }
}

TEST(Relay, IdleDropAtMailIsRetriedOnAFreshConnectionWithTheStagesStillOn) {
  Harness h;
  h.upstream_->then(Step::Mail, Script::Failure{Kind::Dropped});
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);  // MAIL went with it
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_EQ(h.data().reply.code, 250);
  ASSERT_EQ(h.upstream_->messages.size(), 1u);
  // The stage made at MAIL still adds its field: the retry did not drop it.
  EXPECT_EQ(h.upstream_->messages[0].rfind("X-Counted: yes\r\n", 0), 0u);
}

TEST(Relay, A421AtMailOnAKeptConnectionIsRetriedOnAnother) {
  Harness h;
  h.upstream_->then(Step::Mail, smtp::make_reply(421, "4.4.2", "idle too long"));
  h.hello();  // the connection made here is kept, then used for MAIL
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);  // MAIL went with it
  EXPECT_EQ(h.upstream_->opens, 2);
}

TEST(Relay, A421AtMailOnANewConnectionIsTheAnswer) {
  Harness h;
  h.upstream_->then(Step::Open, Script::Failure{Kind::Connect})
      .then(Step::Mail, smtp::make_reply(421, "4.3.2", "shutting down"));
  h.hello();
  EXPECT_EQ(h.mail().code, 451);  // the upstream's connection closes, not ours
  EXPECT_EQ(h.upstream_->opens, 2);
}

TEST(Relay, NextTransactionAfterADropReconnects) {
  Harness h;
  h.upstream_->then(Step::Data, Script::Failure{Kind::Dropped});
  h.hello();
  h.mail();
  h.rcpt();
  EXPECT_EQ(h.data().reply.code, 451);
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().reply.code, 250);
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(h.counted("tempfailed"), 1);
  EXPECT_EQ(h.counted("relayed"), 1);
}

TEST(Relay, StageRefusalAtMailNeverReachesTheUpstream) {
  Harness h;
  h.stages_.refuse_mail = smtp::make_reply(550, "5.7.23", "SPF fail");
  h.hello();
  EXPECT_EQ(h.mail().code, 550);
  EXPECT_EQ(h.upstream_->calls, (std::vector<std::string>{"open"}));
  EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
}

TEST(Relay, StageRefusalAtEndOfDataResetsTheUpstream) {
  Harness h;
  h.stages_.refuse_data = smtp::make_reply(451, "4.7.5", "cannot sign");
  h.hello();
  h.mail();
  h.rcpt();
  const Outcome out = h.data();
  EXPECT_EQ(out.reply.code, 451);
  EXPECT_EQ(out.kind, obs::MessageOutcome::Tempfailed);
  EXPECT_EQ(h.upstream_->calls.back(), "RSET");
  EXPECT_TRUE(h.upstream_->messages.empty());
}

TEST(Relay, MessagesTheDecoderRefusesAreNeverSent) {
  std::string many_headers;
  for (int i = 0; i < 20; ++i)
    many_headers += "X-H" + std::to_string(i) + ": " + std::string(56, 'h') + "\r\n";
  std::string too_big = "Subject: x\r\n\r\n";
  for (int i = 0; i < 70; ++i) too_big += std::string(60, 'b') + "\r\n";
  struct Case {
    std::string message;
    int code;
  };
  for (const Case& c :
       {Case{"Subject: x\r\n\r\n" + std::string(2000, 'a') + "\r\n.\r\n", 550},
        Case{"Subject: x\r\n\r\nbare\nlf\r\n.\r\n", 250},  // normalized
        Case{many_headers + "\r\nbody\r\n.\r\n", 552}, Case{too_big + ".\r\n", 552}}) {
    SCOPED_TRACE(c.message.substr(0, 30));
    Harness h;
    h.hello();
    h.mail();
    h.rcpt();
    const Outcome out = h.data(c.message, 3);
    EXPECT_EQ(out.reply.code, c.code);
    EXPECT_EQ(h.upstream_->messages.size(), c.code == 250 ? 1u : 0u);
  }
}

TEST(Relay, ClientGoneMidDataQuitsTheUpstreamAndDeliversNothing) {
  Harness h;
  h.hello();
  h.mail();
  h.rcpt();
  h.session_.apply(command("DATA"));
  h.relay_->begin_data();
  h.relay_->add("Subject: half\r\n\r\nsome of the bo");
  EXPECT_FALSE(h.relay_->data_complete());
  h.run(&Client::do_abort);
  EXPECT_EQ(h.upstream_->calls.back(), "QUIT");
  EXPECT_TRUE(h.upstream_->messages.empty());
  EXPECT_EQ(h.counted("aborted"), 1);
}

TEST(Relay, PipelinedBytesAfterTheEndOfDataAreLeftForTheConnection) {
  Harness h;
  h.hello();
  h.mail();
  h.rcpt();
  h.session_.apply(command("DATA"));
  h.relay_->begin_data();
  const std::string input = std::string(kMessage) + "QUIT\r\n";
  EXPECT_EQ(h.relay_->add(input), std::string(kMessage).size());
  EXPECT_TRUE(h.relay_->data_complete());
  EXPECT_EQ(h.run(&Client::do_finish).reply.code, 250);
}

// BDAT chunks (RFC 3030): raw octets, no dot-stuffing, the same pipeline.

// kRaw is kMessage as BDAT carries it: no stuffing, no terminator.
const char* const kRaw = "From: <a@example.com>\r\nSubject: hi\r\n\r\nbody\r\n.dot\r\n";

TEST(RelayChunks, EveryChunkSizeRelaysWhatDataRelays) {
  const std::string raw = kRaw;
  for (std::size_t step = 1; step <= raw.size() + 1; ++step) {
    SCOPED_TRACE(step);
    Harness h;
    h.hello();
    h.mail();
    h.rcpt();
    const Outcome out = h.chunks(raw, step);
    EXPECT_EQ(out.reply.code, 250);
    ASSERT_EQ(h.upstream_->messages.size(), 1u);
    EXPECT_EQ(h.upstream_->messages[0], std::string("X-Counted: yes\r\n") + kRelayed);
    EXPECT_EQ(h.stages_.headers, 1);
    EXPECT_EQ(h.stages_.body, "body\r\n.dot\r\n");
    EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
  }
}

TEST(RelayChunks, TheEndOfDataLookalikeInAChunkIsContent) {
  Harness h;
  h.hello();
  h.mail();
  h.rcpt();
  const std::string raw = "Subject: x\r\n\r\nbefore\r\n.\r\nMAIL FROM:<evil@x>\r\n";
  EXPECT_EQ(h.chunks(raw, 9).reply.code, 250);
  ASSERT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(h.upstream_->messages[0], "X-Counted: yes\r\n" + raw);
  EXPECT_EQ(h.upstream_->calls,
            (std::vector<std::string>{"open", "MAIL a@example.com", "RCPT b@example.net", "DATA"}));
}

TEST(RelayChunks, AnEmptyLastChunkEndsTheMessage) {
  Harness h;
  h.hello();
  h.mail();
  h.rcpt();
  EXPECT_EQ(h.chunks("", 5).reply.code, 250);
  ASSERT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(h.upstream_->messages[0], "X-Counted: yes\r\n");
}

TEST(RelayChunks, ARefusedChunkResetsTheUpstreamAndDeliversNothing) {
  Harness h;
  h.chunk_started("BDAT 5", "Subje");
  h.run(&Client::do_refuse_chunks);
  EXPECT_EQ(h.upstream_->calls.back(), "RSET");
  EXPECT_TRUE(h.upstream_->messages.empty());
  EXPECT_EQ(h.counted("rejected"), 1);
  EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
  // The next transaction on the session is whole.
  h.mail();
  h.rcpt();
  EXPECT_EQ(h.chunks(kRaw, 4).reply.code, 250);
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
}

TEST(RelayChunks, RsetBetweenChunksDropsTheMessage) {
  Harness h;
  h.chunk_started("BDAT 5", "Subje");
  EXPECT_TRUE(h.relay_->in_chunks());
  h.run(&Client::do_reset);
  h.session_.apply(command("RSET"));
  EXPECT_FALSE(h.relay_->in_chunks());
  EXPECT_EQ(h.upstream_->calls.back(), "RSET");
  EXPECT_EQ(h.counted("aborted"), 1);
  h.mail();
  h.rcpt();
  EXPECT_EQ(h.chunks(kRaw, 100).reply.code, 250);
  ASSERT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(h.upstream_->messages[0], std::string("X-Counted: yes\r\n") + kRelayed);
}

TEST(RelayChunks, ClientGoneMidChunkQuitsTheUpstream) {
  Harness h;
  h.chunk_started("BDAT 100", "Subject: half");
  h.run(&Client::do_abort);
  EXPECT_EQ(h.upstream_->calls.back(), "QUIT");
  EXPECT_TRUE(h.upstream_->messages.empty());
}

// The pool: connections kept between transactions and shared by sessions.

TEST(RelayPool, ConnectionsAreKeptAndSharedBetweenSessions) {
  World w;
  Client a(w, "a"), b(w, "b");
  for (Client* c : {&a, &b}) {
    c->hello();
    EXPECT_EQ(c->mail().code, 250);
    EXPECT_EQ(c->rcpt().code, 250);
    EXPECT_EQ(c->data().reply.code, 250);
  }
  EXPECT_EQ(w.script->opens, 1);
  EXPECT_EQ(w.script->messages.size(), 2u);
  EXPECT_EQ(w.pool->idle(), 1u);
}

TEST(RelayPool, IdleSessionsHoldNoConnection) {
  World w;
  Client a(w, "a"), b(w, "b"), c(w, "c");
  a.hello();  // the first learns what the upstream offers
  b.hello();
  c.hello();
  EXPECT_EQ(w.script->opens, 1);
  EXPECT_EQ(w.pool->open(), 1u);
  EXPECT_TRUE(c.session.upstream_capabilities().eightbitmime);
}

TEST(RelayPool, AKeptConnectionTheServerClosedIsReplacedWithoutLoss) {
  World w;
  Client a(w);
  a.hello();
  w.script->close_kept();  // Postfix's idle timeout while it sat in the pool
  EXPECT_EQ(a.mail().code, 250);
  EXPECT_EQ(a.rcpt().code, 250);
  EXPECT_EQ(a.data().reply.code, 250);
  EXPECT_EQ(w.script->opens, 2);
  EXPECT_EQ(w.script->messages.size(), 1u);
}

TEST(RelayPool, ADropAfterDataLosesTheConnectionNotTheNextMessage) {
  World w;
  Client a(w);
  w.script->then(Step::Data, Script::Failure{Kind::Dropped});
  a.hello();
  a.mail();
  a.rcpt();
  EXPECT_EQ(a.data().reply.code, 451);  // not acknowledged: the client keeps it
  EXPECT_EQ(w.pool->open(), 0u);
  a.mail();
  a.rcpt();
  EXPECT_EQ(a.data().reply.code, 250);
  EXPECT_EQ(w.script->messages.size(), 1u);
}

TEST(RelayPool, AClientThatQuitsMidTransactionLeavesAResetConnection) {
  World w;
  Client a(w);
  a.hello();
  a.mail();
  a.rcpt();
  a.close();
  EXPECT_EQ(w.script->calls.back(), "RSET");
  EXPECT_EQ(w.pool->idle(), 1u);
  EXPECT_TRUE(w.script->messages.empty());
}

// At the cap a transaction waits for a connection: one that comes back in
// time is handed over; none, and the client gets 451 4.4.5 at the deadline.
TEST(RelayPool, AtTheCapATransactionWaitsForAConnection) {
  World w("command_timeout = \"5s\"\n[upstream]\nmax_connections = 1\n");
  Client a(w, "a"), b(w, "b");
  a.hello();
  b.hello();
  EXPECT_EQ(a.mail().code, 250);
  EXPECT_EQ(a.rcpt().code, 250);  // a holds the only connection
  EXPECT_EQ(b.mail().code, 250);  // answered here: no connection needed yet
  std::optional<smtp::Reply> waited;
  asio::co_spawn(w.io, Client::do_rcpt(&b),
                 [&](std::exception_ptr, smtp::Reply r) { waited = std::move(r); });
  w.io.restart();
  w.io.poll();
  EXPECT_FALSE(waited);
  EXPECT_EQ(a.data().reply.code, 250);  // gives it back: to b
  w.run([&] { return waited.has_value(); });
  EXPECT_EQ(waited->code, 250);
  EXPECT_EQ(w.script->opens, 1);
}

TEST(RelayPool, AtTheCapPastTheDeadlineIs451) {
  World w("command_timeout = \"1s\"\n[upstream]\nmax_connections = 1\n");
  Client a(w, "a"), b(w, "b");
  a.hello();
  b.hello();
  EXPECT_EQ(a.mail().code, 250);
  EXPECT_EQ(a.rcpt().code, 250);  // a holds the only connection
  EXPECT_EQ(b.mail().code, 250);
  const auto started = std::chrono::steady_clock::now();
  const smtp::Reply r = b.rcpt();
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(r.enhanced, "4.4.5");
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(900));
  EXPECT_EQ(w.script->opens, 1);
}

TEST(RelayPool, AnIdleConnectionIsClosedAfterIdleTimeout) {
  World w("[upstream]\nidle_timeout = \"1s\"\n");
  Client a(w);
  a.hello();
  EXPECT_EQ(w.pool->idle(), 1u);
  const auto started = std::chrono::steady_clock::now();
  w.run([&] { return w.pool->idle() == 0 && w.script->calls.back() == "QUIT"; });
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(900));
}

// Pipelining (RFC 2920): the recipients a client sent behind MAIL go to the
// upstream in MAIL's write; each gets its own reply, in order.
TEST(RelayPipelining, RecipientsSentAheadGoInMailsWriteAndAreAnsweredInOrder) {
  Harness h;
  h.upstream_->then(Step::Rcpt, smtp::make_reply(250, "2.1.5", "b ok"))
      .then(Step::Rcpt, smtp::make_reply(550, "5.1.1", "c unknown"));
  h.hello();
  const std::vector<std::string> ahead{"RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>",
                                       "DATA"};
  EXPECT_EQ(h.mail_ahead(ahead).code, 250);
  // DATA right behind the recipients goes in the same write (RFC 2920).
  EXPECT_EQ(
      h.upstream_->writes,
      (std::vector<std::string>{"MAIL a@example.com|RCPT b@example.net|RCPT c@example.net|DATA"}));
  const smtp::Reply b = h.rcpt_to(ahead[0], {ahead[1], ahead[2]});
  const smtp::Reply c = h.rcpt_to(ahead[1], {ahead[2]});
  EXPECT_EQ(b.code, 250);
  EXPECT_EQ(b.text, "b ok");
  EXPECT_EQ(c.code, 550);
  EXPECT_EQ(h.upstream_->writes.size(), 1u) << "no second write for recipients sent ahead";
  EXPECT_FALSE(h.relay_->data_refused());
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
  EXPECT_EQ(h.session_.envelope().recipients.size(), 0u);
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
  EXPECT_EQ(std::count(h.upstream_->calls.begin(), h.upstream_->calls.end(), "DATA"), 1)
      << "DATA, answered 354 ahead, is not sent again";
}

// DATA goes ahead only behind recipients the client pipelined with it, and
// when the session will take it whatever the upstream says of them.
TEST(RelayPipelining, DataGoesAheadOnlyRightBehindTheRecipients) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail_ahead({"DATA"}).code, 250);  // no recipient: the session refuses DATA
  EXPECT_EQ(h.upstream_->writes.back(), "MAIL a@example.com");
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"NOOP", "DATA"}).code, 250);
  EXPECT_EQ(h.upstream_->writes.back(), "RCPT b@example.net");
  EXPECT_EQ(h.rcpt_to("RCPT TO:<c@example.net>", {"DATA"}).code, 250);
  EXPECT_EQ(h.upstream_->writes.back(), "RCPT c@example.net|DATA");
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
}

TEST(RelayPipelining, DataIsNotSentAheadToAServerThatTakesBdat) {
  Harness h;
  h.upstream_->capabilities.chunking = true;
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.upstream_->writes.back(), "MAIL a@example.com|RCPT b@example.net");
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  EXPECT_FALSE(h.relay_->data_refused());
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
}

// The upstream's refusal of DATA is the client's answer to its DATA; the
// envelope stays, and a DATA sent again goes at the end of the message.
TEST(RelayPipelining, ADataRefusedUpstreamIsTheClientsAnswerAndTheEnvelopeStays) {
  Harness h;
  h.upstream_->then(Step::DataAhead, smtp::make_reply(451, "4.3.0", "try later"));
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  const std::optional<smtp::Reply> refused = h.relay_->data_refused();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, 451);
  EXPECT_EQ(refused->enhanced, "4.3.0");
  EXPECT_FALSE(h.relay_->data_refused()) << "answered once";
  EXPECT_EQ(h.session_.envelope().recipients.size(), 1u);
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
  EXPECT_EQ(std::count(h.upstream_->calls.begin(), h.upstream_->calls.end(), "DATA"), 2);
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
}

// Every recipient refused upstream: the session refuses the client's DATA
// itself (no recipient), and the upstream's refusal of the DATA sent ahead
// must not answer a later DATA, after a recipient was accepted.
TEST(RelayPipelining, ARefusalOfDataAnswersOnlyTheDataBehindTheRecipients) {
  Harness h;
  h.upstream_->then(Step::Rcpt, smtp::make_reply(550, "5.1.1", "unknown"))
      .then(Step::DataAhead, smtp::make_reply(554, "5.5.1", "no valid recipients"));
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<x@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<x@example.net>", {"DATA"}).code, 550);
  EXPECT_TRUE(h.session_.check(command("DATA")));  // the Connection answers it
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>").code, 250);
  EXPECT_FALSE(h.relay_->data_refused());
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
}

TEST(RelayPipelining, AConnectionLostAtDatasReplyLosesTheTransaction) {
  Harness h;
  h.upstream_->then(Step::DataAhead, Script::Failure{Kind::Dropped});
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  const std::optional<smtp::Reply> lost = h.relay_->lost();
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->code, 451);
  EXPECT_EQ(h.errors("dropped"), 1);
  EXPECT_EQ(h.mail().code, 250);  // the next transaction is whole
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
}

// After a 354 the upstream waits for the message: one refused here (a
// stage, the decoder) cannot be reset, so the connection is closed without
// a word, never completing anything; the session sends DATA at the end
// from then on, so a client cannot make every message cost a connection.
TEST(RelayPipelining, AMessageRefusedHereAfterA354DropsThatConnectionOnly) {
  Harness h;
  h.stages_.refuse_data = smtp::make_reply(554, "5.7.1", "refused here");
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  const Outcome out = h.data();
  EXPECT_EQ(out.reply.code, 554);
  EXPECT_EQ(h.upstream_->calls.back(), "DROP");
  EXPECT_TRUE(h.upstream_->messages.empty());
  EXPECT_EQ(h.errors("dropped"), 0) << "not the upstream's failure";
  h.stages_.refuse_data.reset();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.upstream_->writes.back(), "MAIL a@example.com|RCPT b@example.net");
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_EQ(h.upstream_->messages.size(), 1u);
}

TEST(RelayPipelining, ATooBigMessageAfterA354DeliversNothing) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  const Outcome out = h.data("Subject: x\r\n\r\n" + std::string(5000, 'a') + "\r\n.\r\n", 3);
  EXPECT_EQ(out.reply.code / 100, 5);
  EXPECT_EQ(h.upstream_->calls.back(), "DROP");
  EXPECT_TRUE(h.upstream_->messages.empty());
}

TEST(RelayPipelining, AClientGoneAfterA354DropsTheConnectionWithoutQuit) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  h.session_.apply(command("DATA"));
  h.relay_->begin_data();
  h.relay_->add("Subject: half\r\n\r\nsome of the bo");
  h.run(&Client::do_abort);
  EXPECT_EQ(h.upstream_->calls.back(), "DROP");
  EXPECT_EQ(std::count(h.upstream_->calls.begin(), h.upstream_->calls.end(), "QUIT"), 0)
      << "QUIT would be message text";
  EXPECT_TRUE(h.upstream_->messages.empty());
  EXPECT_EQ(h.counted("aborted"), 1);
}

// The client's DATA refused here after the upstream said 354 to the DATA
// sent ahead (it may not be, but an upstream may accept what we do not):
// RSET cannot end that, the connection goes.
TEST(RelayPipelining, AResetAfterA354DropsTheConnection) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "DATA"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"DATA"}).code, 250);
  h.run(Client::do_reset);
  EXPECT_EQ(h.upstream_->calls.back(), "DROP");
  h.session_.apply(command("RSET"));
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
  EXPECT_EQ(h.upstream_->opens, 2);
}

TEST(RelayPipelining, RecipientsAheadOfARefusedMailLeaveTheConnectionClean) {
  Harness h;
  h.upstream_->then(Step::Mail, smtp::make_reply(550, "5.7.1", "sender refused"));
  h.hello();
  const std::vector<std::string> ahead{"RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>"};
  EXPECT_EQ(h.mail_ahead(ahead).code, 550);
  // The session refuses them itself; the upstream never hears of them again.
  EXPECT_EQ(h.rcpt_to(ahead[0], {ahead[1]}).code, 503);
  EXPECT_EQ(h.rcpt_to(ahead[1]).code, 503);
  // The same connection carries the next transaction.
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().kind, obs::MessageOutcome::Relayed);
  EXPECT_EQ(h.upstream_->opens, 1);
}

TEST(RelayPipelining, ARecipientTheSessionWouldRefuseIsNeverSentAhead) {
  // Two recipients at most: the third must not reach the upstream, whatever
  // it answers the first two.
  World w;
  Client c(w, "t", 2);
  c.hello();
  const std::vector<std::string> ahead{"RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>",
                                       "RCPT TO:<d@example.net>", "RCPT TO:<e@example.net>"};
  EXPECT_EQ(c.mail_ahead(ahead).code, 250);
  EXPECT_EQ(w.script->writes,
            (std::vector<std::string>{"MAIL a@example.com|RCPT b@example.net|RCPT c@example.net"}));
  EXPECT_EQ(c.rcpt_to(ahead[0], {ahead[1], ahead[2], ahead[3]}).code, 250);
  EXPECT_EQ(c.rcpt_to(ahead[1], {ahead[2], ahead[3]}).code, 250);
  EXPECT_EQ(c.rcpt_to(ahead[2], {ahead[3]}).code, 452);
  EXPECT_EQ(w.script->writes.size(), 1u);
}

TEST(RelayPipelining, OnlyRecipientsUpToTheNextOtherCommandAreSentAhead) {
  Harness h;
  h.hello();
  EXPECT_EQ(h.mail_ahead({"RCPT TO:<b@example.net>", "NOOP", "RCPT TO:<c@example.net>"}).code, 250);
  EXPECT_EQ(h.upstream_->writes,
            (std::vector<std::string>{"MAIL a@example.com|RCPT b@example.net"}));
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>", {"NOOP"}).code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<c@example.net>").code, 250);
  EXPECT_EQ(h.upstream_->writes.back(), "RCPT c@example.net");
}

TEST(RelayPipelining, WithoutPipeliningUpstreamEachCommandIsItsOwnWrite) {
  Harness h;
  h.upstream_->capabilities.pipelining = false;
  h.hello();
  const std::vector<std::string> ahead{"RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>"};
  EXPECT_EQ(h.mail_ahead(ahead).code, 250);
  EXPECT_EQ(h.rcpt_to(ahead[0], {ahead[1]}).code, 250);
  EXPECT_EQ(h.rcpt_to(ahead[1]).code, 250);
  EXPECT_EQ(
      h.upstream_->writes,
      (std::vector<std::string>{"MAIL a@example.com", "RCPT b@example.net", "RCPT c@example.net"}));
}

TEST(RelayPipelining, ADropWhileRecipientsAreAheadEndsTheTransaction) {
  Harness h;
  h.upstream_->then(Step::Rcpt, Script::Failure{Kind::Dropped});
  h.hello();
  const std::vector<std::string> ahead{"RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>"};
  EXPECT_EQ(h.mail_ahead(ahead).code, 250);
  EXPECT_EQ(h.rcpt_to(ahead[0], {ahead[1]}).code, 451);
  EXPECT_EQ(h.rcpt_to(ahead[1]).code, 451);  // the transaction is lost, not gone
  EXPECT_TRUE(h.upstream_->messages.empty());
}

// The upstream dies after a recipient was accepted: every later command of
// that transaction gets a 4xx, never a 503 or a 554 that would make the
// client bounce a recipient nobody refused; the next transaction is whole.
TEST(Relay, AfterTheUpstreamDiesMidEnvelopeTheRestOfTheTransactionIs451) {
  Harness h;
  h.upstream_->then(Step::Rcpt, smtp::make_reply(250, "2.1.5", "Ok"))
      .then(Step::Rcpt, Script::Failure{Kind::Dropped});
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<b@example.net>").code, 250);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<c@example.net>").code, 451);
  EXPECT_EQ(h.rcpt_to("RCPT TO:<d@example.net>").code, 451);
  EXPECT_FALSE(h.session_.check(command("DATA")));
  const std::optional<smtp::Reply> lost = h.relay_->lost();
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->code, 451);
  EXPECT_EQ(h.session_.state(), smtp::Session::State::Greeted);
  EXPECT_FALSE(h.relay_->lost());
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().reply.code, 250);
  EXPECT_EQ(h.upstream_->messages.size(), 1U);
}

// RSET ends a lost transaction as any other.
TEST(Relay, RsetEndsALostTransaction) {
  Harness h;
  h.upstream_->then(Step::Rcpt, Script::Failure{Kind::Dropped});
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 451);
  h.run(Client::do_reset);
  h.session_.apply(command("RSET"));
  EXPECT_FALSE(h.relay_->lost());
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().reply.code, 250);
}

// Failover: two servers, a and b, tried in that order.
struct Failover : World, Client {
  Failover() : World("", {"a", "b"}), Client(static_cast<World&>(*this)) {}
  test::Script& a() { return *servers->scripts["a"]; }
  test::Script& b() { return *servers->scripts["b"]; }
  ServerHealth& health_of() { return *servers->health; }
  bool ready() { return health.not_ready_reason().empty(); }
  smtp::Reply to(const std::string& address) { return rcpt_to("RCPT TO:<" + address + ">"); }
};

const std::vector<std::string> kToB{"open", "MAIL a@example.com", "RCPT b@example.net",
                                    "RCPT c@example.net", "DATA"};

TEST(RelayFailover, ARefusedConnectionGoesToTheNextServerWhichIsThenUsedFirst) {
  Failover f;
  f.a().then(Step::Open, Script::Failure{Kind::Connect});
  f.hello();
  EXPECT_EQ(f.mail().code, 250);
  EXPECT_EQ(f.to("b@example.net").code, 250);
  EXPECT_EQ(f.to("c@example.net").code, 250);
  EXPECT_EQ(f.data().reply.code, 250);
  EXPECT_EQ(f.b().messages.size(), 1u);
  EXPECT_TRUE(f.health_of().skipped("a"));
  EXPECT_EQ(f.health_of().order(), (std::vector<std::string>{"b"}));
  EXPECT_TRUE(f.ready());  // b works
}

// A 421 or a drop at each step before the final dot: the transaction moves
// to b with MAIL and the recipients accepted so far replayed, in lockstep;
// the client sees nothing but 250s, and b delivers the message once.
TEST(RelayFailover, A421OrADropBeforeTheDotMovesTheTransactionToTheNextServer) {
  for (Step step : {Step::Mail, Step::Rcpt, Step::Data}) {
    for (bool drop : {false, true}) {
      SCOPED_TRACE(std::to_string(static_cast<int>(step)) + (drop ? " drop" : " 421"));
      Failover f;
      f.hello();  // the connection to a is made and kept
      if (step == Step::Rcpt) f.a().then(Step::Rcpt, smtp::make_reply(250, "2.1.5", "Ok"));
      const Script::Action fault = drop ? Script::Action{Script::Failure{Kind::Dropped}}
                                        : Script::Action{smtp::make_reply(421, "4.3.2", "bye")};
      f.a().then(step, fault);
      // A drop at MAIL on a kept connection is first retried on a new one
      // (an idle timeout looks like that): a is asked again and fails again.
      if (step == Step::Mail) f.a().then(Step::Mail, fault);
      EXPECT_EQ(f.mail().code, 250);
      EXPECT_EQ(f.to("b@example.net").code, 250);
      EXPECT_EQ(f.to("c@example.net").code, 250);
      const Outcome out = f.data();
      EXPECT_EQ(out.reply.code, 250);
      EXPECT_TRUE(f.a().messages.empty());
      ASSERT_EQ(f.b().messages.size(), 1u);
      EXPECT_EQ(f.b().messages[0], std::string("X-Counted: yes\r\n") + kRelayed);
      EXPECT_EQ(f.b().calls, kToB);
      EXPECT_TRUE(f.health_of().skipped("a"));
      EXPECT_TRUE(f.ready());
    }
  }
}

TEST(RelayFailover, ADropAfterTheDotIsNeverSentElsewhere) {
  Failover f;
  f.a().then(Step::Data, Script::Failure{Kind::Dropped, true});
  f.hello();
  f.mail();
  f.to("b@example.net");
  const Outcome out = f.data();
  EXPECT_EQ(out.reply.code, 451);
  EXPECT_EQ(f.a().messages.size(), 1u);  // a may have it: the duplicate window
  EXPECT_EQ(f.b().opens, 0);
}

TEST(RelayFailover, TheNewServersVerdictOnTheCurrentRecipientIsTheAnswer) {
  Failover f;
  f.a().then(Step::Rcpt, Script::Failure{Kind::Dropped});
  f.b().then(Step::Rcpt, smtp::make_reply(550, "5.1.1", "no such user"));
  f.hello();
  EXPECT_EQ(f.mail().code, 250);
  EXPECT_EQ(f.to("b@example.net").code, 550);
  EXPECT_EQ(f.to("c@example.net").code, 250);
  EXPECT_EQ(f.data().reply.code, 250);
  EXPECT_EQ(f.b().calls,
            (std::vector<std::string>{"open", "MAIL a@example.com", "RCPT b@example.net",
                                      "RCPT c@example.net", "DATA"}));
}

// The client was told 250 for b@; the new server refuses it at the replay:
// the transaction cannot be moved as it is, so it ends with a 4xx (the
// client tries again later, and each recipient then gets b's verdict).
TEST(RelayFailover, ARecipientTheNewServerRefusesAtTheReplayFailsTheTransactionWith4xx) {
  Failover f;
  f.a()
      .then(Step::Rcpt, smtp::make_reply(250, "2.1.5", "Ok"))
      .then(Step::Rcpt, smtp::make_reply(421, "4.3.2", "bye"));
  f.b().then(Step::Rcpt, smtp::make_reply(550, "5.1.1", "no such user"));
  f.hello();
  EXPECT_EQ(f.mail().code, 250);
  EXPECT_EQ(f.to("b@example.net").code, 250);
  const smtp::Reply r = f.to("c@example.net");
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(f.b().calls,
            (std::vector<std::string>{"open", "MAIL a@example.com", "RCPT b@example.net", "RSET"}));
  // Lost: DATA gets the 451 too, and that ends it.
  const std::optional<smtp::Reply> lost = f.relay.lost();
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->code, 451);
  EXPECT_EQ(f.session.state(), smtp::Session::State::Greeted);
  EXPECT_TRUE(f.a().messages.empty());
  EXPECT_TRUE(f.b().messages.empty());
}

TEST(RelayFailover, OnlyWhenEveryServerFailsIsTheAnswer451AndNotReady) {
  Failover f;
  f.hello();
  f.a()
      .then(Step::Mail, Script::Failure{Kind::Dropped})
      .then(Step::Mail, Script::Failure{Kind::Dropped});
  f.b().then(Step::Mail, Script::Failure{Kind::Dropped});
  EXPECT_EQ(f.mail().code, 250);  // answered here; MAIL goes with the first RCPT
  EXPECT_EQ(f.to("b@example.net").code, 451);
  EXPECT_TRUE(f.health_of().all_failing());
  EXPECT_FALSE(f.ready());
  // Both in their backoff: the next try still goes (every server is down,
  // so all of them are, the soonest back first), and a answers.
  EXPECT_EQ(f.to("b@example.net").code, 250);
  EXPECT_EQ(f.data().reply.code, 250);
  EXPECT_FALSE(f.health_of().all_failing());
  EXPECT_TRUE(f.ready());
}

TEST(ServerHealth, FailingServersAreSkippedWithBackoffUnlessAllAre) {
  ServerHealth h({"a", "b", "c"});
  EXPECT_EQ(h.order(), (std::vector<std::string>{"a", "b", "c"}));
  h.failed("b");
  EXPECT_TRUE(h.skipped("b"));
  EXPECT_EQ(h.order(), (std::vector<std::string>{"a", "c"}));
  EXPECT_FALSE(h.all_failing());
  h.failed("a");
  h.failed("a");  // a second failure: a longer backoff than c's
  h.failed("c");
  EXPECT_TRUE(h.all_failing());
  // Every one down: all are tried, the soonest back first.
  EXPECT_EQ(h.order(), (std::vector<std::string>{"b", "c", "a"}));
  h.succeeded("a");
  EXPECT_FALSE(h.all_failing());
  EXPECT_EQ(h.order(), (std::vector<std::string>{"a"}));
  h.failed("unknown");  // not configured: ignored
  EXPECT_EQ(h.size(), 3u);
}

}  // namespace
}  // namespace stampd::proxy
