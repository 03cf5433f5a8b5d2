// keys_command.h: `stampd keys rotate`: makes the next key of a domain beside
// the current one and prints the DNS record and the [[dkim.key]] block that
// make it take over once the record is published. Edits no config file.
#pragma once

#include <string>

namespace stampd::cmd {

struct RotateArgs {
  std::string config;
  std::string domain;
  std::string key;                                // which chain, when the domain has several
  std::string selector_template = "s{yyyy}{mm}";  // {yyyy} {mm} {dd}: today (UTC)
  std::string algorithm;                          // default: as the current key
};

// cmd_keys_rotate returns 0 when the key was made, 1 on failure, 2 for bad usage.
int cmd_keys_rotate(const RotateArgs& args);

// expand_selector fills {yyyy}, {mm} and {dd} of a selector template with
// the UTC date of now (seconds since the epoch).
std::string expand_selector(const std::string& selector_template, long long now);

}  // namespace stampd::cmd
