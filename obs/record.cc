#include "obs/record.h"

#include <algorithm>
#include <cstdio>
#include <string>

namespace stampd::obs {

namespace {

// The metric's label and the log's reason for each refusal.
constexpr std::array<std::pair<const char*, const char*>, 4> kRefusals{{
    {"draining", "draining"},
    {"max_connections", "max-connections"},
    {"max_connections_per_ip", "max-connections-per-ip"},
    {"not_in_proxy_networks", "not-in-proxy-networks"},
}};

constexpr std::array<const char*, 3> kTlsVersions{"TLSv1.2", "TLSv1.3", "other"};

}  // namespace

const char* to_string(TlsStart start) {
  return start == TlsStart::Starttls ? "starttls" : "implicit";
}

const char* to_string(TlsFailure failure) {
  switch (failure) {
    case TlsFailure::Timeout:
      return "timeout";
    case TlsFailure::Closed:
      return "closed";
    case TlsFailure::Error:
      return "error";
  }
  return "?";
}

const char* to_string(MessageOutcome outcome) {
  switch (outcome) {
    case MessageOutcome::Relayed:
      return "relayed";
    case MessageOutcome::Rejected:
      return "rejected";
    case MessageOutcome::Tempfailed:
      return "tempfailed";
    case MessageOutcome::Aborted:
      return "aborted";
  }
  return "?";
}

const char* to_string(UpstreamError kind) {
  switch (kind) {
    case UpstreamError::None:
      return "none";
    case UpstreamError::Connect:
      return "connect";
    case UpstreamError::Tls:
      return "tls";
    case UpstreamError::Auth:
      return "auth";
    case UpstreamError::Timeout:
      return "timeout";
    case UpstreamError::Dropped:
      return "dropped";
    case UpstreamError::Protocol:
      return "protocol";
    case UpstreamError::Local:
      return "local";
  }
  return "?";
}

const char* to_string(AuthResult result) {
  switch (result) {
    case AuthResult::Ok:
      return "ok";
    case AuthResult::Failed:
      return "failed";
    case AuthResult::Throttled:
      return "throttled";
    case AuthResult::Aborted:
      return "aborted";
  }
  return "?";
}

Recorder::Recorder(Metrics& metrics, Health& health, const std::vector<std::string_view>& verbs)
    : metrics_(metrics), health_(health) {
  // Every series exists from the start, at 0: a rate() over a series that
  // appears with its first event misses that event.
  for (const auto verb : verbs)
    commands_.push_back(&metrics_.commands.Add({{"verb", std::string(verb)}}));
  for (int c = 2; c <= 5; ++c) {
    replies_[c - 2] = &metrics_.replies.Add({{"class", Metrics::reply_class(c * 100)}});
  }
  for (auto o : {MessageOutcome::Relayed, MessageOutcome::Rejected, MessageOutcome::Tempfailed,
                 MessageOutcome::Aborted}) {
    messages_[static_cast<std::size_t>(o)] = &metrics_.messages.Add({{"outcome", to_string(o)}});
  }
  for (std::size_t i = 0; i < refused_.size(); ++i) {
    refused_[i] = &metrics_.connections_refused.Add({{"reason", kRefusals[i].first}});
  }
  for (auto start : {TlsStart::Starttls, TlsStart::Implicit}) {
    const auto s = static_cast<std::size_t>(start);
    for (std::size_t v = 0; v < kTlsVersions.size(); ++v) {
      tls_sessions_[s][v] =
          &metrics_.tls_sessions.Add({{"mode", to_string(start)}, {"version", kTlsVersions[v]}});
    }
    for (auto failure : {TlsFailure::Timeout, TlsFailure::Closed, TlsFailure::Error}) {
      tls_failures_[s][static_cast<std::size_t>(failure)] = &metrics_.tls_handshake_failures.Add(
          {{"mode", to_string(start)}, {"reason", to_string(failure)}});
    }
  }
  for (auto r : {AuthResult::Ok, AuthResult::Failed, AuthResult::Throttled, AuthResult::Aborted}) {
    auth_[static_cast<std::size_t>(r)] = &metrics_.auth_attempts.Add({{"result", to_string(r)}});
  }
  for (std::size_t k = 1; k < upstream_errors_.size(); ++k) {
    upstream_errors_[k] =
        &metrics_.upstream_errors.Add({{"kind", to_string(static_cast<UpstreamError>(k))}});
  }
}

void Recorder::connection_opened() {
  metrics_.connections_total.Increment();
  metrics_.connections_active.Increment();
}

void Recorder::connection_refused(ConnectionRefusal reason, std::string_view client) {
  const auto i = static_cast<std::size_t>(reason);
  refused_[i]->Increment();
  // A drain refuses everyone; that is said once, by the daemon.
  if (reason == ConnectionRefusal::Draining) return;
  Logger::write(LogLevel::Warning, "connection-refused",
                {{"client", client}, {"reason", kRefusals[i].second}});
}

void Recorder::accept_failed(std::string_view listen, std::string_view error,
                             std::uint64_t failures) {
  Logger::write(LogLevel::Error, "accept-failed",
                {{"listen", listen}, {"error", error}, {"failures", std::to_string(failures)}});
}

void Recorder::accept_resumed(std::string_view listen, std::uint64_t failures, double seconds) {
  char took[32];
  std::snprintf(took, sizeof took, "%.1f", seconds);
  Logger::write(LogLevel::Warning, "accept-resumed",
                {{"listen", listen}, {"failures", std::to_string(failures)}, {"seconds", took}});
}

void Recorder::session_crashed(std::string_view session, std::string_view error) {
  Logger::write(LogLevel::Error, "session-crashed", {{"session", session}, {"error", error}});
}

prometheus::Counter& Recorder::tls_started(TlsStart start, std::string_view version) {
  std::size_t v = 0;
  while (v + 1 < kTlsVersions.size() && version != kTlsVersions[v]) ++v;
  return *tls_sessions_[static_cast<std::size_t>(start)][v];
}

prometheus::Counter& Recorder::tls_failed(TlsStart start, TlsFailure failure) {
  return *tls_failures_[static_cast<std::size_t>(start)][static_cast<std::size_t>(failure)];
}

prometheus::Counter& Recorder::reply(int code) {
  return *replies_[std::clamp(code / 100, 2, 5) - 2];
}

void Recorder::upstream_ok(double connect_seconds) {
  health_.upstream_result(true);
  metrics_.upstream_up.Set(1);
  if (connect_seconds > 0) metrics_.upstream_connect_duration.Observe(connect_seconds);
}

void Recorder::upstream_failed(std::string_view session, std::string_view step, UpstreamError kind,
                               std::string_view upstream, std::string_view detail, bool others_up) {
  const auto k = static_cast<std::size_t>(kind);
  if (k > 0 && k < upstream_errors_.size()) upstream_errors_[k]->Increment();
  health_.upstream_result(others_up);
  metrics_.upstream_up.Set(others_up ? 1 : 0);
  if (session.empty()) {
    Logger::write(LogLevel::Warning, "upstream-check-failed",
                  {{"upstream", upstream}, {"error", detail}});
  } else {
    Logger::write(
        LogLevel::Warning, "upstream-error",
        {{"session", session}, {"step", step}, {"kind", to_string(kind)}, {"error", detail}});
  }
}

void Recorder::message(std::string_view session, const MessageSummary& m) {
  messages_[static_cast<std::size_t>(m.outcome)]->Increment();
  metrics_.message_size.Observe(static_cast<double>(m.size));
  metrics_.bytes_received.Increment(static_cast<double>(m.size));
  metrics_.relay_duration.Observe(static_cast<double>(m.duration_ms) / 1000.0);
  const std::string from = "<" + std::string(m.from) + ">";
  const std::string rcpts = std::to_string(m.recipients);
  const std::string size = std::to_string(m.size);
  const std::string duration = std::to_string(m.duration_ms);
  std::vector<LogField> fields{
      {"session", session},     {"msg", m.msg_id},        {"outcome", to_string(m.outcome)},
      {"client", m.client},     {"from", from},           {"rcpts", rcpts},
      {"size", size},           {"upstream", m.upstream}, {"reply", m.reply},
      {"duration_ms", duration}};
  fields.insert(fields.end(), m.extra.begin(), m.extra.end());
  Logger::write(LogLevel::Info, "message", fields);
}

void SessionRecord::connected(std::string_view client, std::string_view local, bool trusted) {
  Logger::write(LogLevel::Info, "connect",
                {{"session", session_},
                 {"client", client},
                 {"local", local},
                 {"trusted", trusted ? "yes" : "no"}});
}

void SessionRecord::disconnected(std::string_view reason, unsigned transactions) {
  const std::string n = std::to_string(transactions);
  Logger::write(LogLevel::Info, "disconnect",
                {{"session", session_}, {"reason", reason}, {"transactions", n}});
}

void SessionRecord::tls_started(TlsStart start, std::string_view protocol, std::string_view cipher,
                                std::string_view server_name) {
  recorder_.tls_started(start, protocol).Increment();
  Logger::write(LogLevel::Info, "tls",
                {{"session", session_},
                 {"mode", to_string(start)},
                 {"protocol", protocol},
                 {"cipher", cipher},
                 {"sni", server_name}});
}

void SessionRecord::tls_failed(TlsStart start, TlsFailure failure, std::string_view detail) {
  recorder_.tls_failed(start, failure).Increment();
  Logger::write(LogLevel::Info, "tls-failed",
                {{"session", session_},
                 {"mode", to_string(start)},
                 {"reason", to_string(failure)},
                 {"error", detail}});
}

void SessionRecord::auth(AuthResult result, std::string_view mechanism, std::string_view user,
                         std::string_view reply) {
  recorder_.auth(result).Increment();
  note(result == AuthResult::Ok ? LogLevel::Info : LogLevel::Warning, "auth",
       {{"result", to_string(result)}, {"mechanism", mechanism}, {"user", user}, {"reply", reply}});
}

void SessionRecord::note(LogLevel level, std::string_view event, std::vector<LogField> fields) {
  if (!Logger::enabled(level)) return;
  fields.insert(fields.begin(), {"session", session_});
  Logger::write(level, event, fields);
}

}  // namespace stampd::obs
