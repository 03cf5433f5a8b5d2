#include "net/host_port.h"

namespace stampd::net {

Result<HostPort> split_host_port(const std::string& text, const std::string& default_port) {
  HostPort out;
  std::string rest;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos) {
      return make_error(Errc::BadInput, "'" + text + "': missing ']'");
    }
    out.host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
  } else {
    const auto colon = text.rfind(':');
    if (colon != std::string::npos && text.find(':') != colon) {
      return make_error(Errc::BadInput, "'" + text + "': write IPv6 addresses as [addr]:port");
    }
    out.host = text.substr(0, colon);
    if (colon != std::string::npos) rest = text.substr(colon);
  }
  if (rest.empty()) {
    if (default_port.empty()) return make_error(Errc::BadInput, "'" + text + "': no port given");
    out.port = default_port;
  } else if (rest.front() != ':' || rest.size() == 1) {
    return make_error(Errc::BadInput, "'" + text + "': expected host:port");
  } else {
    out.port = rest.substr(1);
    // At most five digits before converting: a longer number would overflow
    // the conversion (a config error, not a crash).
    const bool digits =
        out.port.size() <= 5 && out.port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoul(out.port) > 65535) {
      return make_error(Errc::BadInput, "'" + text + "': bad port");
    }
  }
  if (out.host.empty()) return make_error(Errc::BadInput, "'" + text + "': no host given");
  return out;
}

std::string endpoint_text(const IpAddress& address, std::uint16_t port) {
  const IpAddress ip = unmap(address);
  const std::string text = ip.to_string();
  return (ip.is_v6() ? "[" + text + "]" : text) + ":" + std::to_string(port);
}

}  // namespace stampd::net
