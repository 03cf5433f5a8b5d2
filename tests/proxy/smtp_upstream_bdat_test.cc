// BDAT out (RFC 3030): SmtpUpstream against a scripted SMTP server on a
// loopback socket. An upstream that offers CHUNKING gets the message as
// BDAT chunks, byte for byte (no dot-stuffing), the last one BDAT n LAST;
// one that does not gets DATA, dot-stuffed. A refused chunk stops the
// message; the duplicate window (maybe_delivered) opens only once the LAST
// chunk went out.
#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdlib>

#include "proxy/spool.h"
#include "proxy/upstream/smtp_upstream.h"
#include "tests/support/run_coroutine.h"

namespace stampd::proxy {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Server is the scripted upstream: what it offers, how it misbehaves, and
// what it saw.
struct Server {
  bool chunking = true;
  bool binarymime = false;
  int refuse_chunk = -1;  // this BDAT (0-based) gets refusal
  std::string refusal = "552 5.3.4 Message too big\r\n";
  std::string last_reply = "250 2.0.0 Ok: queued\r\n";  // to BDAT n LAST
  int drop_at_chunk = -1;  // after reading this BDAT's octets, close without a reply

  std::vector<std::string> commands;  // BDAT and DATA lines as received
  std::vector<std::string> mails;     // MAIL lines as received
  std::string message;                // the chunks joined, or DATA's bytes as received
  bool completed = false;             // LAST (or the final dot) arrived
};

asio::awaitable<void> reply(tcp::socket& socket, const std::string& text) {
  co_await asio::async_write(socket, asio::buffer(text), asio::use_awaitable);
}

// take_line removes the first line (without CRLF) from buffer.
std::string take_line(std::string& buffer, std::size_t end) {
  std::string line = buffer.substr(0, end - 2);
  buffer.erase(0, end);
  return line;
}

// bdat reads one chunk; false when the script drops the connection there.
asio::awaitable<bool> bdat(tcp::socket& socket, std::string& buffer, const std::string& line,
                           Server& s) {
  const int index =
      static_cast<int>(std::count_if(s.commands.begin(), s.commands.end(),
                                     [](const std::string& c) { return c.starts_with("BDAT"); }));
  s.commands.push_back(line);
  const std::size_t size = std::strtoull(line.c_str() + 5, nullptr, 10);
  const bool last = line.ends_with(" LAST");
  if (buffer.size() < size) {
    const std::size_t missing = size - buffer.size();
    std::string more(missing, '\0');
    co_await asio::async_read(socket, asio::buffer(more), asio::use_awaitable);
    buffer += more;
  }
  s.message += buffer.substr(0, size);
  buffer.erase(0, size);
  if (index == s.drop_at_chunk) {
    s.completed = last;
    co_return false;
  }
  if (index == s.refuse_chunk) {
    co_await reply(socket, s.refusal);
  } else if (last) {
    s.completed = s.last_reply.starts_with("250");
    co_await reply(socket, s.last_reply);
  } else {
    co_await reply(socket, "250 2.0.0 " + std::to_string(size) + " octets received\r\n");
  }
  co_return true;
}

asio::awaitable<void> serve(tcp::acceptor& acceptor, Server& s) {
  tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
  co_await reply(socket, "220 fake ESMTP\r\n");
  std::string buffer;
  for (;;) {
    auto [ec, end] = co_await asio::async_read_until(socket, asio::dynamic_buffer(buffer), "\r\n",
                                                     asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const std::string line = take_line(buffer, end);
    if (line.starts_with("EHLO")) {
      co_await reply(socket, std::string("250-fake\r\n250-PIPELINING\r\n") +
                                 (s.chunking ? "250-CHUNKING\r\n" : "") +
                                 (s.binarymime ? "250-BINARYMIME\r\n" : "") + "250 8BITMIME\r\n");
    } else if (line.starts_with("BDAT ")) {
      if (!co_await bdat(socket, buffer, line, s)) co_return;
    } else if (line == "DATA") {
      s.commands.push_back(line);
      co_await reply(socket, "354 go on\r\n");
      auto [ec2, end2] = co_await asio::async_read_until(
          socket, asio::dynamic_buffer(buffer), "\r\n.\r\n", asio::as_tuple(asio::use_awaitable));
      if (ec2) co_return;
      s.message = buffer.substr(0, end2);
      buffer.erase(0, end2);
      s.completed = true;
      co_await reply(socket, "250 2.0.0 Ok: queued\r\n");
    } else if (line == "QUIT") {
      co_await reply(socket, "221 bye\r\n");
      co_return;
    } else {
      if (line.starts_with("MAIL")) s.mails.push_back(line);
      co_await reply(socket, "250 2.0.0 Ok\r\n");  // MAIL, RCPT, RSET
    }
  }
}

struct Result {
  smtp::Reply reply;
  bool maybe_delivered = false;
  bool connected = false;
};

struct Relayed {
  Server server;
  Result result;
};

constexpr std::string_view kField = "DKIM-Signature: v=1; a=ed25519-sha256; d=example.com\r\n";

// A body a dot-stuffer would change: lines that start with a dot, one a lone dot.
std::string tricky_body(std::size_t filler) {
  std::string body = "From: <a@example.com>\r\nSubject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\n";
  for (std::size_t i = 0; body.size() < filler; ++i) body += "line " + std::to_string(i) + "\r\n";
  return body + ".\r\n";
}

asio::awaitable<Result> relay_one(asio::io_context& io, Server& s, const std::string& body,
                                  std::uint64_t chunk, std::string mail_line) {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  asio::co_spawn(io, serve(acceptor, s), asio::detached);
  auto config = std::make_shared<Config>();
  config->upstream.servers = {"127.0.0.1:" + std::to_string(acceptor.local_endpoint().port())};
  config->upstream.helo_name = "stampd.test";
  prometheus::Registry registry;
  auto& sent = prometheus::BuildCounter().Name("sent").Register(registry).Add({});
  SmtpUpstream upstream(io.get_executor(), config, nullptr, sent);
  upstream.set_bdat_chunk_size(chunk);
  const char* t = std::getenv("TMPDIR");
  Spool spool(512, t && *t ? t : "/tmp");  // the rest of a long message on disk
  EXPECT_TRUE(spool.append(body));
  auto caps = co_await upstream.open();
  EXPECT_TRUE(caps.has_value());
  smtp::Session session({}, smtp::ClientInfo{*net::parse_ip("127.0.0.1"), 1, true}, "stampd");
  const smtp::Command ehlo = smtp::parse_command("EHLO client");
  session.apply(ehlo);
  const smtp::Command mail = smtp::parse_command(mail_line);
  const smtp::Reply m = co_await upstream.mail(session, mail, {});
  if (!m.positive()) {
    Result refused{m, false, upstream.connected()};
    co_await upstream.close();
    co_return refused;
  }
  const smtp::Recipient rcpt{"b@example.net", {}};
  const smtp::Reply r = co_await upstream.rcpt(rcpt, {});
  EXPECT_EQ(r.code, 250);
  const std::vector<std::string> fields{std::string(kField)};
  Result out;
  out.reply = co_await upstream.data(fields, spool);
  out.maybe_delivered = upstream.maybe_delivered();
  out.connected = upstream.connected();
  co_await upstream.close();
  co_return out;
}

Relayed relay(Server server, const std::string& body,
              std::uint64_t chunk = SmtpUpstream::kBdatChunk,
              const std::string& mail = "MAIL FROM:<a@example.com>") {
  Relayed r{std::move(server), {}};
  r.result = test::run_coroutine<Result>(
      [&](asio::io_context& io) { return relay_one(io, r.server, body, chunk, mail); });
  return r;
}

TEST(SmtpUpstreamBdat, TheMessageGoesAsOneLastChunkByteForByte) {
  const std::string body = tricky_body(0);
  const Relayed r = relay(Server{}, body);
  EXPECT_EQ(r.result.reply.code, 250);
  const std::uint64_t size = kField.size() + body.size();
  EXPECT_EQ(r.server.commands, std::vector<std::string>{"BDAT " + std::to_string(size) + " LAST"});
  EXPECT_EQ(r.server.message, std::string(kField) + body);  // no dot-stuffing, no terminator
  EXPECT_TRUE(r.server.completed);
  EXPECT_FALSE(r.result.maybe_delivered);
}

TEST(SmtpUpstreamBdat, ALongMessageGoesInBoundedChunks) {
  const std::string body = tricky_body(2500);  // partly in the spool's file
  const Relayed r = relay(Server{}, body, 1000);
  const std::uint64_t size = kField.size() + body.size();
  std::vector<std::string> want;
  std::uint64_t left = size;
  for (; left > 1000; left -= 1000) want.push_back("BDAT 1000");
  want.push_back("BDAT " + std::to_string(left) + " LAST");
  EXPECT_EQ(r.server.commands, want);
  EXPECT_EQ(r.server.message, std::string(kField) + body);
  EXPECT_EQ(r.result.reply.code, 250);
}

TEST(SmtpUpstreamBdat, WithoutChunkingTheMessageGoesAsDataDotStuffed) {
  Server s;
  s.chunking = false;
  const std::string body = tricky_body(0);
  const Relayed r = relay(s, body);
  EXPECT_EQ(r.server.commands, std::vector<std::string>{"DATA"});
  EXPECT_NE(r.server.message.find("\r\n..leading dot\r\n..\r\n...two\r\n"), std::string::npos);
  EXPECT_TRUE(r.server.message.ends_with("\r\n..\r\n.\r\n"));  // a lone dot, then the end
  EXPECT_EQ(r.result.reply.code, 250);
}

TEST(SmtpUpstreamBdat, ARefusedChunkEndsTheMessageThere) {
  Server s;
  s.refuse_chunk = 1;
  const Relayed r = relay(s, tricky_body(2500), 1000);
  EXPECT_EQ(r.result.reply.code, 552);
  EXPECT_EQ(r.server.commands.size(), 2u);  // nothing after the refused chunk
  EXPECT_FALSE(r.server.completed);
  EXPECT_FALSE(r.result.maybe_delivered);
}

TEST(SmtpUpstreamBdat, ATemporaryRefusalOfAMiddleChunkIsPassedOn) {
  Server s;
  s.refuse_chunk = 1;
  s.refusal = "452 4.3.1 Insufficient system storage\r\n";
  const Relayed r = relay(s, tricky_body(2500), 1000);
  EXPECT_EQ(r.result.reply.code, 452);
  EXPECT_EQ(r.result.reply.enhanced, "4.3.1");
  EXPECT_EQ(r.server.commands, (std::vector<std::string>{"BDAT 1000", "BDAT 1000"}));
  EXPECT_FALSE(r.server.completed);
  // Answered: nothing in the duplicate window, and the connection, still in
  // the transaction, is not offered to another message.
  EXPECT_FALSE(r.result.maybe_delivered);
}

TEST(SmtpUpstreamBdat, TheReplyToLastIsTheVerdict) {
  Server s;
  s.last_reply = "554 5.7.1 Rejected by policy\r\n";
  const Relayed r = relay(s, tricky_body(2500), 1000);
  EXPECT_EQ(r.server.commands.size(), 3u);
  EXPECT_TRUE(r.server.commands.back().ends_with(" LAST"));
  EXPECT_EQ(r.result.reply.code, 554);
  EXPECT_EQ(r.result.reply.enhanced, "5.7.1");
  EXPECT_FALSE(r.result.maybe_delivered);  // a reply came: no doubt left
  EXPECT_TRUE(r.result.connected);
}

TEST(SmtpUpstreamBdat, AMessageOfExactlyNChunksEndsWithAFullLastChunk) {
  std::string body = tricky_body(0);
  if ((kField.size() + body.size()) % 2 != 0) body.insert(0, "X:a\r\n");  // an even size
  const std::uint64_t size = kField.size() + body.size();
  const Relayed r = relay(Server{}, body, size / 2);
  ASSERT_EQ(r.server.commands.size(), 2u);
  EXPECT_EQ(r.server.commands[1], "BDAT " + std::to_string(size / 2) + " LAST");
  EXPECT_EQ(r.server.message, std::string(kField) + body);
}

TEST(SmtpUpstreamBdat, ADropBeforeTheLastChunkIsNotADelivery) {
  Server s;
  s.drop_at_chunk = 1;
  const Relayed r = relay(s, tricky_body(2500), 1000);
  EXPECT_EQ(r.result.reply.code, 451);
  EXPECT_FALSE(r.result.connected);
  EXPECT_FALSE(r.server.completed);
  // No server can have the message: failover may send it elsewhere.
  EXPECT_FALSE(r.result.maybe_delivered);
}

TEST(SmtpUpstreamBdat, ADropAfterTheLastChunkIsTheDuplicateWindow) {
  Server s;
  s.drop_at_chunk = 2;  // the LAST one of three
  const Relayed r = relay(s, tricky_body(2500), 1000);
  EXPECT_TRUE(r.server.completed);
  EXPECT_EQ(r.result.reply.code, 451);
  EXPECT_FALSE(r.result.connected);
  // The upstream may have queued it: it must not go anywhere else.
  EXPECT_TRUE(r.result.maybe_delivered);
}

// A binary body (RFC 3030 §3): bare line ends and dot lines that DATA could
// not carry; it goes as it is, in BDAT chunks, after MAIL ... BODY=BINARYMIME.
std::string binary_body() {
  using namespace std::string_literals;
  return "From: <a@example.com>\r\n\r\n\0\xff\n.\nMAIL FROM:<e@x>\r\n.\r\nend\r"s;
}
constexpr const char* kBinaryMail = "MAIL FROM:<a@example.com> BODY=BINARYMIME";

TEST(SmtpUpstreamBdat, ABinaryMessageGoesAsItIsWithItsBodyType) {
  Server s;
  s.binarymime = true;
  const std::string body = binary_body();
  const Relayed r = relay(s, body, 16, kBinaryMail);
  EXPECT_EQ(r.result.reply.code, 250);
  EXPECT_EQ(r.server.mails, std::vector<std::string>{kBinaryMail});
  EXPECT_EQ(r.server.message, std::string(kField) + body);
  EXPECT_TRUE(r.server.completed);
}

TEST(SmtpUpstreamBdat, AServerWithoutBinarymimeIsNotGivenABinaryMessage) {
  // Not the server whose EHLO we advertised: nothing of the message is sent,
  // not even MAIL, and the client may try again (4xx).
  for (const auto& [chunking, binarymime] : {std::pair{true, false}, std::pair{false, true}}) {
    Server s;
    s.chunking = chunking;
    s.binarymime = binarymime;
    const Relayed r = relay(s, binary_body(), SmtpUpstream::kBdatChunk, kBinaryMail);
    EXPECT_EQ(r.result.reply.code, 451);
    EXPECT_EQ(r.result.reply.enhanced, "4.6.3");
    EXPECT_TRUE(r.result.connected);  // the connection can carry the next one
    EXPECT_TRUE(r.server.mails.empty());
    EXPECT_TRUE(r.server.commands.empty());
  }
}

}  // namespace
}  // namespace stampd::proxy
