// session.h: RFC 5321 sequencing and policy for one client connection. Pure:
// no I/O, no clock, no log. The connection feeds it parsed commands; check()
// says whether one may proceed, apply() records it once it has succeeded
// (for MAIL and RCPT: once the upstream has accepted it too).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "net/cidr.h"
#include "smtp/command.h"
#include "smtp/reply.h"

namespace stampd::smtp {

struct ClientInfo {
  net::IpAddress address;
  std::uint16_t port = 0;
  bool trusted = false;  // in trusted_networks: may relay
};

// UpstreamCapabilities is what the upstream offered in its EHLO reply.
struct UpstreamCapabilities {
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool pipelining = false;
  bool xforward = false;
  std::vector<std::string> xforward_attributes;  // as named in "XFORWARD NAME ADDR ..."
  bool xclient = false;
  std::vector<std::string> xclient_attributes;  // as named in "XCLIENT NAME ADDR ..."
  std::uint64_t size = 0;                       // 0: no limit announced
  bool size_offered = false;                    // SIZE was in EHLO (MAIL may carry SIZE=)
  bool starttls = false;
  bool chunking = false;    // CHUNKING: the message may go as BDAT (RFC 3030)
  bool binarymime = false;  // BINARYMIME: BODY=BINARYMIME, with BDAT (RFC 3030 §3)
  std::vector<std::string> auth_mechanisms;  // upper-cased

  bool operator==(const UpstreamCapabilities&) const = default;
};

struct Recipient {
  std::string address;
  std::vector<EsmtpParam> params;
};

struct Envelope {
  std::string mail_from;  // without <>; empty for the null sender
  bool null_sender = false;
  std::vector<EsmtpParam> mail_params;
  std::vector<Recipient> recipients;
};

// Xforward holds the original client's attributes sent by a trusted Postfix
// content_filter (XFORWARD_README): NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE.
struct Xforward {
  std::vector<std::pair<std::string, std::string>> attributes;  // name upper-cased, value as sent
  const std::string* find(std::string_view name) const;
};

// TlsPolicy is how the connection's listener does TLS (RFC 3207, RFC 8314).
struct TlsPolicy {
  bool starttls = false;  // a certificate is configured: STARTTLS is offered until TLS is on
  bool required = false;  // require_tls: MAIL needs TLS first (530 5.7.0)
};

// TlsInfo describes the connection's TLS session once the handshake is done.
struct TlsInfo {
  std::string protocol;     // "TLSv1.3"
  std::string cipher;       // "TLS_AES_256_GCM_SHA384"
  std::string server_name;  // the SNI name the client asked for; empty: none
};

// AuthPolicy says whether this connection offers AUTH (RFC 4954).
struct AuthPolicy {
  bool enabled = false;            // a users file is configured
  bool plaintext_allowed = false;  // the listener allows AUTH without TLS (loopback)
};

struct SessionLimits {
  std::size_t max_recipients = 1000;
  std::uint64_t max_message_size = 50ULL << 20;
  std::size_t max_commands = 10000;
  std::size_t max_errors = 20;
};

class Session {
 public:
  // InChunks: BDAT chunks came, the LAST one not yet (RFC 3030); InData:
  // the message is being read (DATA, or the LAST chunk) and finished.
  enum class State { Connected, Greeted, HaveMail, HaveRcpt, InChunks, InData, Closed };

  Session(SessionLimits limits, ClientInfo client, std::string hostname);

  // check returns the refusal for cmd in the current state, if any. A 421
  // refusal means: send it and close the connection.
  std::optional<Reply> check(const Command& cmd) const;
  // count notes one command line, good or bad (limits apply to both).
  void count(const Command& cmd);
  // note_refusal counts a client mistake (bad syntax or sequence); too many
  // of them end the connection.
  void note_refusal(const Reply& reply);
  // apply records a command that succeeded.
  void apply(const Command& cmd);
  // local_reply is our own answer to a command we handle without the upstream.
  Reply local_reply(const Command& cmd) const;
  // reset_transaction drops the envelope (RSET, end of DATA, upstream failure).
  void reset_transaction();
  void close() { state_ = State::Closed; }
  // set_client replaces the peer with the client a PROXY header named.
  void set_client(ClientInfo client) { client_ = std::move(client); }

