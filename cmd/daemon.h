// daemon.h: `stampd run`: the daemon's life. Loads the config and keys,
// binds, drops privileges, serves until SIGTERM/SIGINT (then drains), reloads
// on SIGHUP. Argument parsing is cli.cc's.
#pragma once

#include <string>

namespace stampd::cmd {

// run_daemon serves with the config at config_path until told to stop;
// returns the process's exit status (0 after a drain, 1 when it cannot start).
int run_daemon(const std::string& config_path);

}  // namespace stampd::cmd
