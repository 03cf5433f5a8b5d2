// fake_resolver.h: a net::Resolver that answers from zone data held in
// memory, for unit tests of SPF, DKIM key lookup and the like. It can load
// the `zonedata` of the RFC 7208 / RFC 4408 SPF test suites with the
// semantics of their reference driver (see tests/data/spf/README.md).
// No sockets; every query completes at once.
#pragma once

#include <yaml-cpp/yaml.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/resolver.h"
#include "net/result.h"

namespace stampd::test {

// FakeResolver holds, per owner name (compared case-insensitively), an
// ordered list of records and TIMEOUT markers.
class FakeResolver : public net::Resolver {
 public:
  // Record is one resource record; only the fields for its type are used.
  struct Record {
    net::RrType type = net::RrType::Txt;
    std::vector<std::string> strings;  // TXT: the character-strings, joined when answered
    boost::asio::ip::address address;  // A, AAAA
    std::uint16_t preference = 0;      // MX
    std::string target;                // MX exchange, PTR and CNAME target
    bool timeout = false;              // a query for this type times out
  };

  // add_txt adds a TXT record holding one string.
  void add_txt(std::string_view name, std::string text);
  // add_txt_strings adds one TXT record made of several strings (RFC 7208 §3.3).
  void add_txt_strings(std::string_view name, std::vector<std::string> strings);
  // add_address adds an A or AAAA record, by the family of address; throws
  // std::invalid_argument when address does not parse.
  void add_address(std::string_view name, std::string_view address);
  void add_mx(std::string_view name, std::uint16_t preference, std::string exchange);
  void add_ptr(std::string_view name, std::string target);
  // add_cname makes name an alias: queries of other types get the target's
  // records of that type (one level, as a recursive resolver would).
  void add_cname(std::string_view name, std::string target);
  // add_timeout appends a TIMEOUT marker: a query for name whose type has no
  // record listed before the marker times out; records after it are unused.
  void add_timeout(std::string_view name);
  // set_status makes every query for name answer status (e.g. ServFail,
  // NxDomain), whatever records it holds.
  void set_status(std::string_view name, net::DnsStatus status, std::string detail = {});
  // add appends any record.
  void add(std::string_view name, Record record);

  // load_spf_zonedata adds one scenario's `zonedata` mapping: SPF records
  // are served as TXT unless the owner lists a TXT entry (even "TXT: NONE"),
  // "NONE" adds nothing, a bare TIMEOUT is a marker, and absent names that
  // start with "error." time out (as in the suites' reference driver).
  net::Status load_spf_zonedata(const YAML::Node& zonedata);

  // set_asynchronous makes query() suspend and resume through the caller's
  // executor before answering, as a real resolver does (default: answer at
  // once, without suspending).
  void set_asynchronous(bool on) { asynchronous_ = on; }

  // query answers from the zone data and records the query.
  boost::asio::awaitable<net::DnsAnswer> query(std::string name, net::RrType type) override;

  // answer is the synchronous core of query(); it does not record.
  net::DnsAnswer answer(std::string_view name, net::RrType type) const;

  // queries lists every query made through query(), in order.
  const std::vector<std::pair<std::string, net::RrType>>& queries() const { return queries_; }
  void clear_queries() { queries_.clear(); }

 private:
  struct Entry {
    bool marker = false;  // TIMEOUT
    Record record;
  };
  struct Owner {
    std::vector<Entry> entries;
    bool forced = false;
    net::DnsStatus status = net::DnsStatus::Ok;
    std::string detail;
  };

  Owner& owner(std::string_view name);
  net::DnsAnswer answer_at(const std::string& key, net::RrType type, bool follow_cname) const;

  std::map<std::string, Owner> zone_;
  bool error_names_time_out_ = false;
  bool asynchronous_ = false;
  std::vector<std::pair<std::string, net::RrType>> queries_;
};

}  // namespace stampd::test
