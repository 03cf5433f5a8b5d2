// dkim_commands.h: the DKIM subcommands of the command line: genkey, sign and
// verify. They print for people; the work is done by auth/.
#pragma once

#include <string>

namespace stampd::cmd {

struct GenkeyArgs {
  std::string domain;
  std::string selector;
  std::string algorithm = "rsa-2048";
  std::string dir = ".";
};
// cmd_genkey writes DIR/SELECTOR.private (0600) and DIR/SELECTOR.txt; returns the exit code.
int cmd_genkey(const GenkeyArgs& args);
// cmd_sign signs stdin as the proxy would with the keys and rules of config_path.
int cmd_sign(const std::string& config_path);
// cmd_verify checks every DKIM-Signature of stdin, against key_file when
// given, else against DNS ([dns] of config_path when given, else the system's).
int cmd_verify(const std::string& key_file, const std::string& config_path);

// to_crlf turns a message read from a file (LF or CRLF lines) into CRLF text.
std::string to_crlf(std::string_view text);

}  // namespace stampd::cmd
