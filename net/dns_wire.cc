#include "net/dns_wire.h"

#include <boost/asio/ip/address.hpp>

namespace stampd::net {
namespace {

Error malformed(const char* what) {
  return make_error(Errc::Protocol, std::string("malformed ") + what);
}

}  // namespace

Result<std::string> decode_name(std::span<const std::uint8_t>& in) {
  std::string out;
  std::size_t total = 0;
  while (true) {
    if (in.empty()) return malformed("name (truncated)");
    const std::uint8_t len = in[0];
    in = in.subspan(1);
    if (len == 0) break;
    if (len > 63) return malformed("name (compressed or bad label length)");
    if (in.size() < len) return malformed("name (truncated label)");
    total += len + 1u;
    if (total > 255) return malformed("name (too long)");
    if (!out.empty()) out += '.';
    out.append(reinterpret_cast<const char*>(in.data()), len);
    in = in.subspan(len);
  }
  return out;
}

Status append_rdata(DnsAnswer& answer, RrType type, std::span<const std::uint8_t> rdata) {
  switch (type) {
    case RrType::Txt: {
      // RFC 1035 §3.3.14: one or more <character-string>s; RFC 7208 §3.3 and
      // RFC 6376 §3.6.2.2 join them without a separator.
      std::string joined;
      while (!rdata.empty()) {
        const std::size_t len = rdata[0];
        if (rdata.size() < 1 + len) return malformed("TXT string");
        joined.append(reinterpret_cast<const char*>(rdata.data() + 1), len);
        rdata = rdata.subspan(1 + len);
      }
      answer.txt.push_back(std::move(joined));
      return Ok{};
    }
    case RrType::A: {
      if (rdata.size() != 4) return malformed("A record");
      boost::asio::ip::address_v4::bytes_type b;
      std::copy(rdata.begin(), rdata.end(), b.begin());
      answer.addresses.emplace_back(boost::asio::ip::address_v4(b));
      return Ok{};
    }
    case RrType::Aaaa: {
      if (rdata.size() != 16) return malformed("AAAA record");
      boost::asio::ip::address_v6::bytes_type b;
      std::copy(rdata.begin(), rdata.end(), b.begin());
      answer.addresses.emplace_back(boost::asio::ip::address_v6(b));
      return Ok{};
    }
    case RrType::Mx: {
      if (rdata.size() < 3) return malformed("MX record");
      MxRecord mx;
      mx.preference = static_cast<std::uint16_t>((rdata[0] << 8) | rdata[1]);
      rdata = rdata.subspan(2);
      auto name = decode_name(rdata);
      if (!name.ok()) return std::move(name).error();
      mx.exchange = std::move(name).value();
      answer.mx.push_back(std::move(mx));
      return Ok{};
    }
    case RrType::Ptr:
    case RrType::Cname: {
      auto name = decode_name(rdata);
      if (!name.ok()) return std::move(name).error();
      answer.names.push_back(std::move(name).value());
      return Ok{};
    }
  }
  return make_error(Errc::Unsupported, "record type");
}

std::string presentation_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '_' || c == '.';
    if (plain) {
      out += c;
    } else {
      out += '\\';
      out += static_cast<char>('0' + u / 100);
      out += static_cast<char>('0' + (u / 10) % 10);
      out += static_cast<char>('0' + u % 10);
    }
  }
  return out;
}

}  // namespace stampd::net
