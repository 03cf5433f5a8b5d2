// scripted_upstream.h: an Upstream for unit tests whose every step does what
// the test scripted: answer with a reply, or fail the way a real connection
// fails (the connection is gone afterwards, with an error kind). Unscripted
// steps succeed. It records what it was asked, and the one message it got.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "proxy/upstream/upstream.h"

namespace stampd::test {

class ScriptedUpstream : public proxy::Upstream {
 public:
  enum class Step { Open, Mail, Rcpt, Data };
  // Failure: the connection dies at this step (drop, timeout, ...).
  struct Failure {
    proxy::UpstreamErrorKind kind;
  };
  using Action = std::variant<smtp::Reply, Failure>;

  // then queues what the next call of step does.
  ScriptedUpstream& then(Step step, Action action) {
    script_[step].push_back(std::move(action));
    return *this;
  }

  boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> open() override;
  boost::asio::awaitable<smtp::Reply> mail(const smtp::Session& session,
                                           const smtp::Command& mail) override;
  boost::asio::awaitable<smtp::Reply> rcpt(const smtp::Recipient& recipient) override;
  boost::asio::awaitable<smtp::Reply> data(const std::vector<std::string>& prepend_fields,
                                           const proxy::Spool& spool) override;
  boost::asio::awaitable<void> reset() override;
  boost::asio::awaitable<void> close() override;

  bool connected() const override { return connected_; }
  proxy::UpstreamErrorKind last_error_kind() const override { return kind_; }
  const std::string& last_error() const override { return error_; }
  std::string peer() const override { return "scripted"; }

  // What happened, in order: "open", "MAIL <from>", "RCPT <to>", "DATA", "RSET", "QUIT".
  std::vector<std::string> calls;
  std::vector<std::string> messages;  // each message DATA received: fields + spool
  int opens = 0;
  smtp::UpstreamCapabilities capabilities = [] {
    smtp::UpstreamCapabilities c;
    c.eightbitmime = c.smtputf8 = c.dsn = c.pipelining = true;
    return c;
  }();

 private:
  // next runs the step's next scripted action; nullopt means: succeed.
  std::optional<smtp::Reply> next(Step step);

  std::map<Step, std::deque<Action>> script_;
  bool connected_ = false;
  bool in_transaction_ = false;
  proxy::UpstreamErrorKind kind_ = proxy::UpstreamErrorKind::None;
  std::string error_;
};

}  // namespace stampd::test
