// spf_stage.h: the SPF policy in the pipeline, at MAIL FROM (before DATA
// costs anything): evaluates the sender against the client's address (or the
// XFORWARD ADDR of a trusted content filter) or against every egress address,
// then accepts, tags (Received-SPF), rejects or tempfails as [spf] says.
#pragma once

#include <prometheus/counter.h>

#include <array>
#include <memory>

#include "net/resolver.h"
#include "obs/metrics.h"
#include "proxy/config.h"
#include "proxy/pipeline.h"

namespace stampd::proxy {

// SpfCounters are the stampd_spf_results_total series, [verdict][action].
using SpfCounters = std::array<std::array<prometheus::Counter*, 4>, 7>;

class SpfStageFactory final : public StageFactory {
 public:
  // The stages count their results in metrics (every series resolved here, once).
  SpfStageFactory(std::shared_ptr<const Config> config, std::shared_ptr<net::Resolver> resolver,
                  obs::Metrics& metrics);
  std::vector<std::unique_ptr<Stage>> make_stages() const override;

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<net::Resolver> resolver_;
  SpfCounters counters_{};
};

// xforward_address reads a Postfix XFORWARD ADDR value ("192.0.2.1",
// "IPV6:2001:db8::1"); nullopt for "[UNAVAILABLE]" and the like.
std::optional<net::IpAddress> xforward_address(std::string_view value);

}  // namespace stampd::proxy
