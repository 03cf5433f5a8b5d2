#include "tests/support/scripted_upstream.h"

#include "proxy/spool.h"

namespace stampd::test {

std::optional<smtp::Reply> ScriptedUpstream::next(Step step) {
  auto& queue = script_[step];
  if (queue.empty()) return std::nullopt;
  Action action = std::move(queue.front());
  queue.pop_front();
  if (auto* reply = std::get_if<smtp::Reply>(&action)) return *reply;
  kind_ = std::get<Failure>(action).kind;
  error_ = std::string("scripted ") + obs::to_string(kind_);
  connected_ = false;
  in_transaction_ = false;
  return smtp::make_reply(451, "4.4.2", "Upstream connection failed, try again later");
}

boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> ScriptedUpstream::open() {
  if (connected_) co_return capabilities;
  calls.push_back("open");
  ++opens;
  connected_ = true;
  if (auto r = next(Step::Open); r && !connected_) co_return std::nullopt;
  kind_ = proxy::UpstreamErrorKind::None;
  co_return capabilities;
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::mail(const smtp::Session&,
                                                           const smtp::Command& mail) {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  calls.push_back("MAIL " + mail.argument);
  auto r = next(Step::Mail);
  if (!r) r = smtp::make_reply(250, "2.1.0", "Ok");
  in_transaction_ = r->positive();
  co_return *r;
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::rcpt(const smtp::Recipient& recipient) {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  calls.push_back("RCPT " + recipient.address);
  auto r = next(Step::Rcpt);
  co_return r ? *r : smtp::make_reply(250, "2.1.5", "Ok");
}

boost::asio::awaitable<smtp::Reply> ScriptedUpstream::data(
    const std::vector<std::string>& prepend_fields, const proxy::Spool& spool) {
  if (!connected_) co_return smtp::make_reply(451, "4.4.2", "not connected");
  calls.push_back("DATA");
  auto r = next(Step::Data);
  if (!r) r = smtp::make_reply(250, "2.0.0", "Ok: queued");
  if (r->positive()) {
    std::string message;
    for (const auto& f : prepend_fields) message += f;
    std::string buffer;
    for (std::uint64_t at = 0; at < spool.size();) {
      auto part = spool.read(at, buffer);
      if (!part) break;
      message.append(*part);
      at += part->size();
    }
    messages.push_back(std::move(message));
  }
  in_transaction_ = false;
  co_return *r;
}

boost::asio::awaitable<void> ScriptedUpstream::reset() {
  if (!connected_) co_return;
  calls.push_back("RSET");
  in_transaction_ = false;
}

boost::asio::awaitable<void> ScriptedUpstream::close() {
  if (!connected_) co_return;
  calls.push_back("QUIT");
  connected_ = false;
}

}  // namespace stampd::test
