// smtp_upstream.h: the SMTP client side of the relay. Forwards MAIL and RCPT
// in lockstep, speaks STARTTLS / implicit TLS, AUTH PLAIN / LOGIN and
// XFORWARD or XCLIENT, and turns every transport failure into a 4xx reply.
#pragma once

#include <prometheus/counter.h>

#include <boost/asio/ssl/context.hpp>
#include <deque>
#include <memory>
#include <string>

#include "net/byte_stream.h"
#include "net/line_reader.h"
#include "proxy/upstream/server_health.h"
#include "proxy/upstream/upstream.h"

namespace stampd::proxy {

class SmtpUpstream final : public Upstream {
 public:
  // sent counts the bytes written (stampd_upstream_sent_bytes_total).
  // servers (may be null: the config's order, no memory of failures) says
  // which servers to try first and learns which fail.
  SmtpUpstream(boost::asio::any_io_executor executor, std::shared_ptr<const Config> config,
               std::shared_ptr<boost::asio::ssl::context> tls, prometheus::Counter& sent,
               std::shared_ptr<ServerHealth> servers = nullptr);
  ~SmtpUpstream() override;

  boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> open() override;
  boost::asio::awaitable<smtp::Reply> mail(const smtp::Session& session, const smtp::Command& mail,
                                           Ahead ahead) override;
  boost::asio::awaitable<smtp::Reply> rcpt(const smtp::Recipient& recipient, Ahead ahead) override;
  bool data_ahead_pending() const override { return !ahead_.empty() && ahead_.back() == kData; }
  boost::asio::awaitable<smtp::Reply> data_ahead_reply() override;
  boost::asio::awaitable<smtp::Reply> data(const std::vector<std::string>& prepend_fields,
                                           const Spool& spool) override;
  boost::asio::awaitable<void> reset() override;
  boost::asio::awaitable<void> close() override;

  bool connected() const override { return stream_ != nullptr; }
  bool reusable() const override {
    return stream_ && !in_transaction_ && !data_open_ && ahead_.empty() && !reader_->buffered();
  }
  bool left_alone() override { return stream_ && stream_->quiet(); }
  bool abandoned_data() const override { return abandoned_; }
  UpstreamErrorKind last_error_kind() const override { return error_kind_; }
  const std::string& last_error() const override { return error_; }
  std::string peer() const override { return peer_; }
  bool maybe_delivered() const override { return dot_unanswered_; }
  // set_bdat_chunk_size sets the largest BDAT chunk (tests make it small).
  void set_bdat_chunk_size(std::uint64_t size) { bdat_chunk_size_ = size; }
  // kBdatChunk is the default largest BDAT chunk.
  static constexpr std::uint64_t kBdatChunk = 1024 * 1024;

 private:
  boost::asio::awaitable<bool> connect_one(const std::string& server);
  boost::asio::awaitable<std::optional<smtp::Reply>> read_reply(net::Duration timeout);
  boost::asio::awaitable<bool> send(std::string_view text, net::Duration timeout);
  // send_message sends, after DATA's 354, prepend_fields and the spooled
  // message dot-stuffed, then the end-of-data; nullopt when all went out,
  // else the reply for the client.
  boost::asio::awaitable<std::optional<smtp::Reply>> send_message(
      const std::vector<std::string>& prepend_fields, const Spool& spool);
  // went_out tells whether a write succeeded; a failed one fails the connection.
  bool went_out(const net::Status& sent);
  // send_gathered sends pieces in order in one gathered write.
  boost::asio::awaitable<bool> send_gathered(std::vector<boost::asio::const_buffer> pieces,
                                             net::Duration timeout);
  boost::asio::awaitable<std::optional<smtp::Reply>> command(std::string line,
                                                             net::Duration timeout);
  // drain_ahead reads the replies to recipients (and DATA) sent ahead that
  // nobody will ask for (the transaction ended first); a 354 among them
  // abandons the connection.
  boost::asio::awaitable<bool> drain_ahead();
  // queue_ahead appends what goes ahead to out and remembers it in ahead_.
  void queue_ahead(Ahead ahead, std::string& out);
  // abandon closes a connection whose server waits for a message we will
  // not send: closed without QUIT, which would be taken as message text.
  void abandon();
  // drop closes the connection at once and forgets its state.
  void drop();
  // abandoned_reply drops a connection asked for a command while its
  // server waits for a message; the reply for the client.
  smtp::Reply abandoned_reply();
  // send_chunks sends the message as BDAT chunks (RFC 3030) to an upstream
  // that offers CHUNKING, the last one BDAT n LAST; its reply is final.
  boost::asio::awaitable<smtp::Reply> send_chunks(const std::vector<std::string>& prepend_fields,
                                                  const Spool& spool);
  // final_reply reads the reply to the end of the message (the final dot or
  // the LAST chunk), the duplicate window open until it comes.
  boost::asio::awaitable<smtp::Reply> final_reply();
  std::string xforward_line(const smtp::Session& session) const;
  // use_xclient tells whether the client is named with XCLIENT (asked for
  // and offered) rather than XFORWARD; xclient sends it before MAIL when the
  // connection's last one named another client, then EHLO again.
  bool use_xclient() const;
  boost::asio::awaitable<bool> xclient(const smtp::Session& session);
  std::string rcpt_line(const smtp::Recipient& recipient) const;
  // ehlo greets with name (default: helo_name), falling back to HELO.
  boost::asio::awaitable<bool> ehlo(std::string name = {});
  boost::asio::awaitable<bool> authenticate();
  // fail records why the connection is unusable and drops it.
  void fail(UpstreamErrorKind kind, std::string why);
  smtp::Reply failure_reply() const;

  boost::asio::any_io_executor executor_;
  std::shared_ptr<const Config> config_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  prometheus::Counter& sent_;
  std::shared_ptr<ServerHealth> servers_;
  bool dot_unanswered_ = false;  // the end of data (dot or BDAT LAST) went out, no reply came
  std::uint64_t bdat_chunk_size_ = kBdatChunk;
  std::unique_ptr<net::ByteStream> stream_;
  std::unique_ptr<net::LineReader> reader_;
  smtp::UpstreamCapabilities caps_;
  bool in_transaction_ = false;
  bool binary_ = false;            // this transaction is BODY=BINARYMIME
  std::deque<std::string> ahead_;  // RCPT lines (and DATA) sent, replies not yet read
  bool data_open_ = false;         // DATA was answered 354: the server waits for the message
  bool abandoned_ = false;         // the last reset or close had to abandon
  static constexpr std::string_view kData = "DATA";
  std::string xclient_sent_;  // the XCLIENT line in force on this connection
  std::string peer_;
  std::string server_host_;
  UpstreamErrorKind error_kind_ = UpstreamErrorKind::None;
  std::string error_;
};

}  // namespace stampd::proxy
