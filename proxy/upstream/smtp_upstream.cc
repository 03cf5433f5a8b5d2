#include "proxy/upstream/smtp_upstream.h"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>

#include "proxy/spool.h"
#include "proxy/upstream/xclient.h"
#include "smtp/dot_stuffer.h"

namespace stampd::proxy {

namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxReplyLine = 4096;
constexpr std::size_t kMaxReplyLines = 200;
constexpr std::size_t kSendBatch = 64 * 1024;

std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// parse_capabilities reads the EHLO reply's extension lines (RFC 5321 §4.1.1.1).
smtp::UpstreamCapabilities parse_capabilities(const smtp::Reply& reply) {
  smtp::UpstreamCapabilities caps;
  std::string_view rest = reply.text;
  bool first = true;
  while (!rest.empty() || first) {
    const auto nl = rest.find('\n');
    const std::string line = upper(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (first) {
      first = false;
      continue;  // the greeting line: the server's name
    }
    const auto space = line.find(' ');
    const std::string keyword = line.substr(0, space);
    const std::string args = space == std::string::npos ? "" : line.substr(space + 1);
    if (keyword == "8BITMIME")
      caps.eightbitmime = true;
    else if (keyword == "SMTPUTF8")
      caps.smtputf8 = true;
    else if (keyword == "DSN")
      caps.dsn = true;
    else if (keyword == "PIPELINING")
      caps.pipelining = true;
    else if (keyword == "STARTTLS")
      caps.starttls = true;
    else if (keyword == "CHUNKING")
      caps.chunking = true;
    else if (keyword == "BINARYMIME")
      caps.binarymime = true;
    else if (keyword == "SIZE") {
      caps.size_offered = true;
      caps.size = 0;
      if (!args.empty()) caps.size = std::strtoull(args.c_str(), nullptr, 10);
    } else if (keyword == "XFORWARD") {
      caps.xforward = true;
      std::string_view a = args;
      while (!a.empty()) {
        const auto sp = a.find(' ');
        if (sp != 0) caps.xforward_attributes.emplace_back(a.substr(0, sp));
        a = sp == std::string_view::npos ? std::string_view{} : a.substr(sp + 1);
      }
    } else if (keyword == "XCLIENT") {
      caps.xclient = true;
      std::string_view a = args;
      while (!a.empty()) {
        const auto sp = a.find(' ');
        if (sp != 0) caps.xclient_attributes.emplace_back(a.substr(0, sp));
        a = sp == std::string_view::npos ? std::string_view{} : a.substr(sp + 1);
      }
    } else if (keyword == "AUTH") {
      std::string_view a = args;
      while (!a.empty()) {
        const auto sp = a.find(' ');
        if (sp != 0) caps.auth_mechanisms.emplace_back(a.substr(0, sp));
        a = sp == std::string_view::npos ? std::string_view{} : a.substr(sp + 1);
      }
    }
  }
  return caps;
}

// MessageSource yields the message as it goes upstream: the prepended
// header fields, then the spool, in pieces of at most a given size.
class MessageSource {
 public:
  MessageSource(const std::vector<std::string>& fields, const Spool& spool)
      : fields_(fields), spool_(spool) {}

  std::uint64_t size() const {
    std::uint64_t n = spool_.size();
    for (const auto& f : fields_) n += f.size();
    return n;
  }

  // next returns up to max bytes (at least one while any are left).
  net::Result<std::string_view> next(std::uint64_t max) {
    while (field_ < fields_.size() && offset_ == fields_[field_].size()) {
      ++field_;
      offset_ = 0;
    }
    if (field_ < fields_.size()) {
      const std::string_view rest = std::string_view(fields_[field_]).substr(offset_);
      const std::string_view piece = rest.substr(0, max);
      offset_ += piece.size();
      return piece;
    }
    auto piece = spool_.read(offset_, buffer_, static_cast<std::size_t>(max));
    if (piece) offset_ += piece->size();
    return piece;
  }

 private:
  const std::vector<std::string>& fields_;
  const Spool& spool_;
  std::size_t field_ = 0;
  std::uint64_t offset_ = 0;  // in the current field, then in the spool
  std::string buffer_;
};

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  auto ip = net::parse_ip(host);
  return ip && net::unmap(*ip).is_loopback();
}

}  // namespace

