// host_port.h: "host:port" and "[v6]:port" as written in stampd.toml.
#pragma once

#include <string>

#include "net/result.h"

namespace stampd::net {

// HostPort is an endpoint as text; host has no brackets.
struct HostPort {
  std::string host;
  std::string port;
};

// split_host_port parses "host:port" / "[::1]:port"; default_port when none given.
Result<HostPort> split_host_port(const std::string& text, const std::string& default_port = "");

}  // namespace stampd::net
