#include "smtp/session.h"

#include <algorithm>
#include <charconv>

namespace stampd::smtp {
namespace {

bool is_decimal(std::string_view s) {
  return !s.empty() && s.size() <= 20 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Reply unsupported(const EsmtpParam& p) {
  return make_reply(555, "5.5.4", "Unsupported parameter " + p.keyword);
}

constexpr std::array<std::string_view, 7> kXforwardNames{"NAME", "ADDR",  "PORT",  "PROTO",
                                                         "HELO", "IDENT", "SOURCE"};

using Attributes = std::vector<std::pair<std::string, std::string>>;

// parse_xforward splits "NAME=x ADDR=y"; nullopt names the first bad token.
std::optional<Attributes> parse_xforward(std::string_view rest, std::string& problem) {
  Attributes out;
  while (!rest.empty()) {
    const auto end = std::min(rest.find(' '), rest.size());
    const auto token = rest.substr(0, end);
    rest.remove_prefix(end);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    const auto eq = token.find('=');
    if (eq == std::string_view::npos || token.size() - eq - 1 > 255) {
      problem = "Bad XFORWARD attribute";
      return std::nullopt;
    }
    std::string name(token.substr(0, eq));
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (std::find(kXforwardNames.begin(), kXforwardNames.end(), name) == kXforwardNames.end()) {
      problem = "Unknown XFORWARD attribute " + name;
      return std::nullopt;
    }
    out.emplace_back(std::move(name), std::string(token.substr(eq + 1)));
  }
  return out;
}

}  // namespace

const std::string* Xforward::find(std::string_view name) const {
  for (const auto& [n, v] : attributes) {
    if (n == name) return &v;
  }
  return nullptr;
}

const char* to_string(Session::State state) {
  switch (state) {
    case Session::State::Connected:
      return "connected";
    case Session::State::Greeted:
      return "greeted";
    case Session::State::HaveMail:
      return "have-mail";
    case Session::State::HaveRcpt:
      return "have-rcpt";
    case Session::State::InChunks:
      return "in-chunks";
    case Session::State::InData:
      return "in-data";
    case Session::State::Closed:
      return "closed";
  }
  return "?";
}

Session::Session(SessionLimits limits, ClientInfo client, std::string hostname)
    : limits_(limits), client_(std::move(client)), hostname_(std::move(hostname)) {}

void Session::count(const Command&) { ++commands_; }

void Session::note_refusal(const Reply& reply) {
  // 500-504: syntax, sequence and unknown-command errors (RFC 5321 §4.2.2).
  if (reply.code >= 500 && reply.code <= 504) ++errors_;
}

std::uint64_t Session::message_size_limit() const {
  if (caps_.size != 0 && caps_.size < limits_.max_message_size) return caps_.size;
  return limits_.max_message_size;
}

std::optional<Reply> Session::check(const Command& cmd) const {
  if (state_ == State::Closed) return make_reply(421, "4.7.0", "Connection closing");
  if (commands_ > limits_.max_commands) {
    return make_reply(421, "4.7.0", "Too many commands, closing connection");
  }
  if (errors_ > limits_.max_errors)
    return make_reply(421, "4.7.0", "Too many errors, closing connection");
  if (cmd.syntax_error) return cmd.syntax_error;

  switch (cmd.verb) {
    case Verb::Helo:
    case Verb::Ehlo:
    case Verb::Rset:
    case Verb::Noop:
    case Verb::Quit:
    case Verb::Vrfy:
    case Verb::Help:
      return std::nullopt;
    case Verb::Mail:
      return check_mail(cmd);
    case Verb::Rcpt:
      return check_rcpt(cmd);
    case Verb::Data:
      if (state_ == State::HaveRcpt && binarymime_transaction_) {
        return make_reply(503, "5.5.1", "BODY=BINARYMIME needs BDAT, not DATA");  // RFC 3030 §3
      }
      if (state_ == State::HaveRcpt) return std::nullopt;
      if (state_ == State::HaveMail) return make_reply(554, "5.5.1", "No valid recipients");
      // RFC 3030 §3: DATA and BDAT cannot be mixed in one transaction.
      if (state_ == State::InChunks) return make_reply(503, "5.5.1", "DATA cannot follow BDAT");
      return make_reply(503, "5.5.1", "Need MAIL and RCPT before DATA");
    case Verb::Bdat:
      return check_bdat(cmd);
    case Verb::Xforward:
      return check_xforward(cmd);
    case Verb::Starttls:
      return check_starttls();
    case Verb::Auth:
      if (!auth_.enabled) return make_reply(502, "5.5.1", "Command not implemented");
      return check_auth();
    default:
      return make_reply(502, "5.5.1", "Command not implemented");
  }
}

std::optional<Reply> Session::check_mail(const Command& cmd) const {
  if (state_ == State::Connected) return make_reply(503, "5.5.1", "Send EHLO or HELO first");
  if (state_ != State::Greeted) return make_reply(503, "5.5.1", "Nested MAIL command");
  // RFC 3207 §4: the reply to a command refused until STARTTLS.
  if (tls_policy_.required && !tls_) {
    return make_reply(530, "5.7.0", "Must issue a STARTTLS command first");
  }
  // RFC 5321 §3.6.2 / DESIGN: no open relay.
  if (!may_relay()) {
    // RFC 4954 §6: a client that could log in is told so.
    if (auth_offered()) return make_reply(530, "5.7.0", "Authentication required");
    return make_reply(554, "5.7.1", "Relay access denied");
  }
  if (!cmd.params.empty() && !esmtp_) {
    return make_reply(555, "5.5.4", "Parameters need EHLO");
  }
  bool smtputf8 = false;
  for (const auto& p : cmd.params) {
    if (p.keyword == "SIZE") {
      if (!p.value || !is_decimal(*p.value)) return make_reply(501, "5.5.4", "Bad SIZE value");
      std::uint64_t size = 0;
      std::from_chars(p.value->data(), p.value->data() + p.value->size(), size);
      if (size > message_size_limit()) {
        return make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
      }
    } else if (p.keyword == "BODY") {
      if (!p.value) return make_reply(501, "5.5.4", "Bad BODY value");
      if (cmd.body_is("7BIT")) continue;
      if (cmd.body_is("8BITMIME") && caps_.eightbitmime) continue;
      if (cmd.body_is("BINARYMIME") && binarymime_offered()) continue;
      return make_reply(555, "5.5.4", "Unsupported BODY type " + *p.value);
    } else if (p.keyword == "SMTPUTF8" && caps_.smtputf8 && !p.value) {
      smtputf8 = true;
    } else if ((p.keyword == "RET" || p.keyword == "ENVID") && caps_.dsn && p.value) {
      if (p.keyword == "RET" && *p.value != "FULL" && *p.value != "HDRS") {
        return make_reply(501, "5.5.4", "Bad RET value");
      }
    } else {
      return unsupported(p);
    }
  }
  if (cmd.non_ascii && !smtputf8) {
    return make_reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");  // RFC 6531 §3.5
  }
  return std::nullopt;
}

std::optional<Reply> Session::check_bdat(const Command& cmd) const {
  if (state_ == State::HaveMail) return make_reply(554, "5.5.1", "No valid recipients");
  if (state_ != State::HaveRcpt && state_ != State::InChunks) {
    return make_reply(503, "5.5.1", "Need MAIL and RCPT before BDAT");
  }
  // RFC 3030 §2 (and RFC 1870): the size is known before the octets are
  // read, so an oversized message is refused before it costs anything.
  const std::uint64_t limit = message_size_limit();
  if (cmd.chunk_size > limit || chunked_octets_ > limit - cmd.chunk_size) {
    return make_reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
  }
  return std::nullopt;
}

std::optional<Reply> Session::check_rcpt(const Command& cmd) const {
  if (state_ == State::InChunks) return make_reply(503, "5.5.1", "RCPT cannot follow BDAT");
  if (state_ != State::HaveMail && state_ != State::HaveRcpt) {
    return make_reply(503, "5.5.1", "Need MAIL before RCPT");
  }
  // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest later.
  if (envelope_.recipients.size() >= limits_.max_recipients) {
    return make_reply(452, "4.5.3", "Too many recipients");
  }
  for (const auto& p : cmd.params) {
    if ((p.keyword == "NOTIFY" || p.keyword == "ORCPT") && caps_.dsn && p.value) continue;
    return unsupported(p);
  }
  if (cmd.non_ascii && !smtputf8_transaction_) {
    return make_reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
  }
  return std::nullopt;
}

std::optional<Reply> Session::check_xforward(const Command& cmd) const {
  if (!client_.trusted) return make_reply(550, "5.7.0", "XFORWARD not allowed");
  if (state_ != State::Greeted)
    return make_reply(503, "5.5.1", "XFORWARD only between transactions");
  if (cmd.argument.empty()) return make_reply(501, "5.5.4", "Syntax: XFORWARD attribute=value...");
  std::string problem;
  if (!parse_xforward(cmd.argument, problem)) return make_reply(501, "5.5.4", problem);
  return std::nullopt;
}

std::optional<Reply> Session::check_starttls() const {
  if (tls_) return make_reply(503, "5.5.1", "TLS already active");
  // Not offered (no certificate, or an implicit-TLS listener): as before.
  if (!tls_policy_.starttls) return make_reply(502, "5.5.1", "Command not implemented");
  // RFC 3207 §4: STARTTLS is an EHLO extension; and a transaction begun in
  // clear must not go on encrypted (everything before TLS is dropped).
  if (state_ == State::Connected) return make_reply(503, "5.5.1", "Send EHLO first");
  if (state_ != State::Greeted) {
    return make_reply(503, "5.5.1", "STARTTLS not allowed during a mail transaction");
  }
  return std::nullopt;
}

std::optional<Reply> Session::check_auth() const {
  // RFC 4954 §4: AUTH is an ESMTP extension, once per session, outside a transaction.
  if (state_ == State::Connected || !esmtp_) return make_reply(503, "5.5.1", "Send EHLO first");
  if (!login_.empty()) return make_reply(503, "5.5.1", "Already authenticated");
  if (state_ != State::Greeted) {
    return make_reply(503, "5.5.1", "AUTH not permitted during a mail transaction");
  }
  // RFC 4954 §6: a password never crosses the network in clear text.
  if (!auth_offered()) {
    return make_reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
  }
  return std::nullopt;
}

void Session::tls_started(TlsInfo info) {
  tls_ = std::move(info);
  helo_.clear();
  esmtp_ = false;
  envelope_ = {};
  smtputf8_transaction_ = false;
  xforward_ = {};
  login_.clear();  // RFC 3207 §4.2: nothing from before TLS, a login neither
  if (state_ != State::Closed) state_ = State::Connected;
}

std::string Session::protocol() const {
  if (!esmtp_) return "SMTP";
  return tls_ ? "ESMTPS" : "ESMTP";
}

void Session::apply(const Command& cmd) {
  switch (cmd.verb) {
    case Verb::Helo:
    case Verb::Ehlo:
      helo_ = cmd.argument;
      esmtp_ = cmd.verb == Verb::Ehlo;
      reset_transaction();
      xforward_ = {};
      state_ = State::Greeted;
      break;
    case Verb::Mail:
      envelope_ = {};
      envelope_.mail_from = cmd.argument;
      envelope_.null_sender = cmd.null_path;
      envelope_.mail_params = cmd.params;
      smtputf8_transaction_ = cmd.param("SMTPUTF8") != nullptr;
      binarymime_transaction_ = cmd.body_is("BINARYMIME");
      state_ = State::HaveMail;
      break;
    case Verb::Rcpt:
      envelope_.recipients.push_back({cmd.argument, cmd.params});
      state_ = State::HaveRcpt;
      break;
    case Verb::Data:
      state_ = State::InData;
      break;
    case Verb::Bdat:
      chunked_octets_ += cmd.chunk_size;
      state_ = cmd.last_chunk ? State::InData : State::InChunks;
      break;
    case Verb::Rset:
      reset_transaction();
      break;
    case Verb::Quit:
      state_ = State::Closed;
      break;
    case Verb::Xforward: {
      std::string problem;
      // A later XFORWARD command replaces an attribute an earlier one set.
      for (auto& attribute : parse_xforward(cmd.argument, problem).value_or(Attributes{})) {
        auto it = std::find_if(xforward_.attributes.begin(), xforward_.attributes.end(),
                               [&](const auto& a) { return a.first == attribute.first; });
        if (it != xforward_.attributes.end()) {
          it->second = std::move(attribute.second);
        } else {
          xforward_.attributes.push_back(std::move(attribute));
        }
      }
      break;
    }
    default:
      break;
  }
}

void Session::reset_transaction() {
  envelope_ = {};
  chunked_octets_ = 0;
  smtputf8_transaction_ = false;
  binarymime_transaction_ = false;
  if (state_ != State::Connected && state_ != State::Closed) state_ = State::Greeted;
}

Reply Session::local_reply(const Command& cmd) const {
  switch (cmd.verb) {
    case Verb::Helo:
      return make_reply(250, "", hostname_);
    case Verb::Ehlo:
      return ehlo_reply();
    case Verb::Quit:
      return make_reply(221, "2.0.0", hostname_ + " closing connection");
    case Verb::Vrfy:
      // RFC 5321 §3.5.3: we cannot verify, but the upstream may accept it.
      return make_reply(252, "2.5.0",
                        "Cannot VRFY user, but will accept message and attempt delivery");
    case Verb::Help:
      return make_reply(214, "2.0.0",
                        "stampd relays mail with DKIM signing and SPF checks; see RFC 5321");
    case Verb::Data:
      return make_reply(354, "", "End data with <CR><LF>.<CR><LF>");
    case Verb::Starttls:
      return make_reply(220, "2.0.0", "Ready to start TLS");
    case Verb::Bdat:  // a chunk that is not the last (RFC 3030 §4's example)
      return make_reply(250, "2.0.0", std::to_string(cmd.chunk_size) + " octets received");
    default:  // NOOP, RSET, XFORWARD and the rest
      return make_reply(250, "2.0.0", "Ok");
  }
}

Reply Session::ehlo_reply() const {
  std::string text = hostname_;
  text += "\nPIPELINING";
  text += "\nSIZE " + std::to_string(message_size_limit());
  // Offered only when the upstream offers them, so that nothing after us has
  // to convert (and so break the signature of) the message.
  if (caps_.eightbitmime) text += "\n8BITMIME";
  if (caps_.smtputf8) text += "\nSMTPUTF8";
  if (caps_.dsn) text += "\nDSN";
  text += "\nENHANCEDSTATUSCODES";
  // RFC 3207 §4: offered only in clear, and only where a certificate is.
  if (tls_policy_.starttls && !tls_) text += "\nSTARTTLS";
  // RFC 3030: chunks are ours to take whatever the upstream speaks (they
  // leave as BDAT when it offers CHUNKING, else as DATA). A binary body
  // cannot go as DATA, so BINARYMIME needs the upstream's too.
  text += "\nCHUNKING";
  if (binarymime_offered()) text += "\nBINARYMIME";
  if (auth_offered()) text += "\nAUTH PLAIN LOGIN";
  if (client_.trusted) text += "\nXFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE";
  return make_reply(250, "", text);
}

}  // namespace stampd::smtp
