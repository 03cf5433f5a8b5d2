// DATA in the pipelined group (RFC 2920): SmtpUpstream against a scripted
// SMTP server on a loopback socket. The server holds every reply until it
// has read DATA, so a client that waited for MAIL's reply before sending the
// rest would time out here. After the 354 the server waits for the message:
// a transaction given up then (reset, close) closes the connection without
// QUIT or a dot, so the server never completes a message.
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <functional>

#include "proxy/spool.h"
#include "proxy/upstream/smtp_upstream.h"
#include "tests/support/run_coroutine.h"

namespace stampd::proxy {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Server {
  bool chunking = false;
  std::string mail_reply = "250 2.1.0 Ok\r\n";
  std::string data_reply = "354 go on\r\n";

  std::vector<std::string> lines;  // every command line, in order
  std::string message;             // what came after the 354
  bool completed = false;          // the final dot came
  bool closed_in_data = false;     // the connection closed while the server waited for the message
};

asio::awaitable<void> send(tcp::socket& socket, const std::string& text) {
  co_await asio::async_write(socket, asio::buffer(text), asio::use_awaitable);
}

// read_message reads what follows a 354; false when the connection closed first.
asio::awaitable<bool> read_message(tcp::socket& socket, std::string& buffer, Server& s) {
  auto [ec, end] = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(buffer), "\r\n.\r\n", asio::as_tuple(asio::use_awaitable));
  if (ec) {
    s.message = buffer;
    s.closed_in_data = true;
    co_return false;
  }
  s.message = buffer.substr(0, end);
  buffer.erase(0, end);
  s.completed = true;
  co_await send(socket, "250 2.0.0 Ok: queued\r\n");
  co_return true;
}

asio::awaitable<void> serve(tcp::acceptor& acceptor, Server& s) {
  tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
  co_await send(socket, "220 fake ESMTP\r\n");
  std::string buffer;
  std::string held;  // replies to MAIL and RCPT, held until DATA came
  bool mail_ok = false;
  for (;;) {
    auto [ec, end] = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n",
                                                     asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const std::string line = buffer.substr(0, end - 2);
    buffer.erase(0, end);
    s.lines.push_back(line);
    if (line.starts_with("EHLO")) {
      co_await send(socket, std::string("250-fake\r\n250-PIPELINING\r\n") +
                                (s.chunking ? "250-CHUNKING\r\n" : "") + "250 8BITMIME\r\n");
    } else if (line.starts_with("MAIL")) {
      mail_ok = s.mail_reply.starts_with("250");
      held += s.mail_reply;
    } else if (line.starts_with("RCPT")) {
      held += mail_ok ? "250 2.1.5 Ok\r\n" : "503 5.5.1 Error: need MAIL command\r\n";
    } else if (line == "DATA") {
      const std::string reply = mail_ok ? s.data_reply : "503 5.5.1 Error: need RCPT command\r\n";
      co_await send(socket, std::exchange(held, "") + reply);
      if (reply.starts_with("354") && !co_await read_message(socket, buffer, s)) co_return;
    } else if (line == "QUIT") {
      co_await send(socket, "221 bye\r\n");
      co_return;
    } else {  // RSET, or MAIL and RCPT when no DATA follows (the CHUNKING server)
      mail_ok = false;
      co_await send(socket, std::exchange(held, "") + "250 2.0.0 Ok\r\n");
    }
    // A server that offers CHUNKING gets no DATA ahead: answer at once.
    if (s.chunking && !held.empty()) co_await send(socket, std::exchange(held, ""));
  }
}

struct Seen {
  std::vector<int> codes;  // the replies the upstream returned, in order
  bool pending_after_rcpts = false;
  bool abandoned = false;
  bool connected = false;
  bool reusable = false;
};

constexpr std::string_view kBody = "Subject: hi\r\n\r\n.dot\r\nbody\r\n";

// Steps says what to do once MAIL, the recipients and DATA went ahead and
// every recipient's reply was read.
using Steps = std::function<asio::awaitable<void>(SmtpUpstream&, Spool&, Seen&)>;

asio::awaitable<Seen> run_transaction(asio::io_context& io, Server& s, Steps steps) {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, serve(acceptor, s), asio::detached);
  auto config = std::make_shared<Config>();
  config->upstream.servers = {"127.0.0.1:" + std::to_string(acceptor.local_endpoint().port())};
  config->upstream.helo_name = "stampd.test";
  config->upstream.command_timeout = std::chrono::seconds(3);
  prometheus::Registry registry;
  auto& sent = prometheus::BuildCounter().Name("sent").Register(registry).Add({});
  SmtpUpstream upstream(io.get_executor(), config, nullptr, sent);
  Spool spool(4096, "/tmp");
  EXPECT_TRUE(spool.append(kBody));
  Seen seen;
  EXPECT_TRUE((co_await upstream.open()).has_value());
  smtp::Session session({}, smtp::ClientInfo{*net::parse_ip("127.0.0.1"), 1, true}, "stampd");
  session.apply(smtp::parse_command("EHLO client"));
  const std::vector<smtp::Recipient> ahead{{"b@example.net", {}}, {"c@example.net", {}}};
  const smtp::Reply m = co_await upstream.mail(
      session, smtp::parse_command("MAIL FROM:<a@example.com>"), Ahead{ahead, true});
  seen.codes.push_back(m.code);
  if (m.positive()) {
    for (const auto& r : ahead) seen.codes.push_back((co_await upstream.rcpt(r, {})).code);
    seen.pending_after_rcpts = upstream.data_ahead_pending();
    co_await steps(upstream, spool, seen);
  }
  seen.abandoned = upstream.abandoned_data();
  seen.connected = upstream.connected();
  seen.reusable = upstream.reusable();
  co_await upstream.close();
  co_return seen;
}