  // set_tls_policy says whether STARTTLS is offered and TLS required here.
  void set_tls_policy(TlsPolicy policy) { tls_policy_ = policy; }
  // tls_started records a finished TLS handshake (after STARTTLS, or before
  // the greeting on an implicit-TLS listener). Nothing the client said in
  // clear survives it (RFC 3207 §4.2, the CVE-2011-0411 class): the session
  // starts over at Connected and needs EHLO again.
  void tls_started(TlsInfo info);
  // tls_active tells whether the connection is encrypted (AUTH may need it).
  bool tls_active() const { return tls_.has_value(); }
  // tls describes the TLS session; nullopt in clear.
  const std::optional<TlsInfo>& tls() const { return tls_; }
  // protocol is the client's protocol as RFC 3848 names it for Received and
  // XFORWARD PROTO: SMTP, ESMTP, or ESMTPS over TLS.
  std::string protocol() const;
  // set_auth_policy sets whether AUTH is offered, and whether before TLS.
  void set_auth_policy(AuthPolicy policy) { auth_ = policy; }
  // auth_offered tells whether AUTH may be used now (advertised in EHLO):
  // only over TLS unless the listener allows plaintext (RFC 4954 §4).
  bool auth_offered() const { return auth_.enabled && (tls_active() || auth_.plaintext_allowed); }
  // set_login records a successful AUTH; login() is "" until then.
  void set_login(std::string user) { login_ = std::move(user); }
  const std::string& login() const { return login_; }
  // may_relay: from trusted_networks, or authenticated.
  bool may_relay() const { return client_.trusted || !login_.empty(); }

  // ehlo_reply lists our name and the extensions we offer this client.
  Reply ehlo_reply() const;
  void set_upstream_capabilities(UpstreamCapabilities caps) { caps_ = std::move(caps); }
  const UpstreamCapabilities& upstream_capabilities() const { return caps_; }
  // message_size_limit is the smaller of ours and the upstream's SIZE.
  std::uint64_t message_size_limit() const;
  // binarymime_offered: the upstream takes BODY=BINARYMIME, which needs BDAT.
  bool binarymime_offered() const { return caps_.binarymime && caps_.chunking; }
  // binarymime tells whether this transaction's MAIL said BODY=BINARYMIME:
  // its body passes as it is, and only in BDAT chunks (RFC 3030 §3).
  bool binarymime() const { return binarymime_transaction_; }
  // chunked_octets counts the BDAT octets of this transaction so far.
  std::uint64_t chunked_octets() const { return chunked_octets_; }

  State state() const { return state_; }
  const Envelope& envelope() const { return envelope_; }
  const ClientInfo& client() const { return client_; }
  const Xforward& xforward() const { return xforward_; }
  const std::string& helo() const { return helo_; }
  bool esmtp() const { return esmtp_; }

 private:
  std::optional<Reply> check_mail(const Command& cmd) const;
  std::optional<Reply> check_rcpt(const Command& cmd) const;
  std::optional<Reply> check_xforward(const Command& cmd) const;
  std::optional<Reply> check_starttls() const;
  std::optional<Reply> check_bdat(const Command& cmd) const;
  std::optional<Reply> check_auth() const;

  SessionLimits limits_;
  ClientInfo client_;
  std::string hostname_;
  State state_ = State::Connected;
  std::string helo_;
  bool esmtp_ = false;
  bool smtputf8_transaction_ = false;
  bool binarymime_transaction_ = false;
  Envelope envelope_;
  std::uint64_t chunked_octets_ = 0;
  Xforward xforward_;
  UpstreamCapabilities caps_;
  TlsPolicy tls_policy_;
  std::optional<TlsInfo> tls_;
  AuthPolicy auth_;
  std::string login_;
  std::size_t commands_ = 0;
  std::size_t errors_ = 0;
};

const char* to_string(Session::State state);

}  // namespace stampd::smtp
