// Relay driven with strings and a scripted upstream, the way Boost.MySQL tests
// its sans-IO algorithms: every step of the transaction (connect, MAIL, RCPT,
// DATA) against every upstream failure (4xx, 5xx, drop, timeout), checking
// the reply the client gets, what the upstream saw, the session's state, and
// what was counted. The one invariant: a message is delivered exactly once
// when the client gets 250, and not at all otherwise.
#include "proxy/relay.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "obs/health.h"
#include "obs/metrics.h"
#include "tests/support/run_coroutine.h"
#include "tests/support/scripted_upstream.h"

namespace stampd::proxy {
namespace {

namespace asio = boost::asio;
using test::ScriptedUpstream;
using Step = ScriptedUpstream::Step;
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

// Harness is one client session's Relay with its scripted upstream.
struct Harness {
  Harness()
      : recorder_(metrics_, health_, smtp::verb_names()),
        record_(recorder_, "t"),
        session_(smtp::SessionLimits{1000, 4096, 10000, 20}, smtp::ClientInfo{*net::parse_ip("127.0.0.1"), 2525, true},
                 "stampd.test") {
    auto runtime = std::make_shared<Runtime>();
    runtime->config = parse_config(
        "[server]\nmax_message_size = \"4KiB\"\nmax_header_size = \"1KiB\"\n", "relay_test.toml");
    health_.set_listening(true);
    runtime->stage_factories.push_back(std::make_shared<CountingFactory>(stages_));
    auto upstream = std::make_unique<ScriptedUpstream>();
    upstream_ = upstream.get();
    relay_ = std::make_unique<Relay>(runtime, std::move(upstream), session_, record_);
  }

  // run runs one step of the relay to completion.
  template <class T>
  T run(asio::awaitable<T> (*step)(Harness*)) {
    return test::run_coroutine<T>([this, step](asio::io_context&) { return step(this); });
  }

  static asio::awaitable<bool> do_hello(Harness* t) {
    co_await t->relay_->hello();
    co_return true;
  }
  static asio::awaitable<smtp::Reply> do_mail(Harness* t) {
    co_return co_await t->relay_->mail(command("MAIL FROM:<a@example.com>"));
  }
  static asio::awaitable<smtp::Reply> do_rcpt(Harness* t) {
    co_return co_await t->relay_->rcpt(command("RCPT TO:<b@example.net>"));
  }
  static asio::awaitable<Outcome> do_finish(Harness* t) { co_return co_await t->relay_->finish(); }
  static asio::awaitable<bool> do_abort(Harness* t) {
    co_await t->relay_->abort("closed the connection");
    co_return true;
  }

  void hello() {
    run(&Harness::do_hello);
    session_.apply(command("EHLO client.test"));
  }
  smtp::Reply mail() { return run(&Harness::do_mail); }
  smtp::Reply rcpt() { return run(&Harness::do_rcpt); }
  // data sends DATA and the message, split in two at cut, and finishes it.
  Outcome data(const std::string& message = kMessage, std::size_t cut = 7) {
    session_.apply(command("DATA"));
    relay_->begin_data();
    std::size_t used = relay_->add(std::string_view(message).substr(0, cut));
    used += relay_->add(std::string_view(message).substr(used));
    EXPECT_TRUE(relay_->data_complete());
    EXPECT_EQ(used, message.size());
    return run(&Harness::do_finish);
  }

  double counted(const char* outcome) {
    return metrics_.messages.Add({{"outcome", outcome}}).Value();
  }
  double errors(const char* kind) { return metrics_.upstream_errors.Add({{"kind", kind}}).Value(); }
  bool ready() { return health_.not_ready_reason().empty(); }

  obs::Metrics metrics_;
  obs::Health health_;
  obs::Recorder recorder_;
  obs::SessionRecord record_;
  smtp::Session session_;
  StageLog stages_;
  ScriptedUpstream* upstream_ = nullptr;
  std::unique_ptr<Relay> relay_;
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

TEST(Relay, ConnectFailureAtHelloThenAtMailIsA451AndNothingIsSent) {
  Harness h;
  h.upstream_->then(Step::Open, ScriptedUpstream::Failure{Kind::Connect})
      .then(Step::Open, ScriptedUpstream::Failure{Kind::Connect});
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
  h.upstream_->then(Step::Open, ScriptedUpstream::Failure{Kind::Connect});
  h.hello();
  EXPECT_FALSE(h.ready());
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_TRUE(h.ready());
}

// Each upstream step x each reply class: the upstream's verdict is the client's.
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
    SCOPED_TRACE(c.reply.summary());
    Harness h;
    h.upstream_->then(c.step, c.reply);
    h.hello();
    smtp::Reply got = h.mail();
    if (c.step != Step::Mail) got = h.rcpt();
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

// Each step x the connection dying (dropped, timed out): 451, the
// transaction is over on both sides, nothing delivered, the failure counted.
TEST(Relay, ConnectionLossAtEachStepIsA451AndEndsTheTransaction) {
  for (Step step : {Step::Mail, Step::Rcpt, Step::Data}) {
    for (Kind kind : {Kind::Dropped, Kind::Timeout}) {
      SCOPED_TRACE(std::to_string(static_cast<int>(step)) + "/" + obs::to_string(kind));
      Harness h;
      h.upstream_->then(step, ScriptedUpstream::Failure{kind});
      // A drop at MAIL is retried once (an idle connection the server
      // closed): the reconnection fails too.
      if (step == Step::Mail) {
        h.upstream_->then(Step::Open, smtp::make_reply(220, "", "first"))
            .then(Step::Open, ScriptedUpstream::Failure{kind});
      }
      h.hello();
      smtp::Reply got = h.mail();
      if (step != Step::Mail) got = h.rcpt();
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

TEST(Relay, IdleDropAtMailIsRetriedOnAFreshConnectionWithTheStagesStillOn) {
  Harness h;
  h.upstream_->then(Step::Mail, ScriptedUpstream::Failure{Kind::Dropped});
  h.hello();
  EXPECT_EQ(h.mail().code, 250);
  EXPECT_EQ(h.upstream_->opens, 2);
  EXPECT_EQ(h.rcpt().code, 250);
  EXPECT_EQ(h.data().reply.code, 250);
  ASSERT_EQ(h.upstream_->messages.size(), 1u);
  // The stage made at MAIL still adds its field: the retry did not drop it.
  EXPECT_EQ(h.upstream_->messages[0].rfind("X-Counted: yes\r\n", 0), 0u);
}

TEST(Relay, A421AtMailIsNotRetried) {
  Harness h;
  h.upstream_->then(Step::Mail, smtp::make_reply(421, "4.3.2", "shutting down"));
  h.hello();
  EXPECT_EQ(h.mail().code, 451);  // the upstream's connection closes, not ours
  EXPECT_EQ(h.upstream_->opens, 1);
}

TEST(Relay, NextTransactionAfterADropReconnects) {
  Harness h;
  h.upstream_->then(Step::Data, ScriptedUpstream::Failure{Kind::Dropped});
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
  h.run(&Harness::do_abort);
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
  EXPECT_EQ(h.run(&Harness::do_finish).reply.code, 250);
}

}  // namespace
}  // namespace stampd::proxy
