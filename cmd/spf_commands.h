// spf_commands.h: the DNS-facing subcommands: `stampd spf` (evaluate SPF for
// one sender and show why) and `stampd dns-check` (is what we publish in the
// DNS what we sign and send with). They print for people; auth/ does the work.
#pragma once

#include <string>

namespace stampd::cmd {

struct SpfArgs {
  std::string ip;
  std::string mail_from;
  std::string helo;
  std::string config_path;  // optional: its [dns] section
};
// cmd_spf prints result, explanation and trace; exit 0 for pass, 1 otherwise, 2 for bad usage.
int cmd_spf(const SpfArgs& args);
// cmd_dns_check checks every configured DKIM key and the SPF of every signing
// domain for the egress IPs; exit 1 when anything is wrong.
int cmd_dns_check(const std::string& config_path);

}  // namespace stampd::cmd
