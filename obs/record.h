// record.h: the one place that turns what happens to sessions, messages and
// the upstream into log lines, metrics and health. The data path calls these
// methods with plain values; it never logs, counts or reports health itself.
// Label values are typed (enums) or come from fixed lists given at start,
// and every series is looked up once, here, not per message.
#pragma once

#include <prometheus/counter.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "obs/health.h"
#include "obs/log.h"
#include "obs/metrics.h"

namespace stampd::obs {

// MessageOutcome is how a message ended.
enum class MessageOutcome { Relayed, Rejected, Tempfailed, Aborted };
const char* to_string(MessageOutcome outcome);

// UpstreamError says what went wrong with the upstream.
enum class UpstreamError { None, Connect, Tls, Auth, Timeout, Dropped, Protocol, Local };
const char* to_string(UpstreamError kind);

// ConnectionRefusal is why a client was turned away at accept.
enum class ConnectionRefusal { Draining, MaxConnections, MaxConnectionsPerIp, NotInProxyNetworks };

// TlsStart is how a client's TLS session began.
enum class TlsStart { Starttls, Implicit };
const char* to_string(TlsStart start);

// TlsFailure is why a client's TLS handshake failed.
enum class TlsFailure { Timeout, Closed, Error };
const char* to_string(TlsFailure failure);
// AuthResult is how an AUTH attempt ended: ok, wrong credentials, refused
// for too many failures, or given up (cancelled, malformed, client gone).
enum class AuthResult { Ok, Failed, Throttled, Aborted };
const char* to_string(AuthResult result);

// MessageSummary is the message's one summary line (event=message).
struct MessageSummary {
  std::string_view msg_id;
  MessageOutcome outcome = MessageOutcome::Rejected;
  std::string_view client;  // "127.0.0.1:52888"
  std::string_view from;    // MAIL FROM path without <>
  std::size_t recipients = 0;
  std::uint64_t size = 0;     // message bytes received
  std::string_view upstream;  // the upstream's name ("127.0.0.1:10026", "maildir:...")
  std::string_view reply;     // the final reply's summary
  std::int64_t duration_ms = 0;
  std::vector<LogField> extra;  // xforward_*, then what the stages found (dkim=, spf=, ...)
};

// Recorder is process-wide: the metrics, the health state and the series
// resolved once. Thread-safe (prometheus-cpp and Health are).
class Recorder {
 public:
  // verbs names the SMTP command series in the order of the caller's verb enum.
  Recorder(Metrics& metrics, Health& health, const std::vector<std::string_view>& verbs);

  Metrics& metrics() { return metrics_; }
  Health& health() { return health_; }

  // upstream_ok records a working contact with the upstream (a session's or
  // the probe's); connect_seconds > 0 also observes the set-up time.
  void upstream_ok(double connect_seconds = 0);
  // upstream_failed records a failure: counted by kind, health says
  // unreachable unless others_up (another server still works), one warning
  // line (the session id is empty for the probe).
  void upstream_failed(std::string_view session, std::string_view step, UpstreamError kind,
                       std::string_view upstream, std::string_view detail, bool others_up = false);
  void upstream_reply_time(double seconds) { metrics_.upstream_reply_duration.Observe(seconds); }

  // Connections at the listener.
  void connection_opened();
  void connection_closed() { metrics_.connections_active.Decrement(); }
  void connection_refused(ConnectionRefusal reason, std::string_view client);
  // accept_failed says accept(2) fails on listen (EMFILE, ENFILE, ENOBUFS);
  // failures counts those since it started (the first line says 1).
  void accept_failed(std::string_view listen, std::string_view error, std::uint64_t failures);
  // accept_resumed says accepting works again after failures over seconds.
  void accept_resumed(std::string_view listen, std::uint64_t failures, double seconds);
  void session_crashed(std::string_view session, std::string_view error);

  // tls_started counts a completed client handshake; version is OpenSSL's
  // name ("TLSv1.3"); any other than TLSv1.2 and TLSv1.3 counts as "other".
  prometheus::Counter& tls_started(TlsStart start, std::string_view version);
  prometheus::Counter& tls_failed(TlsStart start, TlsFailure failure);

  prometheus::Counter& command(std::size_t verb) { return *commands_.at(verb); }
  prometheus::Counter& reply(int code);
  prometheus::Counter& auth(AuthResult result) { return *auth_[static_cast<std::size_t>(result)]; }
  // message counts the message, then writes its summary line (so a reader
  // of the line who then scrapes /metrics finds it counted).
  void message(std::string_view session, const MessageSummary& summary);

 private:
  Metrics& metrics_;
  Health& health_;
  std::vector<prometheus::Counter*> commands_;
  std::array<prometheus::Counter*, 4> replies_{};   // 2xx..5xx
  std::array<prometheus::Counter*, 4> messages_{};  // by MessageOutcome
  std::array<prometheus::Counter*, 8> upstream_errors_{};
  std::array<prometheus::Counter*, 4> refused_{};                      // by ConnectionRefusal
  std::array<std::array<prometheus::Counter*, 3>, 2> tls_sessions_{};  // TlsStart x version
  std::array<std::array<prometheus::Counter*, 3>, 2> tls_failures_{};  // TlsStart x TlsFailure
  std::array<prometheus::Counter*, 4> auth_{};                         // by AuthResult
};

// SessionRecord is one client session's view of the Recorder: every line it
// writes carries the session id.
class SessionRecord {
 public:
  SessionRecord(Recorder& recorder, std::string session_id)
      : recorder_(recorder), session_(std::move(session_id)) {}

  Recorder& recorder() { return recorder_; }
  const std::string& session() const { return session_; }

  void connected(std::string_view client, std::string_view local, bool trusted);
  void disconnected(std::string_view reason, unsigned transactions);
  void command(std::size_t verb) { recorder_.command(verb).Increment(); }
  // tls_started logs (event=tls) and counts a completed handshake.
  void tls_started(TlsStart start, std::string_view protocol, std::string_view cipher,
                   std::string_view server_name);
  // tls_failed logs (event=tls-failed) and counts a failed handshake; the
  // session ends after it.
  void tls_failed(TlsStart start, TlsFailure failure, std::string_view detail);
  void reply(int code) { recorder_.reply(code).Increment(); }
  // auth counts an AUTH attempt and logs it (event=auth): the login name
  // and mechanism, never what the client sent as a password.
  void auth(AuthResult result, std::string_view mechanism, std::string_view user,
            std::string_view reply);
  // note writes one more line of this session (refusals, debug traces, proxy headers...).
  void note(LogLevel level, std::string_view event, std::vector<LogField> fields);
  bool debug_enabled() const { return Logger::enabled(LogLevel::Debug); }

  void upstream_ok(double connect_seconds) { recorder_.upstream_ok(connect_seconds); }
  void upstream_failed(std::string_view step, UpstreamError kind, std::string_view upstream,
                       std::string_view detail, bool others_up = false) {
    recorder_.upstream_failed(session_, step, kind, upstream, detail, others_up);
  }
  void upstream_reply_time(double seconds) { recorder_.upstream_reply_time(seconds); }
  void message(const MessageSummary& summary) { recorder_.message(session_, summary); }

 private:
  Recorder& recorder_;
  std::string session_;
};

}  // namespace stampd::obs
