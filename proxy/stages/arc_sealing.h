// arc_sealing.h: the DKIM stage's ARC step (RFC 8617) for a rule with
// arc_seal: fetch the incoming chain's keys through the resolver, validate
// the chain, put the new ARC set on top of the message. The set itself is
// made by auth::MessageSealer; this file adds DNS, log fields and metrics.
#pragma once

#include <prometheus/counter.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "auth/arc/message_sealer.h"
#include "auth/dkim/keyring.h"
#include "net/resolver.h"
#include "obs/metrics.h"
#include "proxy/pipeline.h"

namespace stampd::proxy {

// ArcSettings is [arc] with the resolver the chain's keys come through.
struct ArcSettings {
  std::string authserv_id;
  int max_sets = auth::kDefaultMaxArcSets;
  std::shared_ptr<net::Resolver> resolver;  // null: every key lookup is a temporary failure
};

// ArcCounters are the ARC series, resolved once per configuration.
struct ArcCounters {
  std::array<prometheus::Counter*, 3> sets{};    // by auth::ChainValidation
  prometheus::Counter* chain_failed = nullptr;   // newest seal cv=fail: no set (§5.1.1)
  prometheus::Counter* chain_full = nullptr;     // instance 50 taken
  prometheus::Counter* dns_error = nullptr;      // a key of the chain could not be fetched now
  prometheus::Counter* signing_error = nullptr;  // the set could not be made
  static ArcCounters make(obs::Metrics& metrics);
};

// seal_arc validates the chain sealer has seen and adds the set made with
// key, over the body whose relaxed hash is body_hash, on top of tx.prepend_fields (which must hold
// what goes above the incoming header: our Received-SPF and DKIM signatures). A message that cannot
// be sealed (a key lookup failed for now, or signing failed) follows rule's on_error: a Verdict to
// refuse it when fail-closed, else it leaves without a set; a chain that may take no set leaves as
// it came.
boost::asio::awaitable<std::optional<Verdict>> seal_arc(
    Transaction& tx, auth::MessageSealer& sealer, auth::Sha256Digest body_hash,
    const auth::SigningKey& key, const auth::SigningRule& rule, const ArcSettings& settings,
    const ArcCounters& counters, auth::ArcSealOptions options);

}  // namespace stampd::proxy
