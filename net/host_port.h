// host_port.h: "host:port" and "[v6]:port" as written in stampd.toml.
#pragma once

#include <cstdint>
#include <string>

#include "net/cidr.h"
#include "net/result.h"

namespace stampd::net {

// HostPort is an endpoint as text; host has no brackets.
struct HostPort {
  std::string host;
  std::string port;
};

// split_host_port parses "host:port" / "[::1]:port"; default_port when none given.
Result<HostPort> split_host_port(const std::string& text, const std::string& default_port = "");

// endpoint_text writes an address (unmapped) and a port the way
// split_host_port reads them: "127.0.0.1:25", "[::1]:25".
std::string endpoint_text(const IpAddress& address, std::uint16_t port);

}  // namespace stampd::net
