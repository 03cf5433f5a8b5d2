// resolver.h: the DNS interface that auth/ (SPF, DKIM key lookup) is written
// against. Implementations: UnboundResolver (net/unbound_resolver.h) and the
// fake resolver in tests/support. No sockets appear in this interface.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace stampd::net {

enum class RrType : std::uint16_t { A = 1, Cname = 5, Ptr = 12, Mx = 15, Txt = 16, Aaaa = 28 };

// DnsStatus tells apart the outcomes that SPF and DKIM treat differently.
enum class DnsStatus {
  Ok,        // records of the asked type are in the answer
  NxDomain,  // the name does not exist (RCODE 3)
  NoData,    // the name exists but holds no record of that type
  ServFail,  // the server failed, refused, or DNSSEC validation failed
  Timeout,   // no answer within the per-query timeout
};

const char* to_string(DnsStatus status) noexcept;
const char* to_string(RrType type) noexcept;

struct MxRecord {
  std::uint16_t preference = 0;
  std::string exchange;  // without the trailing dot
};

// DnsAnswer is one query's outcome. Only the vector matching the asked type
// is filled.
struct DnsAnswer {
  DnsStatus status = DnsStatus::ServFail;
  std::vector<std::string> txt;                     // one entry per TXT record, its strings joined
  std::vector<boost::asio::ip::address> addresses;  // A or AAAA
  std::vector<MxRecord> mx;
  std::vector<std::string> names;  // PTR targets, without the trailing dot
  bool secure = false;             // DNSSEC-validated (only when validation is on)
  std::string detail;              // why, for logs and traces, when not Ok

  bool ok() const noexcept { return status == DnsStatus::Ok; }
};

// Resolver answers DNS queries asynchronously; implementations never block
// the calling thread.
class Resolver {
 public:
  virtual ~Resolver() = default;
  // query looks up name (no trailing dot needed) for one record type.
  virtual boost::asio::awaitable<DnsAnswer> query(std::string name, RrType type) = 0;
};

}  // namespace stampd::net