SmtpUpstream::SmtpUpstream(asio::any_io_executor executor, std::shared_ptr<const Config> config,
                           std::shared_ptr<asio::ssl::context> tls, prometheus::Counter& sent,
                           std::shared_ptr<ServerHealth> servers)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      tls_(std::move(tls)),
      sent_(sent),
      servers_(std::move(servers)) {}

SmtpUpstream::~SmtpUpstream() = default;

void SmtpUpstream::fail(UpstreamErrorKind kind, std::string why) {
  error_kind_ = kind;
  error_ = peer_.empty() ? std::move(why) : peer_ + ": " + why;
  drop();
}

smtp::Reply SmtpUpstream::abandoned_reply() {
  // The server said 354 though the client's DATA was refused here (it
  // accepted no recipient of ours): a command now would be message text.
  fail(UpstreamErrorKind::Protocol, "354 to a DATA without an accepted recipient");
  abandoned_ = true;
  return failure_reply();
}

void SmtpUpstream::abandon() {
  abandoned_ = true;
  drop();
}

void SmtpUpstream::drop() {
  in_transaction_ = false;
  data_open_ = false;
  ahead_.clear();
  xclient_sent_.clear();
  reader_.reset();
  if (stream_) stream_->close();
  stream_.reset();
}

smtp::Reply SmtpUpstream::failure_reply() const {
  switch (error_kind_) {
    case UpstreamErrorKind::Connect:
      return smtp::make_reply(451, "4.4.1", "Upstream server unavailable, try again later");
    case UpstreamErrorKind::Tls:
    case UpstreamErrorKind::Auth:
      return smtp::make_reply(451, "4.7.0",
                              "Upstream server refused our connection, try again later");
    default:
      return smtp::make_reply(451, "4.4.2", "Upstream connection failed, try again later");
  }
}

bool SmtpUpstream::went_out(const net::Status& sent) {
  if (sent) return true;
  const bool timed_out = sent.error().code == net::Errc::Timeout;
  fail(timed_out ? UpstreamErrorKind::Timeout : UpstreamErrorKind::Dropped,
       "sending: " + sent.error().message());
  return false;
}

asio::awaitable<bool> SmtpUpstream::send(std::string_view text, net::Duration timeout) {
  if (!stream_) co_return false;
  sent_.Increment(static_cast<double>(text.size()));
  const net::Status sent =
      co_await stream_->write_all(asio::buffer(text.data(), text.size()), timeout);
  co_return went_out(sent);
}

asio::awaitable<bool> SmtpUpstream::send_gathered(std::vector<asio::const_buffer> pieces,
                                                  net::Duration timeout) {
  if (!stream_) co_return false;
  sent_.Increment(static_cast<double>(asio::buffer_size(pieces)));
  const net::Status sent = co_await stream_->write_all(std::move(pieces), timeout);
  co_return went_out(sent);
}

