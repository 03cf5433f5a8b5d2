#include "net/resolver.h"

namespace stampd::net {

const char* to_string(DnsStatus status) noexcept {
  switch (status) {
    case DnsStatus::Ok:
      return "ok";
    case DnsStatus::NxDomain:
      return "nxdomain";
    case DnsStatus::NoData:
      return "nodata";
    case DnsStatus::ServFail:
      return "servfail";
    case DnsStatus::Timeout:
      return "timeout";
  }
  return "unknown";
}

const char* to_string(RrType type) noexcept {
  switch (type) {
    case RrType::A:
      return "A";
    case RrType::Cname:
      return "CNAME";
    case RrType::Ptr:
      return "PTR";
    case RrType::Mx:
      return "MX";
    case RrType::Txt:
      return "TXT";
    case RrType::Aaaa:
      return "AAAA";
  }
  return "?";
}

}  // namespace stampd::net
