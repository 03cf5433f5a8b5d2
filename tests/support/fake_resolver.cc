#include "tests/support/fake_resolver.h"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <stdexcept>

namespace stampd::test {
namespace {

using net::DnsAnswer;
using net::DnsStatus;
using net::RrType;

std::string key_of(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string without_trailing_dot(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Empty labels and labels over 63 octets cannot be sent in a query
// (RFC 1035 §2.3.4); the suites' driver fails such lookups.
bool has_bad_label(std::string_view name) {
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return true;
      label = 0;
    } else if (++label > 63) {
      return true;
    }
  }
  return name.empty() || label == 0;
}

std::optional<RrType> type_of(const std::string& t) {
  if (t == "A") return RrType::A;
  if (t == "AAAA") return RrType::Aaaa;
  if (t == "MX") return RrType::Mx;
  if (t == "TXT" || t == "SPF") return RrType::Txt;
  if (t == "PTR") return RrType::Ptr;
  if (t == "CNAME") return RrType::Cname;
  return std::nullopt;
}

std::vector<std::string> strings_of(const YAML::Node& v) {
  std::vector<std::string> out;
  if (v.IsSequence()) {
    for (const auto& s : v) out.push_back(s.as<std::string>());
  } else {
    out.push_back(v.as<std::string>());
  }
  return out;
}

}  // namespace

FakeResolver::Owner& FakeResolver::owner(std::string_view name) { return zone_[key_of(name)]; }

void FakeResolver::add(std::string_view name, Record record) {
  owner(name).entries.push_back({false, std::move(record)});
}

void FakeResolver::add_txt(std::string_view name, std::string text) {
  add_txt_strings(name, {std::move(text)});
}

void FakeResolver::add_txt_strings(std::string_view name, std::vector<std::string> strings) {
  Record r;
  r.type = RrType::Txt;
  r.strings = std::move(strings);
  add(name, std::move(r));
}

void FakeResolver::add_address(std::string_view name, std::string_view address) {
  boost::system::error_code ec;
  Record r;
  r.address = boost::asio::ip::make_address(std::string(address), ec);
  if (ec) throw std::invalid_argument("FakeResolver: bad address " + std::string(address));
  r.type = r.address.is_v4() ? RrType::A : RrType::Aaaa;
  add(name, std::move(r));
}

void FakeResolver::add_mx(std::string_view name, std::uint16_t preference, std::string exchange) {
  Record r;
  r.type = RrType::Mx;
  r.preference = preference;
  r.target = std::move(exchange);
  add(name, std::move(r));
}

void FakeResolver::add_ptr(std::string_view name, std::string target) {
  Record r;
  r.type = RrType::Ptr;
  r.target = std::move(target);
  add(name, std::move(r));
}

void FakeResolver::add_cname(std::string_view name, std::string target) {
  Record r;
  r.type = RrType::Cname;
  r.target = std::move(target);
  add(name, std::move(r));
}

void FakeResolver::add_timeout(std::string_view name) { owner(name).entries.push_back({true, {}}); }

void FakeResolver::set_status(std::string_view name, DnsStatus status, std::string detail) {
  Owner& o = owner(name);
  o.forced = true;
  o.status = status;
  o.detail = std::move(detail);
}

net::Status FakeResolver::load_spf_zonedata(const YAML::Node& zonedata) {
  if (!zonedata || zonedata.IsNull()) return net::Ok{};
  if (!zonedata.IsMap()) return net::make_error(net::Errc::BadInput, "zonedata is not a mapping");
  error_names_time_out_ = true;
  for (const auto& kv : zonedata) {
    const std::string name = kv.first.as<std::string>();
    const YAML::Node& items = kv.second;
    if (!items.IsSequence()) {
      return net::make_error(net::Errc::BadInput, "zonedata for " + name + " is not a list");
    }
    bool explicit_txt = false;
    for (const auto& item : items) {
      if (item.IsMap() && item.begin()->first.as<std::string>() == "TXT") explicit_txt = true;
    }
    Owner& o = owner(name);  // present even if it holds nothing
    std::vector<Record> spf_as_txt;
    for (const auto& item : items) {
      if (item.IsScalar()) {
        if (item.as<std::string>() != "TIMEOUT") {
          return net::make_error(net::Errc::BadInput, "unknown marker in zonedata for " + name);
        }
        o.entries.push_back({true, {}});
        continue;
      }
      if (!item.IsMap() || item.size() != 1) {
        return net::make_error(net::Errc::BadInput, "bad record in zonedata for " + name);
      }
      const std::string type_name = item.begin()->first.as<std::string>();
      const YAML::Node value = item.begin()->second;
      const auto type = type_of(type_name);
      if (!type) return net::make_error(net::Errc::BadInput, "unknown record type " + type_name);
      if (value.IsScalar() && value.as<std::string>() == "NONE") continue;  // no record of the type
      Record r;
      r.type = *type;
      if (value.IsScalar() && value.as<std::string>() == "TIMEOUT") {
        r.timeout = true;
      } else {
        switch (*type) {
          case RrType::Txt:
            r.strings = strings_of(value);
            break;
          case RrType::A:
          case RrType::Aaaa: {
            boost::system::error_code ec;
            r.address = boost::asio::ip::make_address(value.as<std::string>(), ec);
            if (ec) return net::make_error(net::Errc::BadInput, "bad address for " + name);
            break;
          }
          case RrType::Mx:
            if (!value.IsSequence() || value.size() != 2) {
              return net::make_error(net::Errc::BadInput, "MX needs [preference, exchange]");
            }
            r.preference = value[0].as<std::uint16_t>();
            r.target = value[1].as<std::string>();
            break;
          case RrType::Ptr:
          case RrType::Cname:
            r.target = value.as<std::string>();
            break;
        }
      }
      if (type_name == "SPF") {
        // Type SPF (99) is never queried by an RFC 7208 checker; the driver
        // serves it as TXT unless the owner lists TXT itself.
        if (!explicit_txt) spf_as_txt.push_back(std::move(r));
        continue;
      }
      o.entries.push_back({false, std::move(r)});
    }
    // The copies come after everything listed, so after any TIMEOUT marker.
    for (auto& r : spf_as_txt) o.entries.push_back({false, std::move(r)});
  }
  return net::Ok{};
}

boost::asio::awaitable<DnsAnswer> FakeResolver::query(std::string name, RrType type) {
  queries_.emplace_back(name, type);
  if (asynchronous_) {
    co_await boost::asio::post(co_await boost::asio::this_coro::executor,
                               boost::asio::use_awaitable);
  }
  co_return answer(name, type);
}

DnsAnswer FakeResolver::answer(std::string_view name, RrType type) const {
  const std::string key = key_of(name);
  if (has_bad_label(key)) {
    DnsAnswer a;
    a.status = DnsStatus::ServFail;
    a.detail = "invalid name (empty label or label over 63 octets)";
    return a;
  }
  return answer_at(key, type, true);
}

DnsAnswer FakeResolver::answer_at(const std::string& key, RrType type, bool follow_cname) const {
  DnsAnswer a;
  const auto it = zone_.find(key);
  if (it == zone_.end()) {
    if (error_names_time_out_ && key.rfind("error.", 0) == 0) {
      a.status = DnsStatus::Timeout;
      a.detail = "fake timeout";
    } else {
      a.status = DnsStatus::NxDomain;
    }
    return a;
  }
  const Owner& o = it->second;
  if (o.forced) {
    a.status = o.status;
    a.detail = o.detail;
    return a;
  }
  bool matched = false;
  const Record* cname = nullptr;
  for (const Entry& e : o.entries) {
    if (e.marker) {
      if (!matched) {
        a = DnsAnswer{};
        a.status = DnsStatus::Timeout;
        a.detail = "fake timeout";
        return a;
      }
      break;
    }
    const Record& r = e.record;
    if (r.type == RrType::Cname && type != RrType::Cname && !cname) cname = &r;
    if (r.type != type) continue;
    matched = true;
    if (r.timeout) {
      a = DnsAnswer{};
      a.status = DnsStatus::Timeout;
      a.detail = "fake timeout";
      return a;
    }
    switch (type) {
      case RrType::Txt: {
        std::string joined;
        for (const auto& s : r.strings) joined += s;
        a.txt.push_back(std::move(joined));
        break;
      }
      case RrType::A:
      case RrType::Aaaa:
        a.addresses.push_back(r.address);
        break;
      case RrType::Mx:
        a.mx.push_back({r.preference, without_trailing_dot(r.target)});
        break;
      case RrType::Ptr:
      case RrType::Cname:
        a.names.push_back(without_trailing_dot(r.target));
        break;
    }
  }
  if (!matched && cname && follow_cname) {
    // One level, like the suites' driver: the alias's own records of the
    // type, or nothing.
    return answer_at(key_of(cname->target), type, false);
  }
  a.status = matched ? DnsStatus::Ok : DnsStatus::NoData;
  return a;
}

}  // namespace stampd::test