asio::awaitable<std::optional<smtp::Reply>> SmtpUpstream::read_reply(net::Duration timeout) {
  // The timeout bounds the whole reply: a server that trickles its lines
  // (or their bytes) is cut like a silent one.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  smtp::Reply reply;
  for (std::size_t count = 0; count < kMaxReplyLines; ++count) {
    if (!reader_) co_return std::nullopt;
    const net::Duration left =
        std::max(net::Duration::zero(), deadline - std::chrono::steady_clock::now());
    auto line = co_await reader_->read_line(kMaxReplyLine, left);
    if (!line) {
      const auto& e = line.error();
      if (e.code == net::Errc::Timeout) {
        fail(UpstreamErrorKind::Timeout, "no reply within the timeout");
      } else if (e.code == net::Errc::LimitExceeded) {
        fail(UpstreamErrorKind::Protocol, "reply line too long");
      } else {
        fail(UpstreamErrorKind::Dropped, "connection lost: " + e.message());
      }
      co_return std::nullopt;
    }
    auto parsed = smtp::parse_reply_line(*line);
    if (!parsed || (count > 0 && parsed->code != reply.code)) {
      fail(UpstreamErrorKind::Protocol, "malformed reply line");
      co_return std::nullopt;
    }
    smtp::Reply piece{parsed->code, "", std::string(parsed->text)};
    smtp::split_enhanced(piece);
    if (count == 0) {
      reply = std::move(piece);
    } else {
      reply.text += '\n';
      reply.text += piece.text;
      if (reply.enhanced.empty()) reply.enhanced = piece.enhanced;
    }
    if (parsed->last) co_return reply;
  }
  fail(UpstreamErrorKind::Protocol, "reply has too many lines");
  co_return std::nullopt;
}

asio::awaitable<std::optional<smtp::Reply>> SmtpUpstream::command(std::string line,
                                                                  net::Duration timeout) {
  line += "\r\n";
  if (!co_await send(line, timeout)) co_return std::nullopt;
  auto reply = co_await read_reply(timeout);
  // RFC 5321 §3.8: after 421 the server closes; so do we, and the next
  // transaction starts on a fresh connection.
  if (reply && reply->code == 421)
    fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + reply->summary());
  co_return reply;
}

asio::awaitable<bool> SmtpUpstream::ehlo(std::string name) {
  const auto timeout = config_->upstream.connect_timeout;
  if (name.empty()) name = config_->upstream.helo_name;
  auto reply = co_await command("EHLO " + name, timeout);
  if (!reply) co_return false;
  if (reply->code == 250) {
    caps_ = parse_capabilities(*reply);
    co_return true;
  }
  // RFC 5321 §3.2: an old server may only know HELO.
  reply = co_await command("HELO " + name, timeout);
  if (!reply) co_return false;
  if (reply->code != 250) {
    fail(UpstreamErrorKind::Protocol, "EHLO and HELO refused: " + reply->summary());
    co_return false;
  }
  caps_ = {};
  co_return true;
}

