#include "obs/metrics.h"

#include <prometheus/text_serializer.h>

#include <mutex>
#include <sstream>

#ifndef STAMPD_VERSION
#define STAMPD_VERSION "dev"
#endif

namespace stampd::obs {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

Histogram::BucketBoundaries seconds_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

Histogram::BucketBoundaries size_buckets() {
  return {1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 52428800, 104857600};
}

}  // namespace

Metrics::Metrics()
    : connections_total(BuildCounter()
                            .Name("stampd_connections_total")
                            .Help("Client connections accepted.")
                            .Register(*registry_)
                            .Add({})),
      connections_active(BuildGauge()
                             .Name("stampd_connections_active")
                             .Help("Client connections open now.")
                             .Register(*registry_)
                             .Add({})),
      connections_refused(BuildCounter()
                              .Name("stampd_connections_refused_total")
                              .Help("Client connections refused, by reason.")
                              .Register(*registry_)),
      commands(BuildCounter()
                   .Name("stampd_smtp_commands_total")
                   .Help("SMTP commands received from clients, by verb.")
                   .Register(*registry_)),
      replies(BuildCounter()
                  .Name("stampd_smtp_replies_total")
                  .Help("SMTP replies sent to clients, by class.")
                  .Register(*registry_)),
      bytes_received(BuildCounter()
                         .Name("stampd_received_bytes_total")
                         .Help("Message bytes received from clients.")
                         .Register(*registry_)
                         .Add({})),
      bytes_sent_upstream(BuildCounter()
                              .Name("stampd_upstream_sent_bytes_total")
                              .Help("Message bytes sent to the upstream, signatures included.")
                              .Register(*registry_)
                              .Add({})),
      tls_sessions(BuildCounter()
                       .Name("stampd_tls_sessions_total")
                       .Help("Client TLS handshakes completed, by mode (starttls, implicit) and "
                             "protocol version.")
                       .Register(*registry_)),
      tls_handshake_failures(BuildCounter()
                                 .Name("stampd_tls_handshake_failures_total")
                                 .Help("Client TLS handshakes that failed, by mode and reason "
                                       "(timeout, closed, error).")
                                 .Register(*registry_)),
      messages(BuildCounter()
                   .Name("stampd_messages_total")
                   .Help("Messages by outcome: relayed, rejected, tempfailed, aborted.")
                   .Register(*registry_)),
      message_size(BuildHistogram()
                       .Name("stampd_message_size_bytes")
                       .Help("Size of messages received, in bytes.")
                       .Register(*registry_)
                       .Add({}, size_buckets())),
      relay_duration(BuildHistogram()
                         .Name("stampd_relay_duration_seconds")
                         .Help("Time from MAIL to the final reply of a message.")
                         .Register(*registry_)
                         .Add({}, seconds_buckets())),
      upstream_connect_duration(BuildHistogram()
                                    .Name("stampd_upstream_connect_duration_seconds")
                                    .Help("Time to connect to and greet the upstream.")
                                    .Register(*registry_)
                                    .Add({}, seconds_buckets())),
      upstream_reply_duration(BuildHistogram()
                                  .Name("stampd_upstream_reply_duration_seconds")
                                  .Help("Time the upstream took to answer a command.")
                                  .Register(*registry_)
                                  .Add({}, seconds_buckets())),
      upstream_errors(BuildCounter()
                          .Name("stampd_upstream_errors_total")
                          .Help("Upstream failures by kind: connect, tls, auth, timeout, dropped, "
                                "protocol, local.")
                          .Register(*registry_)),
      upstream_up(BuildGauge()
                      .Name("stampd_upstream_up")
                      .Help("1 when the last contact with the upstream worked.")
                      .Register(*registry_)
                      .Add({})),
      upstream_connections(
          BuildGauge()
              .Name("stampd_upstream_connections")
              .Help("Upstream connections open: in use by a transaction or kept for the next.")
              .Register(*registry_)
              .Add({})),
      ready(BuildGauge()
                .Name("stampd_ready")
                .Help("1 when stampd is ready for mail (what /readyz says).")
                .Register(*registry_)
                .Add({})),
      spool_memory(BuildGauge()
                       .Name("stampd_spool_memory_bytes")
                       .Help("Memory that messages being relayed hold, with the freed blocks kept "
                             "for the next ones; at most [server] spool_memory_total.")
                       .Register(*registry_)
                       .Add({})),
      dkim_signatures(BuildCounter()
                          .Name("stampd_dkim_signatures_total")
                          .Help("DKIM signatures added, by domain, selector and algorithm.")
                          .Register(*registry_)),
      dkim_skipped(BuildCounter()
                       .Name("stampd_dkim_skipped_total")
                       .Help("Messages relayed without a signature, by reason.")
                       .Register(*registry_)),
      dkim_failures(BuildCounter()
                        .Name("stampd_dkim_failures_total")
                        .Help("Messages that a rule wanted signed but could not be, by reason.")
                        .Register(*registry_)),
      dkim_self_verify(BuildCounter()
                           .Name("stampd_dkim_self_verify_total")
                           .Help("Messages whose new signatures stampd verified itself, by result.")
                           .Register(*registry_)),
      dkim_key_age(BuildGauge()
                       .Name("stampd_dkim_key_age_seconds")
                       .Help("Age of each loaded private key file, by domain and selector.")
                       .Register(*registry_)),
      dkim_key_dns_state(BuildGauge()
                             .Name("stampd_dkim_key_dns_state")
                             .Help("1 for the state of each signing key's DNS record, by domain, "
                                   "selector and state.")
                             .Register(*registry_)),
      arc_sets(BuildCounter()
                   .Name("stampd_arc_sets_total")
                   .Help("ARC sets added, by the cv= of their seal (the incoming chain's state).")
                   .Register(*registry_)),
      arc_not_sealed(
          BuildCounter()
              .Name("stampd_arc_not_sealed_total")
              .Help("Messages a rule wanted ARC-sealed that left without a set, by reason.")
              .Register(*registry_)),
      spf_results(BuildCounter()
                      .Name("stampd_spf_results_total")
                      .Help("SPF evaluations by result and the action taken.")
                      .Register(*registry_)),
      dns_queries(BuildCounter()
                      .Name("stampd_dns_queries_total")
                      .Help("DNS queries by record type and outcome.")
                      .Register(*registry_)),
      dns_query_duration(BuildHistogram()
                             .Name("stampd_dns_query_duration_seconds")
                             .Help("DNS query latency.")
                             .Register(*registry_)
                             .Add({}, seconds_buckets())),
      auth_attempts(BuildCounter()
                        .Name("stampd_auth_attempts_total")
                        .Help("AUTH attempts from clients, by result.")
                        .Register(*registry_)),
      config_reloads(BuildCounter()
                         .Name("stampd_config_reloads_total")
                         .Help("Configuration reloads by result.")
                         .Register(*registry_)),
      config_info(BuildGauge()
                      .Name("stampd_config_info")
                      .Help("The loaded configuration file's SHA-256 (value 1).")
                      .Register(*registry_)),
      build_info(BuildGauge()
                     .Name("stampd_build_info")
                     .Help("stampd's version (value 1).")
                     .Register(*registry_)) {
  build_info.Add({{"version", STAMPD_VERSION}}).Set(1);
  for (const char* outcome : {"relayed", "rejected", "tempfailed", "aborted"}) {
    messages.Add({{"outcome", outcome}});
  }
  for (const char* result : {"ok", "failed"}) config_reloads.Add({{"result", result}});
  // Series that alerts watch with increase() exist at 0 from the start: a
  // series born at 1 shows no increase, so the first failure would go unseen.
  for (const char* reason : {"key-unavailable", "signing-error", "must-sign"}) {
    dkim_failures.Add({{"reason", reason}});
  }
  for (const char* result : {"pass", "fail"}) dkim_self_verify.Add({{"result", result}});
  for (const char* cv : {"none", "pass", "fail"}) arc_sets.Add({{"cv", cv}});
  for (const char* kind : {"connect", "tls", "auth", "timeout", "dropped", "protocol", "local"}) {
    upstream_errors.Add({{"kind", kind}});
  }
  for (const char* reason : {"draining", "max_connections", "max_connections_per_ip"}) {
    connections_refused.Add({{"reason", reason}});
  }
}

void Metrics::set_before_scrape(std::function<void()> hook) {
  std::lock_guard lock(hook_mutex_);
  before_scrape_ = std::move(hook);
}

std::string Metrics::text() const {
  {
    std::lock_guard lock(hook_mutex_);
    if (before_scrape_) before_scrape_();
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

const char* Metrics::reply_class(int code) {
  switch (code / 100) {
    case 2:
      return "2xx";
    case 3:
      return "3xx";
    case 4:
      return "4xx";
    default:
      return "5xx";
  }
}

void Metrics::set_config_hash(const std::string& hash) {
  std::lock_guard lock(config_mutex_);
  if (!config_hash_.empty()) config_info.Remove(&config_info.Add({{"sha256", config_hash_}}));
  config_hash_ = hash;
  config_info.Add({{"sha256", hash}}).Set(1);
}

}  // namespace stampd::obs
