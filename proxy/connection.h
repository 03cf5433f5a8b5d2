// smtp_connection.h: the coroutine that serves one client connection: reads
// commands, asks the Session whether they may proceed, forwards MAIL/RCPT to
// the upstream in lockstep, streams DATA through the pipeline into the spool,
// relays, and answers with the upstream's verdict. The glue between socket,
// Session, pipeline stages and Upstream; protocol rules live in those.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <string>

#include "net/byte_stream.h"
#include "proxy/runtime.h"
#include "smtp/session.h"

namespace stampd::proxy {

struct ConnectionContext {
  std::shared_ptr<const Runtime> runtime;
  std::string session_id;
  smtp::ClientInfo client;
  std::string local_endpoint;   // "127.0.0.1:10027", for logs
  bool proxy_protocol = false;  // a PROXY header comes first and names the real client
};

// serve_connection runs one SMTP session to its end; it never throws.
boost::asio::awaitable<void> serve_connection(std::unique_ptr<net::ByteStream> stream,
                                              ConnectionContext context);

}  // namespace stampd::proxy
