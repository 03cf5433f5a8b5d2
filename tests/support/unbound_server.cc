#include "tests/support/unbound_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/dns_probe.h"

namespace stampd::test {
namespace {

constexpr const char* kReadyName = "ready.stampd-probe.test.";

int bound_port(int type, int port) {
  const int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int result = -1;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    result = ntohs(a.sin_port);
  }
  ::close(fd);
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exited(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

int free_loopback_port() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int port = bound_port(SOCK_DGRAM, 0);
    if (port > 0 && bound_port(SOCK_STREAM, port) == port) return port;
  }
  return -1;
}

std::optional<std::string> UnboundServer::find_binary() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream s(path);
    for (std::string d; std::getline(s, d, ':');) dirs.push_back(d);
  }
  // The daemon lives in sbin, often not on a user's PATH.
  dirs.insert(dirs.end(), {"/usr/sbin", "/usr/local/sbin", "/sbin"});
  for (const auto& d : dirs) {
    const std::string p = d + "/unbound";
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

std::unique_ptr<UnboundServer> UnboundServer::start(const Options& options, std::string* error) {
  const auto binary = find_binary();
  if (!binary) {
    *error = "unbound is not installed";
    return nullptr;
  }
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "stampd-unbound-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) {
    *error = "mkdtemp failed";
    return nullptr;
  }
  std::unique_ptr<UnboundServer> server(new UnboundServer());
  server->dir_ = dir_template;

  for (int attempt = 0; attempt < 3; ++attempt) {
    server->port_ = free_loopback_port();
    const std::string conf = server->dir_ + "/unbound.conf";
    {
      std::ofstream out(conf);
      out << "server:\n"
          << "  interface: 127.0.0.1@" << server->port_ << "\n"
          << "  port: " << server->port_ << "\n"
          << "  do-ip6: no\n"
          << "  do-daemonize: no\n"
          << "  username: \"\"\n"
          << "  chroot: \"\"\n"
          << "  directory: \"" << server->dir_ << "\"\n"
          << "  pidfile: \"" << server->dir_ << "/unbound.pid\"\n"
          << "  use-syslog: no\n"
          << "  logfile: \"\"\n"
          << "  verbosity: 0\n"
          << "  num-threads: 1\n"
          << "  so-reuseport: no\n"
          << "  module-config: \"iterator\"\n"
          << "  access-control: 127.0.0.0/8 allow\n"
          << "  local-zone: \"stampd-probe.test.\" static\n"
          << "  local-data: \"" << kReadyName << " A 127.0.0.1\"\n";
      for (const auto& z : options.local_zones) out << "  local-zone: " << z << "\n";
      for (const auto& d : options.local_data) out << "  local-data: '" << d << "'\n";
      for (const auto& l : options.extra_server_lines) out << "  " << l << "\n";
      out << "remote-control:\n  control-enable: no\n";
    }
    const std::string log = server->dir_ + "/unbound.log";
    std::vector<std::string> args = {*binary, "-d", "-c", conf};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      *error = "cannot fork";
      return nullptr;
    }
    if (pid == 0) {
      // The child dies with us even if we crash, so no server outlives a
      // test. Only async-signal-safe calls between fork and exec.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    server->pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    bool died = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (exited(pid)) {
        died = true;
        break;
      }
      if (udp_dns_rcode(server->port_, kReadyName, 1, std::chrono::milliseconds(100)) == 0) {
        return server;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    *error = "unbound did not come up: " + read_file(log);
    if (!died) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    server->pid_ = -1;
    // A port race is the likely cause of an early exit: try another port.
    if (!died) break;
  }
  return nullptr;
}

void UnboundServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 200; ++i) {
    if (exited(pid_)) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

UnboundServer::~UnboundServer() {
  stop();
  std::error_code ignored;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
}

}  // namespace stampd::test
