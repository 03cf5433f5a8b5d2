// connection_auth.cc: the AUTH exchange (RFC 4954) on the connection,
// throttled per client address and per user.
#include <boost/asio/awaitable.hpp>

#include "proxy/connection_impl.h"

namespace stampd::proxy::detail {

asio::awaitable<const char*> Connection::auth_failed(const std::string& user, bool known) {
  const std::string ip = context_.client.address.to_string();
  const std::size_t failures = context_.auth_throttle->failed(ip, user, throttle_limits());
  // A delay on every failure makes guessing slow even below the limit.
  asio::steady_timer delay(stream_->executor(), config_.auth.failure_delay);
  boost::system::error_code ec;
  co_await delay.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  const auto r = make_reply(535, "5.7.8", "Authentication credentials invalid");
  // An unknown name may be a password typed in the wrong field: not logged.
  record_.auth(obs::AuthResult::Failed, mechanism_, known ? user : "", r.summary());
  reply(r);
  if (failures >= config_.auth.max_failures) co_return "auth-failures";
  co_return nullptr;
}

asio::awaitable<bool> Connection::check_password(std::shared_ptr<const UserDb> users,
                                                 const smtp::Credentials& credentials) {
  if (context_.password_checker == nullptr)
    co_return users->verify(credentials.username, credentials.password);
  const bool ok = co_await context_.password_checker->check(std::move(users), credentials.username,
                                                            credentials.password);
  co_return ok;
}

asio::awaitable<const char*> Connection::authenticate(smtp::Command cmd) {
  const std::string ip = context_.client.address.to_string();
  mechanism_.clear();
  if (context_.auth_throttle->blocked(ip, "", throttle_limits())) {
    const auto r = make_reply(454, "4.7.0", "Too many failed authentications, try again later");
    record_.auth(obs::AuthResult::Throttled, "", "", r.summary());
    reply(r);
    co_return "auth-throttled";
  }
  std::optional<smtp::SaslExchange> exchange;
  smtp::SaslStep step = smtp::SaslExchange::start(cmd.argument, exchange);
  if (exchange) mechanism_ = smtp::mechanism_name(exchange->mechanism());
  while (step.kind == smtp::SaslStep::Kind::Challenge) {
    reply(step.reply);
    if (!co_await flush()) co_return "write-failed";
    auto line = co_await reader_.read_line(config_.server.max_command_line_length,
                                           config_.server.command_timeout);
    if (!line) {
      record_.auth(obs::AuthResult::Aborted, mechanism_, "", "client gone");
      if (line.error().code == net::Errc::LimitExceeded) {
        reply(make_reply(500, "5.5.6", "Authentication exchange line too long"));
        co_return "auth-line-too-long";
      }
      co_return "client-closed";
    }
    step = exchange->feed(*line);
  }
  if (step.kind == smtp::SaslStep::Kind::Failed) {
    if (step.reply.code == 535) co_return co_await auth_failed("", false);
    record_.auth(obs::AuthResult::Aborted, mechanism_, "", step.reply.summary());
    reply(step.reply);
    co_return nullptr;
  }
  smtp::Credentials credentials = std::move(step.credentials);
  const std::shared_ptr<const UserDb> users = context_.runtime->users;
  const bool known = users->contains(credentials.username);
  const bool user_blocked =
      context_.auth_throttle->blocked(ip, credentials.username, throttle_limits());
  // A locked user is not checked at all: the answer says nothing about the password.
  bool ok = false;
  if (!user_blocked) ok = co_await check_password(users, credentials);
  OPENSSL_cleanse(credentials.password.data(), credentials.password.size());
  if (user_blocked) {
    const auto r = make_reply(454, "4.7.0", "Too many failed authentications, try again later");
    record_.auth(obs::AuthResult::Throttled, mechanism_, known ? credentials.username : "",
                 r.summary());
    reply(r);
    co_return "auth-throttled";
  }
  if (!ok) co_return co_await auth_failed(credentials.username, known);
  context_.auth_throttle->succeeded(credentials.username);
  session_.set_login(credentials.username);
  const auto r = make_reply(235, "2.7.0", "Authentication successful");
  record_.auth(obs::AuthResult::Ok, mechanism_, credentials.username, r.summary());
  reply(r);
  co_return nullptr;
}

}  // namespace stampd::proxy::detail
