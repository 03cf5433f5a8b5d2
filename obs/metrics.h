// metrics.h: every Prometheus metric family stampd exports, declared in this
// one place (names stampd_*, counters end in _total). Label values come only
// from fixed sets or from the configuration (domains, selectors), never from
// clients. Thread-safe. The daemon makes one and hands it to whatever counts.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>

namespace stampd::obs {

class Metrics {
  // First member: the families below register in it while being initialised.
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();

 public:
  Metrics();

  // text renders the registry in the Prometheus text format (version 0.0.4).
  std::string text() const;

  // Connections and commands.
  prometheus::Counter& connections_total;
  prometheus::Gauge& connections_active;
  prometheus::Family<prometheus::Counter>& connections_refused;  // reason
  prometheus::Family<prometheus::Counter>& commands;             // verb
  prometheus::Family<prometheus::Counter>& replies;              // class: 2xx..5xx
  prometheus::Counter& bytes_received;                           // from clients
  prometheus::Counter& bytes_sent_upstream;

  // TLS from clients (STARTTLS and implicit-TLS listeners).
  prometheus::Family<prometheus::Counter>& tls_sessions;            // mode, version
  prometheus::Family<prometheus::Counter>& tls_handshake_failures;  // mode, reason

  // Messages.
  prometheus::Family<prometheus::Counter>& messages;  // outcome
  prometheus::Histogram& message_size;
  prometheus::Histogram& relay_duration;  // MAIL to the final reply, seconds

  // Upstream.
  prometheus::Histogram& upstream_connect_duration;
  prometheus::Histogram& upstream_reply_duration;
  prometheus::Family<prometheus::Counter>& upstream_errors;  // kind
  prometheus::Gauge& upstream_up;                            // 1: last contact worked
  prometheus::Gauge& upstream_connections;                   // open, pooled and in use
  prometheus::Gauge& ready;                                  // 1: /readyz says ready
  prometheus::Gauge& spool_memory;                           // bytes, set at each scrape

  // DKIM.
  prometheus::Family<prometheus::Counter>& dkim_signatures;   // domain, selector, algorithm
  prometheus::Family<prometheus::Counter>& dkim_skipped;      // reason
  prometheus::Family<prometheus::Counter>& dkim_failures;     // reason
  prometheus::Family<prometheus::Counter>& dkim_self_verify;  // result
  prometheus::Family<prometheus::Gauge>& dkim_key_age;        // domain, selector; seconds
  prometheus::Family<prometheus::Gauge>& dkim_key_dns_state;  // domain, selector, state; 0/1
  prometheus::Family<prometheus::Counter>& arc_sets;          // cv: none, pass, fail
  prometheus::Family<prometheus::Counter>& arc_not_sealed;    // reason

  // SPF and DNS.
  prometheus::Family<prometheus::Counter>& spf_results;  // result, action
  prometheus::Family<prometheus::Counter>& dns_queries;  // type, status
  prometheus::Histogram& dns_query_duration;

  // AUTH from clients.
  prometheus::Family<prometheus::Counter>& auth_attempts;  // result: ok, failed, throttled, aborted

  // Configuration and build.
  prometheus::Family<prometheus::Counter>& config_reloads;  // result: ok, failed
  prometheus::Family<prometheus::Gauge>& config_info;       // sha256
  prometheus::Family<prometheus::Gauge>& build_info;        // version

  // reply_class maps an SMTP code to its label ("2xx").
  static const char* reply_class(int code);
  // set_before_scrape runs hook before each rendering (values computed on demand).
  void set_before_scrape(std::function<void()> hook);
  // set_config_hash makes config_info{sha256=hash} the only series at 1.
  void set_config_hash(const std::string& hash);

 private:
  mutable std::mutex hook_mutex_;
  std::function<void()> before_scrape_;
  std::mutex config_mutex_;
  std::string config_hash_;
};

}  // namespace stampd::obs
