// explain_command.h: `stampd explain`, what the proxy would do with one
// message: the stages the daemon runs (sender SPF policy, DKIM signing,
// must-sign, self-verification) run on it as they run in a session, and the
// command prints their verdicts and why, the signing rule and keys, the
// header fields signed and oversigned, and the fields that would be added.
#pragma once

#include <iosfwd>
#include <string>

namespace stampd::cmd {

struct ExplainArgs {
  std::string config_path;
  std::string ip = "127.0.0.1";
  std::string helo = "localhost";
  std::string mail_from;  // empty: the From header's address
  std::string rcpt = "postmaster@example.net";
};

// Exit statuses of cmd_explain; 2 is bad usage or a config that does not load.
inline constexpr int kExplainSigned = 0;
inline constexpr int kExplainUnsigned = 1;
inline constexpr int kExplainRefused = 3;

// cmd_explain reads the message from in and prints the explanation to out.
int cmd_explain(const ExplainArgs& args, std::istream& in, std::ostream& out);

}  // namespace stampd::cmd
