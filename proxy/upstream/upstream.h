// upstream.h: where accepted mail goes, as a transaction (maddy's shape):
// open → mail → rcpt... → data | reset. One Upstream per client connection.
// Implementations: SmtpUpstream (an MTA over SMTP) and MaildirUpstream.
// Every failure is a reply value (4xx when the client should retry).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "obs/record.h"
#include "proxy/config.h"
#include "smtp/reply.h"
#include "smtp/session.h"

namespace stampd::proxy {

class Spool;

// UpstreamErrorKind says what went wrong, for logs and metrics.
using UpstreamErrorKind = obs::UpstreamError;

// Ahead is what the client pipelined behind MAIL or RCPT that may go to the
// upstream in the same write (RFC 2920): recipients, then DATA when the
// client's DATA came right behind them.
struct Ahead {
  std::span<const smtp::Recipient> recipients;
  bool data = false;
};

class Upstream {
 public:
  virtual ~Upstream() = default;
  // open connects and greets unless already connected; nullopt when no
  // server could be used (then last_error() says why).
  virtual boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> open() = 0;
  // mail starts a transaction with the client's MAIL command (passing the
  // original client on via XFORWARD where offered). A server that offers
  // PIPELINING gets what is ahead in the same write (RFC 2920): the
  // recipients' replies are what the next rcpt() calls return, which must
  // come for each of them, in order (or reset/close), before anything else;
  // DATA's, what data_ahead_reply() returns after them. DATA goes ahead only
  // where the message would go as DATA (not BDAT); data_ahead_pending()
  // says whether it went.
  virtual boost::asio::awaitable<smtp::Reply> mail(const smtp::Session& session,
                                                   const smtp::Command& mail, Ahead ahead) = 0;
  // rcpt gives the verdict on recipient: read if it was sent ahead, else
  // sent now, with ahead behind it as for mail.
  virtual boost::asio::awaitable<smtp::Reply> rcpt(const smtp::Recipient& recipient,
                                                   Ahead ahead) = 0;
  // data_ahead_pending tells whether a DATA sent ahead awaits its reply
  // (every recipient's reply was read first).
  virtual bool data_ahead_pending() const { return false; }
  // data_ahead_reply reads the reply to the DATA sent ahead: 354, and the
  // server waits for the message, which only data() may send; anything
  // else, and the transaction is as before DATA.
  virtual boost::asio::awaitable<smtp::Reply> data_ahead_reply() {
    co_return smtp::make_reply(503, "5.5.1", "No DATA was sent ahead");
  }
  // data sends prepend_fields and then the spooled message (DATA first,
  // unless a DATA sent ahead was answered 354); its reply is final.
  virtual boost::asio::awaitable<smtp::Reply> data(const std::vector<std::string>& prepend_fields,
                                                   const Spool& spool) = 0;
  // reset aborts the transaction in progress (RSET); harmless when there is
  // none. A server waiting for the message after a 354 cannot be reset:
  // the connection is closed instead, so no message is ever completed
  // there (abandoned_data() then says so).
  virtual boost::asio::awaitable<void> reset() = 0;
  // close ends the connection politely (QUIT), aborting any transaction;
  // after a 354 it closes without a word, as reset does.
  virtual boost::asio::awaitable<void> close() = 0;
  // abandoned_data tells whether the last reset or close had to drop the
  // connection because the server was waiting for a message.
  virtual bool abandoned_data() const { return false; }

  // connected tells whether a connection (and so any transaction) is alive.
  virtual bool connected() const = 0;
  // reusable tells whether, as far as this side knows, the connection can
  // carry the next transaction: connected, between transactions, nothing
  // unread.
  virtual bool reusable() const = 0;
  // left_alone tells whether the server left the connection alone while it
  // sat in the pool: no close, no 421. It asks the socket, so the pool asks
  // only when it takes a kept connection out, not when one comes back.
  virtual bool left_alone() { return true; }
  virtual UpstreamErrorKind last_error_kind() const = 0;
  virtual const std::string& last_error() const = 0;
  // peer names the server in use, for logs ("127.0.0.1:10026", "maildir:...").
  virtual std::string peer() const = 0;
  // maybe_delivered tells whether the last data() that failed may have left
  // the message with the server anyway: its end went out and no reply came
  // back (the duplicate window). Then it must not be sent anywhere else.
  virtual bool maybe_delivered() const { return true; }
};

}  // namespace stampd::proxy
