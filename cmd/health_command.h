// health_command.h: `stampd health -c FILE [--ready]`, the probe a container
// HEALTHCHECK or a script runs: asks the running daemon's /healthz (or
// /readyz) where the config's [metrics] listen says. Reads the config only;
// never binds, never touches keys or the upstream.
#pragma once

#include <string>

#include "net/host_port.h"
#include "net/result.h"

namespace stampd::cmd {

// probe_address returns where to ask for a [metrics] listen value: a
// wildcard address (0.0.0.0, ::) is asked on loopback; an empty value or
// port 0 leaves nothing to ask and is an error.
net::Result<net::HostPort> probe_address(const std::string& listen);

// HealthReply is what an endpoint answered: the HTTP status and the first
// line of the body ("ready", "not ready: draining").
struct HealthReply {
  int status = 0;
  std::string text;
};

// parse_health_reply reads an HTTP/1.x response; Protocol error when it is not one.
net::Result<HealthReply> parse_health_reply(const std::string& response);

// cmd_health asks http://ADDRESS/healthz (/readyz when ready) of the config at
// config_path and prints one line; exit 0 on 200, 1 otherwise (no config, no
// answer, not 200), 2 for bad usage.
int cmd_health(const std::string& config_path, bool ready);

}  // namespace stampd::cmd
