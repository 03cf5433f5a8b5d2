// passwd_command.h: `stampd passwd USER`: reads a password (from the
// terminal without echo, twice, or one line of stdin) and prints the
// "user:hash" line to append to [auth] users_file. Never prints the password.
#pragma once

#include <string>

namespace stampd::cmd {

struct PasswdArgs {
  std::string user;
  std::string method = "yescrypt";  // yescrypt | sha512-crypt | bcrypt
};

// cmd_passwd prints USER:HASH on stdout; exit 1 on an empty password, a
// mismatch at the terminal or a bad user name.
int cmd_passwd(const PasswdArgs& args);

}  // namespace stampd::cmd