asio::awaitable<bool> SmtpUpstream::authenticate() {
  const auto& u = config_->upstream;
  const auto timeout = u.connect_timeout;
  // Never send a password in clear text beyond this host.
  if (!stream_->tls_active() && !is_loopback(server_host_)) {
    fail(UpstreamErrorKind::Auth, "refusing to send AUTH credentials without TLS");
    co_return false;
  }
  const auto& mechs = caps_.auth_mechanisms;
  std::optional<smtp::Reply> reply;
  if (std::find(mechs.begin(), mechs.end(), "PLAIN") != mechs.end()) {
    std::string token;
    token += '\0';
    token += u.auth_username;
    token += '\0';
    token += u.password;
    reply = co_await command("AUTH PLAIN " + base64(token), timeout);
  } else if (std::find(mechs.begin(), mechs.end(), "LOGIN") != mechs.end()) {
    reply = co_await command("AUTH LOGIN", timeout);
    if (reply && reply->code == 334) reply = co_await command(base64(u.auth_username), timeout);
    if (reply && reply->code == 334) reply = co_await command(base64(u.password), timeout);
  } else {
    fail(UpstreamErrorKind::Auth, "server offers neither AUTH PLAIN nor AUTH LOGIN");
    co_return false;
  }
  if (!reply) co_return false;
  if (reply->code != 235) {
    fail(UpstreamErrorKind::Auth, "authentication failed: " + reply->summary());
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> SmtpUpstream::connect_one(const std::string& server) {
  const auto& u = config_->upstream;
  peer_.clear();
  auto hp = net::split_host_port(server, u.tls == TlsMode::Implicit ? "465" : "25");
  if (!hp) {
    fail(UpstreamErrorKind::Connect, hp.error().detail);
    co_return false;
  }
  server_host_ = hp->host;
  auto connected = co_await net::connect_tcp(executor_, hp->host, hp->port, u.connect_timeout);
  if (!connected) {
    fail(UpstreamErrorKind::Connect, connected.error().detail);
    co_return false;
  }
  peer_ = server;
  stream_ = std::move(*connected);
  reader_ = std::make_unique<net::LineReader>(*stream_, 16 * 1024);
  const std::string sni = u.server_name.empty() ? hp->host : u.server_name;
  if (u.tls == TlsMode::Implicit) {
    auto tls =
        co_await stream_->start_tls_client(*tls_, sni, u.verify_certificate, u.connect_timeout);
    if (!tls) {
      fail(UpstreamErrorKind::Tls, tls.error().message());
      co_return false;
    }
  }
  auto greeting = co_await read_reply(u.connect_timeout);
  if (!greeting) co_return false;
  if (greeting->code != 220) {
    fail(UpstreamErrorKind::Protocol, "greeting: " + greeting->summary());
    co_return false;
  }
  if (!co_await ehlo()) co_return false;
  if ((u.tls == TlsMode::Starttls || u.tls == TlsMode::Required) && !stream_->tls_active()) {
    if (caps_.starttls) {
      auto reply = co_await command("STARTTLS", u.connect_timeout);
      if (!reply) co_return false;
      if (reply->code != 220) {
        fail(UpstreamErrorKind::Tls, "STARTTLS refused: " + reply->summary());
        co_return false;
      }
      // RFC 3207 §4.2 / CVE-2011-0411: nothing read before the handshake counts.
      reader_->discard();
      auto tls =
          co_await stream_->start_tls_client(*tls_, sni, u.verify_certificate, u.connect_timeout);
      if (!tls) {
        fail(UpstreamErrorKind::Tls, tls.error().message());
        co_return false;
      }
      if (!co_await ehlo()) co_return false;
    } else if (u.tls == TlsMode::Required) {
      fail(UpstreamErrorKind::Tls, "server does not offer STARTTLS and tls = \"required\"");
      co_return false;
    }
  }
  if (!u.auth_username.empty() && !co_await authenticate()) co_return false;
  co_return true;
}

asio::awaitable<std::optional<smtp::UpstreamCapabilities>> SmtpUpstream::open() {
  if (stream_) co_return caps_;
  const std::vector<std::string> order = servers_ ? servers_->order() : config_->upstream.servers;
  for (const auto& server : order) {
    if (server.starts_with("maildir:")) continue;
    if (co_await connect_one(server)) {
      if (servers_) servers_->succeeded(server);
      error_kind_ = UpstreamErrorKind::None;
      error_.clear();
      co_return caps_;
    }
    if (servers_) servers_->failed(server);
  }
  co_return std::nullopt;
}

bool SmtpUpstream::use_xclient() const { return config_->upstream.xclient && caps_.xclient; }

asio::awaitable<bool> SmtpUpstream::xclient(const smtp::Session& session) {
  const std::string line = xclient_line(xclient_identity(session), caps_.xclient_attributes);
  // The upstream keeps what XCLIENT said for the connection's later
  // transactions: the same client again needs no new one.
  if (line.empty() || line == xclient_sent_) co_return true;
  xclient_sent_.clear();
  auto reply = co_await command(line, config_->upstream.command_timeout);
  if (!reply) co_return false;
  if (reply->code != 220) {
    // Offered but refused: stampd is not in smtpd_authorized_xclient_hosts
    // or a value was bad. Never relay as ourselves instead: the upstream
    // would apply our rights to the client's mail.
    fail(UpstreamErrorKind::Auth, "XCLIENT refused: " + reply->summary());
    co_return false;
  }
  // XCLIENT_README: the server starts a new session (the 220 above) and
  // wants EHLO again; what it offers may change with the client it sees.
  // The EHLO name is the client's, as XCLIENT's HELO said: the server takes
  // the name of this EHLO for its logs and Received header.
  std::string helo = xtext_decode(xclient_identity(session).helo);
  const bool printable =
      std::all_of(helo.begin(), helo.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (!printable) helo.clear();  // never a line break or space into EHLO
  if (!co_await ehlo(helo)) co_return false;
  xclient_sent_ = line;
  co_return true;
}

std::string SmtpUpstream::xforward_line(const smtp::Session& session) const {
  if (!config_->upstream.xforward || !caps_.xforward || use_xclient()) return {};
  // Postfix XFORWARD_README: attributes of the original client, so that the
  // upstream logs and checks the real sender, not us.
  const auto& attrs = caps_.xforward_attributes;
  auto offered = [&](const std::string& n) {
    return std::find(attrs.begin(), attrs.end(), n) != attrs.end();
  };
  std::vector<std::pair<std::string, std::string>> values = session.xforward().attributes;
  if (values.empty()) {
    const auto ip = net::unmap(session.client().address);
    values.emplace_back("ADDR", ip.is_v6() ? "IPV6:" + ip.to_string() : ip.to_string());
    values.emplace_back("PORT", std::to_string(session.client().port));
    values.emplace_back("HELO", session.helo());
    values.emplace_back("PROTO", session.protocol());
  }
  std::string line = "XFORWARD";
  for (const auto& [n, v] : values) {
    if (!offered(n) || v.empty()) continue;
    line.append(" ").append(n).append("=").append(v);
  }
  return line.size() > 8 ? line : std::string{};
}

std::string SmtpUpstream::rcpt_line(const smtp::Recipient& recipient) const {
  std::string line = "RCPT TO:<" + recipient.address + ">";
  for (const auto& p : recipient.params) {
    if ((p.keyword == "NOTIFY" || p.keyword == "ORCPT") && caps_.dsn) line += " " + p.wire();
  }
  return line;
}

asio::awaitable<bool> SmtpUpstream::drain_ahead() {
  const auto timeout = config_->upstream.command_timeout;
  while (stream_ && !ahead_.empty()) {
    const bool data = ahead_.front() == kData;
    ahead_.pop_front();
    auto reply = co_await read_reply(timeout);
    if (!reply) co_return false;
    if (reply->code == 421) {
      fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + reply->summary());
      co_return false;
    }
    if (data && reply->code == 354) {
      abandon();
      co_return false;
    }
  }
  co_return stream_ != nullptr;
}

void SmtpUpstream::queue_ahead(Ahead ahead, std::string& out) {
  for (const auto& r : ahead.recipients) {
    ahead_.push_back(rcpt_line(r));
    out.append(ahead_.back()).append("\r\n");
  }
  // DATA goes with them only where the message would go as DATA: BDAT
  // needs no 354, so its message leaves in one write anyway.
  if (ahead.data && !caps_.chunking && !binary_) {
    ahead_.emplace_back(kData);
    out.append(kData).append("\r\n");
  }
}

asio::awaitable<smtp::Reply> SmtpUpstream::mail(const smtp::Session& session,
                                                const smtp::Command& mail, Ahead ahead) {
  const auto timeout = config_->upstream.command_timeout;
  if (!stream_) co_return failure_reply();
  if (data_open_) co_return abandoned_reply();
  if (!ahead_.empty() && !co_await drain_ahead()) co_return failure_reply();
  if (use_xclient() && !co_await xclient(session)) co_return failure_reply();
  binary_ = mail.body_is("BINARYMIME");
  if (binary_ && !(caps_.binarymime && caps_.chunking)) {
    // Another server than the one whose EHLO we advertised (failover, or a
    // changed server): a binary body cannot be converted or sent as DATA.
    co_return smtp::make_reply(451, "4.6.3",
                               "Upstream " + peer_ + " does not take BINARYMIME, try again later");
  }
  std::string line = "MAIL FROM:<" + mail.argument + ">";
  for (const auto& p : mail.params) {
    // RFC 5321 §2.2.2: only parameters of extensions the server offered.
    const bool pass = (p.keyword == "SIZE" && caps_.size_offered) ||
                      (p.keyword == "BODY" && (binary_ || caps_.eightbitmime)) ||
                      (p.keyword == "SMTPUTF8" && caps_.smtputf8) ||
                      ((p.keyword == "RET" || p.keyword == "ENVID") && caps_.dsn);
    if (pass) line += " " + p.wire();
  }
  const std::string xforward = xforward_line(session);
  if (!caps_.pipelining) {
    if (!xforward.empty()) {
      auto reply = co_await command(xforward, timeout);
      if (!reply) co_return failure_reply();
    }
    auto reply = co_await command(line, timeout);
    if (!reply) co_return failure_reply();
    in_transaction_ = reply->positive();
    co_return *reply;
  }
  // RFC 2920: XFORWARD, MAIL and the recipients (and DATA) the client sent
  // ahead go in one write; the recipients' replies are read by rcpt().
  std::string out;
  if (!xforward.empty()) out.append(xforward).append("\r\n");
  out.append(line).append("\r\n");
  queue_ahead(ahead, out);
  if (!co_await send(out, timeout)) co_return failure_reply();
  std::optional<smtp::Reply> reply;
  for (int i = xforward.empty() ? 1 : 0; i < 2; ++i) {
    reply = co_await read_reply(timeout);
    if (!reply) co_return failure_reply();
    if (reply->code == 421) {
      fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + reply->summary());
      co_return *reply;
    }
  }
  in_transaction_ = reply->positive();
  // Without a transaction the recipients sent ahead are refused; nobody
  // asks for those replies, so read them now.
  if (!in_transaction_ && !co_await drain_ahead()) co_return failure_reply();
  co_return *reply;
}

asio::awaitable<smtp::Reply> SmtpUpstream::rcpt(const smtp::Recipient& recipient, Ahead ahead) {
  const auto timeout = config_->upstream.command_timeout;
  if (!stream_) co_return failure_reply();
  if (data_open_) co_return abandoned_reply();
  std::string line = rcpt_line(recipient);
  if (ahead_.empty()) {
    std::string out = line + "\r\n";
    if (caps_.pipelining) queue_ahead(ahead, out);
    if (!co_await send(out, timeout)) co_return failure_reply();
  } else if (ahead_.front() != line) {
    // Never guess which reply belongs to whom.
    fail(UpstreamErrorKind::Local, "pipelined recipients answered out of order");
    co_return failure_reply();
  } else {
    ahead_.pop_front();
  }
  auto reply = co_await read_reply(timeout);
  if (!reply) co_return failure_reply();
  if (reply->code == 421)
    fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + reply->summary());
  co_return *reply;
}

