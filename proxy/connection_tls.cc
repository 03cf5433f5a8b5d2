// connection_tls.cc: STARTTLS (RFC 3207) and the server side of a TLS
// handshake, for STARTTLS and for implicit-TLS listeners (RFC 8314).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/error.hpp>

#include "proxy/connection_impl.h"

namespace stampd::proxy::detail {

asio::awaitable<const char*> Connection::starttls(smtp::Command cmd) {
  session_.apply(cmd);
  reply(session_.local_reply(cmd));
  if (!co_await flush()) co_return "write-failed";
  // RFC 3207 §4.2 (CVE-2011-0411): what the client sent behind STARTTLS came
  // in clear, where anyone on the path could have put it; it must not be
  // read as if it had come over TLS.
  if (const std::size_t dropped = reader_.buffered_bytes(); dropped > 0) {
    reader_.discard();
    const std::string bytes = std::to_string(dropped);
    record_.note(obs::LogLevel::Warning, "starttls-input-discarded", {{"bytes", bytes}});
  }
  if (!co_await handshake(obs::TlsStart::Starttls)) co_return "tls-failed";
  co_return nullptr;
}

asio::awaitable<bool> Connection::handshake(obs::TlsStart start) {
  if (tls() == nullptr) {
    // A listen_tls listener after a reload that took every certificate away.
    record_.tls_failed(start, obs::TlsFailure::Error, "no certificate configured");
    co_return false;
  }
  auto done =
      co_await stream_->start_tls_server(tls()->context(), config_.server.tls_handshake_timeout);
  if (!done) {
    const auto& code = done.error().code;
    const auto is = [&](boost::system::error_code want) { return code == std::error_code(want); };
    auto failure = obs::TlsFailure::Error;
    if (code == net::Errc::Timeout) {
      failure = obs::TlsFailure::Timeout;
    } else if (is(asio::error::eof) || is(asio::error::connection_reset) ||
               is(asio::ssl::error::stream_truncated)) {
      failure = obs::TlsFailure::Closed;  // the client went away mid-handshake
    }
    const std::string detail = done.error().message();
    record_.tls_failed(start, failure, detail);
    co_return false;
  }
  smtp::TlsInfo info{stream_->tls_protocol(), stream_->tls_cipher(), stream_->tls_server_name()};
  record_.tls_started(start, info.protocol, info.cipher, info.server_name);
  session_.tls_started(std::move(info));
  co_return true;
}

}  // namespace stampd::proxy::detail
