// scripted_upstream.h: an upstream server for unit tests whose every answer
// is scripted: a reply, or a failure the way a real connection fails (the
// connection is gone afterwards, with an error kind). Unscripted steps
// succeed. A Script is the server: each ScriptedUpstream is one connection
// to it (the pool makes several), and they all take their answers from the
// script in order and write what they were asked into it.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "proxy/upstream/server_health.h"
#include "proxy/upstream/upstream.h"

namespace stampd::test {

class Script {
 public:
  // DataAhead: the reply to a DATA sent ahead with the recipients (354 unless scripted).
  enum class Step { Open, Mail, Rcpt, DataAhead, Data };
  // Failure: the connection dies at this step (drop, timeout, ...).
  // after_dot (at Data): the server took the message, then the connection
  // died before its reply (the duplicate window).
  struct Failure {
    proxy::UpstreamErrorKind kind;
    bool after_dot = false;
  };
  using Action = std::variant<smtp::Reply, Failure>;

  // then queues what the next call of step does, on whichever connection.
  Script& then(Step step, Action action) {
    script_[step].push_back(std::move(action));
    return *this;
  }
  // close_kept makes the next check of a kept connection find it closed by
  // the server while it sat in the pool.
  void close_kept() { ++closed_while_kept_; }

  // What happened, in order: "open", "MAIL <from>", "RCPT <to>", "DATA", "RSET", "QUIT",
  // and "DROP" for a connection closed without QUIT while the server
  // waited for a message.
  std::vector<std::string> calls;
  // The commands of each write that carried MAIL or RCPT, joined by "|":
  // "MAIL a|RCPT b|RCPT c|DATA" when b, c and DATA were pipelined behind MAIL.
  std::vector<std::string> writes;
  std::vector<std::string> messages;  // each message a DATA delivered: fields + spool
  int opens = 0;
  smtp::UpstreamCapabilities capabilities = [] {
    smtp::UpstreamCapabilities c;
    c.eightbitmime = c.smtputf8 = c.dsn = c.pipelining = true;
    return c;
  }();

 private:
  friend class ScriptedUpstream;
  std::optional<Action> next(Step step);

  std::map<Step, std::deque<Action>> script_;
  int closed_while_kept_ = 0;
};

// ScriptedServers is several scripted servers, by name, tried in the order
// a ServerHealth gives (the failover tests).
struct ScriptedServers {
  std::map<std::string, std::shared_ptr<Script>> scripts;
  std::shared_ptr<proxy::ServerHealth> health;
};

class ScriptedUpstream : public proxy::Upstream {
 public:
  explicit ScriptedUpstream(std::shared_ptr<Script> script) : script_(std::move(script)) {}
  explicit ScriptedUpstream(std::shared_ptr<ScriptedServers> servers)
      : servers_(std::move(servers)) {}

  boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> open() override;
  boost::asio::awaitable<smtp::Reply> mail(const smtp::Session& session, const smtp::Command& mail,
                                           proxy::Ahead ahead) override;
  boost::asio::awaitable<smtp::Reply> rcpt(const smtp::Recipient& recipient,
                                           proxy::Ahead ahead) override;
  bool data_ahead_pending() const override { return !ahead_.empty() && ahead_.back() == kData; }
  boost::asio::awaitable<smtp::Reply> data_ahead_reply() override;
  boost::asio::awaitable<smtp::Reply> data(const std::vector<std::string>& prepend_fields,
                                           const proxy::Spool& spool) override;
  boost::asio::awaitable<void> reset() override;
  boost::asio::awaitable<void> close() override;

  bool connected() const override { return connected_; }
  bool reusable() const override;
  bool left_alone() override;
  proxy::UpstreamErrorKind last_error_kind() const override { return kind_; }
  const std::string& last_error() const override { return error_; }
  std::string peer() const override { return servers_ ? name_ : "scripted"; }
  bool maybe_delivered() const override { return maybe_delivered_; }
  bool abandoned_data() const override { return abandoned_; }

 private:
  // answer runs the step's next scripted action: the reply to give (a
  // failure drops the connection; a 421 does too, as a server closes after it).
  smtp::Reply answer(Script::Step step, smtp::Reply otherwise);

  // send_ahead records the recipients (and DATA) written behind a command
  // (when the script's capabilities offer PIPELINING and, for DATA, not
  // CHUNKING) into write.
  void send_ahead(proxy::Ahead ahead, std::string& write);
  // drop closes the connection without QUIT (the server waits for a message).
  void drop();

  // open_one opens this connection on script_.
  void open_one();

  std::shared_ptr<Script> script_;
  std::shared_ptr<ScriptedServers> servers_;
  std::string name_;  // the server of servers_ connected to
  bool maybe_delivered_ = false;
  std::deque<std::string> ahead_;  // recipients (and DATA) sent ahead, not yet asked for
  bool data_open_ = false;         // a DATA sent ahead was answered 354
  bool abandoned_ = false;
  static constexpr const char* kData = "DATA";
  bool connected_ = false;
  bool in_transaction_ = false;
  proxy::UpstreamErrorKind kind_ = proxy::UpstreamErrorKind::None;
  std::string error_;
};

}  // namespace stampd::test
