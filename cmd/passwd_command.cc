#include "cmd/passwd_command.h"

#include <openssl/crypto.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>

#include "proxy/users_file.h"

namespace stampd::cmd {
namespace {

// read_line reads one line from fd without its line ending; nullopt at EOF
// before any byte.
std::optional<std::string> read_line(int fd) {
  std::string line;
  char c = 0;
  bool any = false;
  while (::read(fd, &c, 1) == 1) {
    any = true;
    if (c == '\n') break;
    line += c;
  }
  if (!any) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// prompt asks on the terminal with echo off and puts it back afterwards.
std::optional<std::string> prompt(const char* text) {
  std::cerr << text << std::flush;
  termios saved{};
  const bool tty = ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  auto line = read_line(STDIN_FILENO);
  if (tty) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  std::cerr << "\n";
  return line;
}

void wipe(std::string& s) { OPENSSL_cleanse(s.data(), s.size()); }

}  // namespace

int cmd_passwd(const PasswdArgs& args) {
  // The users file's rules: a name with no ':' (the separator), space or control.
  for (char c : args.user) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ':' || u <= 0x20 || u == 0x7f) {
      std::cerr << "stampd passwd: the user name must not hold ':', spaces or control characters\n";
      return 1;
    }
  }
  if (args.user.empty()) {
    std::cerr << "stampd passwd: empty user name\n";
    return 1;
  }
  std::optional<std::string> password;
  if (::isatty(STDIN_FILENO)) {
    password = prompt("Password: ");
    auto again = prompt("Again: ");
    if (!password || !again || *password != *again) {
      std::cerr << "stampd passwd: the passwords differ\n";
      if (password) wipe(*password);
      if (again) wipe(*again);
      return 1;
    }
    wipe(*again);
  } else {
    password = read_line(STDIN_FILENO);
  }
  if (!password || password->empty()) {
    std::cerr << "stampd passwd: empty password\n";
    return 1;
  }
  const std::string prefix =
      args.method == "sha512-crypt" ? "$6$" : (args.method == "bcrypt" ? "$2b$" : "$y$");
  const std::string hash = proxy::hash_password(*password, prefix);
  wipe(*password);
  if (hash.empty()) {
    std::cerr << "stampd passwd: libcrypt could not hash with " << args.method << "\n";
    return 1;
  }
  std::cout << args.user << ":" << hash << "\n";
  return 0;
}

}  // namespace stampd::cmd