asio::awaitable<smtp::Reply> SmtpUpstream::data_ahead_reply() {
  if (!stream_) co_return failure_reply();
  if (ahead_.empty() || ahead_.front() != kData) {
    fail(UpstreamErrorKind::Local, "DATA's reply asked before the recipients' replies");
    co_return failure_reply();
  }
  ahead_.pop_front();
  auto reply = co_await read_reply(config_->upstream.command_timeout);
  if (!reply) co_return failure_reply();
  if (reply->code == 421) {
    fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + reply->summary());
  }
  data_open_ = reply->code == 354;
  co_return *reply;
}

asio::awaitable<smtp::Reply> SmtpUpstream::data(const std::vector<std::string>& prepend_fields,
                                                const Spool& spool) {
  const auto& u = config_->upstream;
  dot_unanswered_ = false;
  if (!stream_) co_return failure_reply();
  if (!ahead_.empty()) {
    // A recipient the client never heard about may be in this transaction:
    // never send the message on it.
    fail(UpstreamErrorKind::Local, "DATA with pipelined recipients unanswered");
    co_return failure_reply();
  }
  // Unless DATA went ahead with the recipients and was answered 354.
  if (!data_open_) {
    if (caps_.chunking) {
      const smtp::Reply r = co_await send_chunks(prepend_fields, spool);
      co_return r;
    }
    if (binary_) {
      // mail() refused such a transaction; a binary body never goes as DATA,
      // where a bare LF and a dot could end it early.
      fail(UpstreamErrorKind::Local, "binary message without CHUNKING");
      co_return failure_reply();
    }
    auto reply = co_await command("DATA", u.command_timeout);
    if (!reply) co_return failure_reply();
    if (reply->code != 354) {
      in_transaction_ = reply->positive();
      co_return *reply;
    }
  }
  data_open_ = false;
  std::optional<smtp::Reply> failed = co_await send_message(prepend_fields, spool);
  if (failed) co_return std::move(*failed);
  const smtp::Reply r = co_await final_reply();
  co_return r;
}

