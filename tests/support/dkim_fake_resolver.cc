#include "tests/support/dkim_fake_resolver.h"

#include "auth/mail_address.h"

namespace stampd::test {

void DkimFakeResolver::add_txt(const std::string& name, const std::string& txt) {
  txt_[auth::ascii_lower(name)].push_back(txt);
}

void DkimFakeResolver::fail(const std::string& name, net::DnsStatus status) {
  failures_[auth::ascii_lower(name)] = status;
}

void DkimFakeResolver::clear(const std::string& name) {
  txt_.erase(auth::ascii_lower(name));
  failures_.erase(auth::ascii_lower(name));
}

boost::asio::awaitable<net::DnsAnswer> DkimFakeResolver::query(std::string name, net::RrType type) {
  ++queries_;
  std::string key = auth::ascii_lower(name);
  if (!key.empty() && key.back() == '.') key.pop_back();
  net::DnsAnswer answer;
  if (const auto f = failures_.find(key); f != failures_.end()) {
    answer.status = f->second;
    answer.detail = "injected by DkimFakeResolver";
    co_return answer;
  }
  const auto it = txt_.find(key);
  if (it == txt_.end()) {
    answer.status = net::DnsStatus::NxDomain;
  } else if (type != net::RrType::Txt) {
    answer.status = net::DnsStatus::NoData;
  } else {
    answer.status = net::DnsStatus::Ok;
    answer.txt = it->second;
  }
  co_return answer;
}

}  // namespace stampd::test
