#include "tests/support/dns_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <unordered_map>

namespace stampd::test {
namespace {

class UdpSocket {
 public:
  explicit UdpSocket(int port) : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
  }
  ~UdpSocket() { ::close(fd_); }
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  void send(const std::vector<std::uint8_t>& q) { (void)::send(fd_, q.data(), q.size(), 0); }

  // Returns the id and rcode of the next answer, or id -1 on timeout.
  std::pair<int, int> receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return {-1, -1};
    std::uint8_t buf[4096];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 12) return {-2, -1};  // error (e.g. ICMP refused) or runt
    return {(buf[0] << 8) | buf[1], buf[3] & 0x0f};
  }

 private:
  int fd_;
};

}  // namespace

std::vector<std::uint8_t> make_dns_query(std::uint16_t id, std::string_view name,
                                         std::uint16_t type) {
  std::vector<std::uint8_t> q = {static_cast<std::uint8_t>(id >> 8),
                                 static_cast<std::uint8_t>(id & 0xff),
                                 0x01,  // RD
                                 0x00,
                                 0,
                                 1,  // QDCOUNT
                                 0,
                                 0,
                                 0,
                                 0,
                                 0,
                                 0};
  std::size_t start = 0;
  while (start <= name.size()) {
    auto dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const auto label = name.substr(start, dot - start);
    if (!label.empty()) {
      q.push_back(static_cast<std::uint8_t>(label.size()));
      q.insert(q.end(), label.begin(), label.end());
    }
    start = dot + 1;
  }
  q.push_back(0);
  q.push_back(static_cast<std::uint8_t>(type >> 8));
  q.push_back(static_cast<std::uint8_t>(type & 0xff));
  q.push_back(0);
  q.push_back(1);  // class IN
  return q;
}

int udp_dns_rcode(int port, std::string_view name, std::uint16_t type,
                  std::chrono::milliseconds timeout) {
  UdpSocket s(port);
  const std::uint16_t id = 0x5350;
  s.send(make_dns_query(id, name, type));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return -1;
    const auto [got, rcode] = s.receive(left);
    if (got == id) return rcode;
    if (got == -1) return -1;
    if (got == -2) return -1;
  }
}

UdpQueryLoopStats udp_query_loop(
    int port, const std::vector<std::pair<std::string_view, std::uint16_t>>& names,
    std::uint64_t count, int window) {
  UdpSocket s(port);
  UdpQueryLoopStats stats;
  std::uint64_t sent = 0;
  std::uint64_t outstanding = 0;
  std::uint16_t next_id = 1;
  auto send_one = [&] {
    const auto& [name, type] = names[sent % names.size()];
    s.send(make_dns_query(next_id++, name, type));
    ++sent;
    ++outstanding;
  };
  while (sent < count && outstanding < static_cast<std::uint64_t>(window)) send_one();
  while (outstanding > 0) {
    const auto [id, rcode] = s.receive(std::chrono::milliseconds(1000));
    if (id < 0) {
      stats.lost += outstanding;  // the server stalled; give up on these
      outstanding = 0;
    } else {
      ++stats.answered;
      --outstanding;
    }
    while (sent < count && outstanding < static_cast<std::uint64_t>(window)) send_one();
  }
  return stats;
}

}  // namespace stampd::test