asio::awaitable<std::optional<smtp::Reply>> SmtpUpstream::send_message(
    const std::vector<std::string>& prepend_fields, const Spool& spool) {
  const auto& u = config_->upstream;
  smtp::DotStuffer stuffer;
  std::string out;
  out.reserve(kSendBatch + 4096);
  for (const auto& field : prepend_fields) stuffer.feed(field, out);
  std::string buffer;
  // held: pieces of the spool's memory that go out as they are, sent
  // together with what follows them in one gathered write, so a small
  // message leaves in one write with its end-of-data.
  std::vector<asio::const_buffer> held;
  std::size_t held_bytes = 0;
  for (std::uint64_t offset = 0; offset < spool.size();) {
    auto chunk = spool.read(offset, buffer);
    if (!chunk) {
      // We cannot send the whole message: drop the connection rather than
      // let the upstream see a complete-looking partial one.
      fail(UpstreamErrorKind::Local, chunk.error().message());
      co_return smtp::make_reply(451, "4.3.0", "Local error while relaying, try again later");
    }
    offset += chunk->size();
    // A chunk with no dotted line goes as it is, from the spool's memory or
    // the read buffer, rather than as a stuffed copy; the last one is copied
    // so that it leaves with the end-of-data.
    if (out.empty() && offset < spool.size() && stuffer.unchanged(*chunk)) {
      held.emplace_back(chunk->data(), chunk->size());
      held_bytes += chunk->size();
      // The read buffer is reused by the next read: what points into it goes now.
      if (chunk->data() == buffer.data() || held_bytes >= kSendBatch) {
        const bool sent = co_await send_gathered(std::move(held), u.data_timeout);
        if (!sent) co_return failure_reply();
        held.clear();
        held_bytes = 0;
      }
      continue;
    }
    stuffer.feed(*chunk, out);
    if (out.size() >= kSendBatch) {
      held.emplace_back(out.data(), out.size());
      const bool sent = co_await send_gathered(std::move(held), u.data_timeout);
      if (!sent) co_return failure_reply();
      held.clear();
      held_bytes = 0;
      out.clear();
    }
  }
  stuffer.finish(out);
  held.emplace_back(out.data(), out.size());
  const bool sent = co_await send_gathered(std::move(held), u.data_timeout);
  if (!sent) co_return failure_reply();
  co_return std::nullopt;
}

