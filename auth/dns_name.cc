#include "auth/dns_name.h"

#include <algorithm>

namespace stampd::auth {
namespace {

char lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

std::string_view strip_trailing_dot(std::string_view name) noexcept {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

bool is_queryable_name(std::string_view name) noexcept {
  name = strip_trailing_dot(name);
  if (name.empty() || name.size() > kMaxDomainLength) return false;
  std::size_t label = 0;
  for (char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
    } else if (++label > kMaxLabelLength) {
      return false;
    }
  }
  return label != 0;
}

bool is_dkim_name(std::string_view name) noexcept {
  if (name.empty() || name.front() == '.' || name.back() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
}

bool is_spf_domain(std::string_view name) noexcept {
  if (!is_queryable_name(name)) return false;
  name = strip_trailing_dot(name);
  if (name.front() == '[') return false;                       // an address literal, not a domain
  if (name.find('.') == std::string_view::npos) return false;  // single label
  for (unsigned char c : name) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string truncate_domain_name(std::string_view name) {
  name = strip_trailing_dot(name);
  while (name.size() > kMaxDomainLength) {
    const auto dot = name.find('.');
    if (dot == std::string_view::npos) break;  // one huge label: nothing to remove
    name.remove_prefix(dot + 1);
  }
  return std::string(name);
}

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_same_or_subdomain(std::string_view name, std::string_view domain) noexcept {
  name = strip_trailing_dot(name);
  domain = strip_trailing_dot(domain);
  if (domain.empty()) return false;
  if (name.size() == domain.size()) return equals_ignore_case(name, domain);
  if (name.size() < domain.size() + 1) return false;
  const std::size_t cut = name.size() - domain.size();
  return name[cut - 1] == '.' && equals_ignore_case(name.substr(cut), domain);
}

std::string reverse_name(const boost::asio::ip::address& ip) {
  std::string out;
  if (ip.is_v4()) {
    const auto b = ip.to_v4().to_bytes();
    for (int i = 3; i >= 0; --i) {
      out += std::to_string(b[static_cast<std::size_t>(i)]);
      out += '.';
    }
    out += "in-addr.arpa";
    return out;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  const auto b = ip.to_v6().to_bytes();
  for (int i = 15; i >= 0; --i) {
    const unsigned v = b[static_cast<std::size_t>(i)];
    out += kHex[v & 0xf];
    out += '.';
    out += kHex[v >> 4];
    out += '.';
  }
  out += "ip6.arpa";
  return out;
}

boost::asio::ip::address normalize_client_ip(const boost::asio::ip::address& ip) {
  if (ip.is_v6() && ip.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, ip.to_v6());
  }
  return ip;
}

}  // namespace stampd::auth
