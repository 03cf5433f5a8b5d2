// unbound_resolver.h: the production net::Resolver, on libunbound driven by
// Asio: queries go out with ub_resolve_async; libunbound's one worker thread
// resolves them (with its cache); answers are read when ub_fd() turns
// readable. No thread per query, no blocking call on an I/O thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "net/resolver.h"
#include "net/result.h"

namespace stampd::net {

// UnboundOptions configures an UnboundResolver (the [dns] config section).
struct UnboundOptions {
  // forwarders are "127.0.0.1:5353", "[::1]:53" or a bare address (port 53),
  // asked in turn by libunbound. Empty: the name servers of resolv_conf.
  std::vector<std::string> forwarders;
  // resolv_conf is read when forwarders is empty; empty means the system's
  // /etc/resolv.conf.
  std::string resolv_conf;
  // timeout bounds each query; then it is cancelled and answers Timeout.
  std::chrono::milliseconds timeout{5000};
  // trust_anchor_file turns on DNSSEC validation with these anchors (a
  // zone-file of DS or DNSKEY records, e.g. the root key); answers then carry
  // `secure`, and bogus ones become ServFail with the reason.
  std::string trust_anchor_file;
};

// UnboundResolver answers queries through libunbound. query() may be called
// concurrently from coroutines on any executor (any thread, any io_context);
// each caller resumes on its own executor. Destroying it (or shutdown())
// completes every outstanding query with ServFail.
class UnboundResolver final : public Resolver {
 public:
  // create builds a resolver whose answer-reading loop runs on executor.
  static Result<std::unique_ptr<UnboundResolver>> create(boost::asio::any_io_executor executor,
                                                         const UnboundOptions& options);
  ~UnboundResolver() override;
  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  // query looks up name/type; never throws for DNS trouble: NXDOMAIN, no
  // data, SERVFAIL (also DNSSEC bogus) and timeout come back as the status.
  boost::asio::awaitable<DnsAnswer> query(std::string name, RrType type) override;

  // shutdown stops the resolver: outstanding queries complete with ServFail
  // ("resolver shut down"), later ones at once. Idempotent; thread-safe.
  void shutdown();

  struct Impl;

 private:
  explicit UnboundResolver(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// unbound_forwarder converts "host:port", "[v6]:port", "v4" or "v6" to
// libunbound's "address@port" form; BadInput when it is not an IP address.
Result<std::string> unbound_forwarder(std::string_view forwarder);

}  // namespace stampd::net
