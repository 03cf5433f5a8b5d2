#include "cmd/privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace stampd::cmd {

net::Status drop_privileges(const std::string& user) {
  if (user.empty()) return net::Ok{};
  std::vector<char> buffer(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(user.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || !found) {
    return net::make_error(net::Errc::NotFound, "[server] user: no user named '" + user + "'");
  }
  if (geteuid() == found->pw_uid) return net::Ok{};
  if (geteuid() != 0) {
    return net::make_error(net::Errc::PermissionDenied,
                           "[server] user: only root can switch to '" + user + "'");
  }
  // Order matters: groups first, while we still may change them.
  if (setgroups(0, nullptr) != 0 || setgid(found->pw_gid) != 0 || setuid(found->pw_uid) != 0) {
    return net::make_error(net::Errc::PermissionDenied,
                           "cannot switch to user '" + user + "': " + std::strerror(errno));
  }
  if (setuid(0) == 0) {
    return net::make_error(net::Errc::PermissionDenied,
                           "privileges could be regained after the switch");
  }
  // A crash must not dump key material from a process that read it as root.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  return net::Ok{};
}

}  // namespace stampd::cmd
