#include "tests/support/scripted_upstream.h"

#include <stdexcept>

#include "proxy/spool.h"

namespace stampd::test {

std::optional<Script::Action> Script::next(Step step) {
  auto& queue = script_[step];
  if (queue.empty()) return std::nullopt;
  Action action = std::move(queue.front());
  queue.pop_front();
  return action;
}

smtp::Reply ScriptedUpstream::answer(Script::Step step, smtp::Reply otherwise) {
  auto action = script_->next(step);
  if (!action) return otherwise;
  if (auto* reply = std::get_if<smtp::Reply>(&*action)) {
    if (reply->code == 421) {
      connected_ = false;
      ahead_.clear();
      kind_ = proxy::UpstreamErrorKind::Dropped;
      error_ = "closed by the upstream: " + reply->summary();
    }
    return *reply;
  }
  const auto& failure = std::get<Script::Failure>(*action);
  kind_ = failure.kind;
  maybe_delivered_ = failure.after_dot;
  error_ = std::string("scripted ") + obs::to_string(kind_);
  connected_ = false;
  in_transaction_ = false;
  data_open_ = false;
  ahead_.clear();
  return smtp::make_reply(451, "4.4.2", "Upstream connection failed, try again later");
}

bool ScriptedUpstream::reusable() const {
  return connected_ && !in_transaction_ && !data_open_ && ahead_.empty();
}

bool ScriptedUpstream::left_alone() {
  if (script_->closed_while_kept_ > 0) {
    --script_->closed_while_kept_;
    connected_ = false;
    return false;
  }
  return true;
}

void ScriptedUpstream::open_one() {
  script_->calls.push_back("open");
  ++script_->opens;
  connected_ = true;
  (void)answer(Script::Step::Open, smtp::make_reply(220, "", "ready"));
}

boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> ScriptedUpstream::open() {
  if (connected_) co_return script_->capabilities;
  if (!servers_) {
    open_one();
    if (!connected_) co_return std::nullopt;
    kind_ = proxy::UpstreamErrorKind::None;
    co_return script_->capabilities;
  }
  for (const auto& name : servers_->health->order()) {
    script_ = servers_->scripts.at(name);
    name_ = name;
    open_one();
    if (connected_) {
      servers_->health->succeeded(name);
      kind_ = proxy::UpstreamErrorKind::None;
      co_return script_->capabilities;
    }
    servers_->health->failed(name);
  }
  co_return std::nullopt;
}

void ScriptedUpstream::send_ahead(proxy::Ahead ahead, std::string& write) {
  if (!script_->capabilities.pipelining) return;
  for (const auto& r : ahead.recipients) {
    script_->calls.push_back("RCPT " + r.address);
    write += "|RCPT " + r.address;
    ahead_.push_back(r.address);
  }
  if (ahead.data && !script_->capabilities.chunking) {
    script_->calls.push_back("DATA");
    write += "|DATA";
    ahead_.push_back(kData);
  }
}

void ScriptedUpstream::drop() {
  script_->calls.push_back("DROP");
  abandoned_ = true;
  connected_ = false;
  in_transaction_ = false;
  data_open_ = false;
  ahead_.clear();
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::data_ahead_reply() {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  if (ahead_.empty() || ahead_.front() != kData) {
    throw std::logic_error("DATA's reply asked before the recipients'");
  }
  ahead_.pop_front();
  smtp::Reply r = answer(Script::Step::DataAhead, smtp::make_reply(354, "", "go ahead"));
  data_open_ = connected_ && r.code == 354;
  co_return r;
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::mail(const smtp::Session&,
                                                           const smtp::Command& mail,
                                                           proxy::Ahead ahead) {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  if (!ahead_.empty()) throw std::logic_error("MAIL with recipients sent ahead unanswered");
  script_->calls.push_back("MAIL " + mail.argument);
  std::string write = "MAIL " + mail.argument;
  send_ahead(ahead, write);
  script_->writes.push_back(write);
  smtp::Reply r = answer(Script::Step::Mail, smtp::make_reply(250, "2.1.0", "Ok"));
  in_transaction_ = r.positive();
  // A real server refuses the recipients of a MAIL it refused.
  if (!in_transaction_) ahead_.clear();
  co_return r;
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::rcpt(const smtp::Recipient& recipient,
                                                           proxy::Ahead ahead) {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  if (ahead_.empty()) {
    script_->calls.push_back("RCPT " + recipient.address);
    std::string write = "RCPT " + recipient.address;
    send_ahead(ahead, write);
    script_->writes.push_back(write);
  } else if (ahead_.front() != recipient.address) {
    throw std::logic_error("RCPT " + recipient.address + " asked, " + ahead_.front() +
                           " sent ahead");
  } else {
    ahead_.pop_front();
  }
  co_return answer(Script::Step::Rcpt, smtp::make_reply(250, "2.1.5", "Ok"));
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::data(
    const std::vector<std::string>& prepend_fields, const proxy::Spool& spool) {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  if (!ahead_.empty()) throw std::logic_error("DATA with recipients sent ahead unanswered");
  if (!data_open_) script_->calls.push_back("DATA");
  data_open_ = false;
  maybe_delivered_ = false;
  smtp::Reply r = answer(Script::Step::Data, smtp::make_reply(250, "2.0.0", "Ok: queued"));
  if (r.positive() || maybe_delivered_) {
    std::string message;
    for (const auto& f : prepend_fields) message += f;
    std::string buffer;
    for (std::uint64_t at = 0; at < spool.size();) {
      auto part = spool.read(at, buffer);
      if (!part) break;
      message.append(*part);
      at += part->size();
    }
    script_->messages.push_back(std::move(message));
  }
  in_transaction_ = false;
  co_return r;
}

boost::asio::awaitable<void> ScriptedUpstream::reset() {
  abandoned_ = false;
  // A DATA sent ahead and unread is answered 354 unless scripted otherwise.
  if (data_ahead_pending()) {
    ahead_.clear();
    ahead_.push_back(kData);
    (void)co_await data_ahead_reply();
  }
  ahead_.clear();
  if (data_open_) {
    drop();
    co_return;
  }
  if (!connected_ || !in_transaction_) co_return;
  script_->calls.push_back("RSET");
  in_transaction_ = false;
}

boost::asio::awaitable<void> ScriptedUpstream::close() {
  abandoned_ = false;
  if (!connected_) co_return;
  if (data_open_ || data_ahead_pending()) {
    drop();
    co_return;
  }
  script_->calls.push_back("QUIT");
  connected_ = false;
}

}  // namespace stampd::test
