// privileges.h: drops root privileges after the listeners are bound, so that
// the network-facing process never runs as root.
#pragma once

#include <string>

#include "net/result.h"

namespace stampd::cmd {

// drop_privileges switches to user (and its primary group, no supplementary
// groups). An empty user means: stay as we are. Errors when not root and the
// user differs from the current one, or when the switch fails.
net::Status drop_privileges(const std::string& user);

}  // namespace stampd::cmd
