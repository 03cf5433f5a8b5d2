// check_config_command.h: `stampd check-config -c FILE`: loads the config and
// its keys as `stampd run` would, prints the effective config, and never binds
// or serves.
#pragma once

#include <string>

namespace stampd::cmd {

// cmd_check_config validates the config at path; exit 0 (and the effective
// config on stdout) when `stampd run` would accept it, else 1 with
// `file:line: reason` on stderr.
int cmd_check_config(const std::string& path);

}  // namespace stampd::cmd
