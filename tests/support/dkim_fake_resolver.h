// dkim_fake_resolver.h: a net::Resolver for DKIM tests that serves TXT
// records from a map and can be told to fail a name (SERVFAIL, timeout).
// Answers immediately; counts queries so tests can check caching.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "net/resolver.h"

namespace stampd::test {

class DkimFakeResolver final : public net::Resolver {
 public:
  // add_txt adds one TXT record (strings already joined) for name.
  void add_txt(const std::string& name, const std::string& txt);
  // fail makes queries for name answer status (e.g. ServFail, Timeout).
  void fail(const std::string& name, net::DnsStatus status);
  // clear removes name's records and injected failure.
  void clear(const std::string& name);

  boost::asio::awaitable<net::DnsAnswer> query(std::string name, net::RrType type) override;

  int queries() const noexcept { return queries_; }

 private:
  std::map<std::string, std::vector<std::string>> txt_;
  std::map<std::string, net::DnsStatus> failures_;
  int queries_ = 0;
};

}  // namespace stampd::test
