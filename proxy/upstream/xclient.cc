#include "proxy/upstream/xclient.h"

#include <algorithm>
#include <utility>

#include "net/cidr.h"

namespace stampd::proxy {

std::string xtext(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < '!' || u > '~' || c == '+' || c == '=') {
      out += '+';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

std::string xtext_decode(std::string_view value) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    const int hi = i + 2 < value.size() ? hex(value[i + 1]) : -1;
    const int lo = i + 2 < value.size() ? hex(value[i + 2]) : -1;
    if (value[i] == '+' && hi >= 0 && lo >= 0) {
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += value[i];
    }
  }
  return out;
}

XclientIdentity xclient_identity(const smtp::Session& session) {
  XclientIdentity id;
  const auto& forwarded = session.xforward();
  if (const std::string* addr = forwarded.find("ADDR")) {
    // Behind a content_filter the real client is the one Postfix named;
    // XFORWARD values are xtext already (XFORWARD_README), as XCLIENT's are.
    id.addr = *addr;
    auto copy = [&](std::string_view name, std::string& to) {
      if (const std::string* v = forwarded.find(name)) to = *v;
    };
    copy("PORT", id.port);
    copy("NAME", id.name);
    copy("HELO", id.helo);
    copy("PROTO", id.proto);
  } else {
    const auto ip = net::unmap(session.client().address);
    id.addr = ip.is_v6() ? "IPV6:" + ip.to_string() : ip.to_string();
    id.port = std::to_string(session.client().port);
    id.helo = xtext(session.helo());
    id.proto = session.esmtp() ? "ESMTP" : "SMTP";
  }
  // stampd does no reverse lookup; Postfix then logs the name as "unknown".
  if (id.name.empty()) id.name = "[UNAVAILABLE]";
  // The client's SASL login, so Postfix's policies and logs see who sent.
  if (!session.login().empty()) id.login = xtext(session.login());
  return id;
}

std::string xclient_line(const XclientIdentity& identity, const std::vector<std::string>& offered) {
  const std::pair<const char*, const std::string*> attributes[] = {
      {"ADDR", &identity.addr}, {"PORT", &identity.port},   {"NAME", &identity.name},
      {"HELO", &identity.helo}, {"PROTO", &identity.proto}, {"LOGIN", &identity.login},
  };
  std::string line = "XCLIENT";
  bool any = false;
  for (const auto& [name, value] : attributes) {
    if (value->empty() || std::find(offered.begin(), offered.end(), name) == offered.end())
      continue;
    line.append(" ").append(name).append("=").append(*value);
    any = true;
  }
  return any ? line : std::string{};
}

}  // namespace stampd::proxy
