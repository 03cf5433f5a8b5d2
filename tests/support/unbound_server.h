// unbound_server.h: runs a real `unbound -d` for tests and benchmarks, on a
// free loopback port with its own config (local zones and records only, no
// chroot, no remote control, files in a temporary directory), and stops it
// on destruction.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace stampd::test {

class UnboundServer {
 public:
  struct Options {
    // local_zones are "name type" pairs, e.g. "stampd.test. static".
    std::vector<std::string> local_zones;
    // local_data are records in zone-file syntax, e.g.
    // "mail.stampd.test. A 192.0.2.1" (unbound's local-data).
    std::vector<std::string> local_data;
    // extra_server_lines go verbatim into the server: clause.
    std::vector<std::string> extra_server_lines;
  };

  // find_binary returns the path of the unbound daemon, if installed.
  static std::optional<std::string> find_binary();

  // start launches unbound and waits until it answers; nullptr and a reason
  // in *error when it cannot.
  static std::unique_ptr<UnboundServer> start(const Options& options, std::string* error);

  ~UnboundServer();
  UnboundServer(const UnboundServer&) = delete;
  UnboundServer& operator=(const UnboundServer&) = delete;

  int port() const { return port_; }
  // forwarder returns "127.0.0.1:PORT" for UnboundOptions::forwarders.
  std::string forwarder() const { return "127.0.0.1:" + std::to_string(port_); }
  // stop terminates the server now (to test what answers without it).
  void stop();

 private:
  UnboundServer() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

// free_loopback_port returns a port free for both UDP and TCP on 127.0.0.1
// at the time of the call.
int free_loopback_port();

}  // namespace stampd::test