Seen run(Server& s, Steps steps) {
  return test::run_coroutine<Seen>(
      [&](asio::io_context& io) { return run_transaction(io, s, std::move(steps)); });
}

asio::awaitable<void> data_reply(SmtpUpstream& u, Spool&, Seen& seen) {
  seen.codes.push_back((co_await u.data_ahead_reply()).code);
}

TEST(SmtpUpstreamPipelining, MailRecipientsAndDataGoTogetherAndDataIsNotSentTwice) {
  Server s;
  const Seen seen = run(s, [](SmtpUpstream& u, Spool& spool, Seen& seen) -> asio::awaitable<void> {
    co_await data_reply(u, spool, seen);
    const std::vector<std::string> fields{"X-Signed: yes\r\n"};
    seen.codes.push_back((co_await u.data(fields, spool)).code);
  });
  EXPECT_EQ(seen.codes, (std::vector<int>{250, 250, 250, 354, 250}));
  EXPECT_TRUE(seen.pending_after_rcpts);
  EXPECT_EQ(s.lines, (std::vector<std::string>{"EHLO stampd.test", "MAIL FROM:<a@example.com>",
                                               "RCPT TO:<b@example.net>", "RCPT TO:<c@example.net>",
                                               "DATA", "QUIT"}));
  EXPECT_TRUE(s.completed);
  EXPECT_EQ(s.message, "X-Signed: yes\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n");
  EXPECT_TRUE(seen.reusable);
}

TEST(SmtpUpstreamPipelining, AResetAfterThe354ClosesWithoutCompletingAnything) {
  Server s;
  const Seen seen = run(s, [](SmtpUpstream& u, Spool& spool, Seen& seen) -> asio::awaitable<void> {
    co_await data_reply(u, spool, seen);
    co_await u.reset();
  });
  EXPECT_EQ(seen.codes, (std::vector<int>{250, 250, 250, 354}));
  EXPECT_TRUE(seen.abandoned);
  EXPECT_FALSE(seen.connected);
  EXPECT_TRUE(s.closed_in_data);
  EXPECT_FALSE(s.completed);
  EXPECT_EQ(s.message, "") << "no RSET, QUIT or dot as message text";
}

TEST(SmtpUpstreamPipelining, ACloseWithDatasReplyUnreadClosesWithoutQuit) {
  Server s;
  const Seen seen =
      run(s, [](SmtpUpstream& u, Spool&, Seen&) -> asio::awaitable<void> { co_await u.close(); });
  EXPECT_TRUE(seen.abandoned);
  EXPECT_TRUE(s.closed_in_data);
  EXPECT_EQ(s.message, "");
  EXPECT_EQ(std::count(s.lines.begin(), s.lines.end(), "QUIT"), 0);
}

TEST(SmtpUpstreamPipelining, ADataRefusedAheadLeavesTheTransactionToReset) {
  Server s;
  s.data_reply = "451 4.3.0 Try again later\r\n";
  const Seen seen = run(s, [](SmtpUpstream& u, Spool& spool, Seen& seen) -> asio::awaitable<void> {
    co_await data_reply(u, spool, seen);
    co_await u.reset();
  });
  EXPECT_EQ(seen.codes, (std::vector<int>{250, 250, 250, 451}));
  EXPECT_FALSE(seen.abandoned);
  EXPECT_TRUE(seen.reusable);
  EXPECT_EQ(s.lines.back(), "QUIT");
  EXPECT_EQ(s.lines[s.lines.size() - 2], "RSET");
}

TEST(SmtpUpstreamPipelining, DataAheadOfARefusedMailIsReadAndTheConnectionKept) {
  Server s;
  s.mail_reply = "550 5.7.1 Sender refused\r\n";
  const Seen seen = run(s, nullptr);
  EXPECT_EQ(seen.codes, (std::vector<int>{550}));
  EXPECT_TRUE(seen.reusable);
  EXPECT_EQ(s.lines.back(), "QUIT");
  EXPECT_FALSE(s.closed_in_data);
}

TEST(SmtpUpstreamPipelining, AServerThatTakesBdatGetsNoDataAhead) {
  Server s;
  s.chunking = true;
  const Seen seen =
      run(s, [](SmtpUpstream& u, Spool&, Seen&) -> asio::awaitable<void> { co_await u.reset(); });
  EXPECT_EQ(seen.codes, (std::vector<int>{250, 250, 250}));
  EXPECT_FALSE(seen.pending_after_rcpts);
  EXPECT_TRUE(seen.reusable);
  EXPECT_EQ(std::count(s.lines.begin(), s.lines.end(), "DATA"), 0);
}

}  // namespace
}  // namespace stampd::proxy