asio::awaitable<smtp::Reply> SmtpUpstream::final_reply() {
  dot_unanswered_ = true;
  auto final_reply = co_await read_reply(config_->upstream.data_timeout);
  in_transaction_ = false;
  if (!final_reply) co_return failure_reply();
  dot_unanswered_ = false;
  // RFC 5321 §3.8: the server closes after 421; it did not take the message.
  if (final_reply->code == 421)
    fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + final_reply->summary());
  co_return *final_reply;
}

asio::awaitable<smtp::Reply> SmtpUpstream::send_chunks(
    const std::vector<std::string>& prepend_fields, const Spool& spool) {
  const auto timeout = config_->upstream.data_timeout;
  MessageSource source(prepend_fields, spool);
  std::uint64_t remaining = source.size();
  std::string out;
  out.reserve(kSendBatch + 64);
  for (;;) {
    // RFC 3030 §2: each chunk is exactly the octets its BDAT announces, as
    // they are (no dot-stuffing); only the LAST one ends the message. A
    // bounded chunk keeps what the upstream must hold per chunk bounded.
    const std::uint64_t size = std::min<std::uint64_t>(remaining, bdat_chunk_size_);
    const bool last = size == remaining;
    out = "BDAT " + std::to_string(size) + (last ? " LAST" : "") + "\r\n";
    for (std::uint64_t left = size; left > 0;) {
      auto piece = source.next(std::min<std::uint64_t>(left, kSendBatch));
      if (piece && piece->empty()) piece = net::make_error(net::Errc::Io, "spool ends early");
      if (!piece) {
        // The chunk's size is promised: a short chunk would run into the
        // next command. Drop the connection instead.
        fail(UpstreamErrorKind::Local, piece.error().message());
        co_return smtp::make_reply(451, "4.3.0", "Local error while relaying, try again later");
      }
      out.append(*piece);
      left -= piece->size();
      if (out.size() >= kSendBatch) {
        if (!co_await send(out, timeout)) co_return failure_reply();
        out.clear();
      }
    }
    if (!co_await send(out, timeout)) co_return failure_reply();
    if (last) break;
    // Each chunk waits for its reply before the next goes (lockstep is
    // right with or without PIPELINING): after a refused chunk no more may
    // be sent (RFC 3030 §2), and none has been.
    auto reply = co_await read_reply(timeout);
    if (!reply) co_return failure_reply();
    if (reply->code == 421)
      fail(UpstreamErrorKind::Dropped, "closed by the upstream: " + reply->summary());
    // A refused chunk fails the message; the transaction stays open upstream
    // (never reused: the pool closes a connection in a transaction).
    if (!reply->positive()) co_return *reply;
    remaining -= size;
  }
  // The LAST chunk is the final dot of BDAT: from here on the upstream may
  // have the message whether or not its reply arrives.
  const smtp::Reply r = co_await final_reply();
  co_return r;
}

