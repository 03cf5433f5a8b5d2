// connection.h: the coroutine that serves one client connection: the socket
// loop. It reads command lines, asks the Session whether each may proceed,
// hands the transaction's commands and DATA bytes to the Relay, and writes
// the replies. Protocol rules live in smtp/, the transaction in relay.h, and
// what is logged and counted in obs/record.h.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "net/byte_stream.h"
#include "obs/record.h"
#include "proxy/auth_throttle.h"
#include "proxy/drain_notice.h"
#include "proxy/password_checker.h"
#include "proxy/runtime.h"
#include "smtp/session.h"

namespace stampd::proxy {

struct ConnectionContext {
  std::shared_ptr<const Runtime> runtime;
  obs::Recorder* recorder = nullptr;  // process-wide; outlives every connection
  std::size_t thread = 0;             // the I/O thread it runs on: whose upstream pool
  std::string session_id;
  smtp::ClientInfo client;
  std::string local_endpoint;    // "127.0.0.1:10027", for logs
  bool proxy_protocol = false;   // a PROXY header comes first and names the real client
  bool implicit_tls = false;     // a listen_tls listener: TLS before the greeting (RFC 8314)
  DrainNotice* drain = nullptr;  // the server's; outlives every connection
  smtp::AuthPolicy auth;         // AUTH offered here, and whether without TLS
  AuthThrottle* auth_throttle = nullptr;  // the server's; outlives every connection
  // The server's pool for password hashes; null: hash on this thread.
  PasswordChecker* password_checker = nullptr;
};

// serve_connection runs one SMTP session to its end; it never throws.
boost::asio::awaitable<void> serve_connection(std::unique_ptr<net::ByteStream> stream,
                                              ConnectionContext context);

}  // namespace stampd::proxy