asio::awaitable<void> SmtpUpstream::reset() {
  abandoned_ = false;
  if (!ahead_.empty()) {
    const bool drained = co_await drain_ahead();
    if (!drained) co_return;
  }
  if (data_open_) {
    abandon();
    co_return;
  }
  if (!stream_ || !in_transaction_) co_return;
  auto reply = co_await command("RSET", config_->upstream.command_timeout);
  if (reply && reply->code != 250)
    fail(UpstreamErrorKind::Protocol, "RSET refused: " + reply->summary());
  in_transaction_ = false;
}

asio::awaitable<void> SmtpUpstream::close() {
  abandoned_ = false;
  if (!stream_) co_return;
  if (data_open_ || data_ahead_pending()) {
    abandon();
    co_return;
  }
  const auto timeout =
      std::min<net::Duration>(config_->upstream.command_timeout, std::chrono::seconds(10));
  // QUIT aborts any transaction in progress (RFC 5321 §4.1.1.10): a partial
  // message is never completed.
  if (co_await send("QUIT\r\n", timeout)) {
    (void)co_await read_reply(timeout);
  }
  if (stream_) co_await stream_->shutdown(timeout);
  stream_.reset();
  reader_.reset();
  in_transaction_ = false;
  xclient_sent_.clear();
}

}  // namespace stampd::proxy
