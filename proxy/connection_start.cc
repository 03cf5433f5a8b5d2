// connection_start.cc: the PROXY protocol header a load balancer puts
// before the SMTP session.
#include <array>
#include <boost/asio/awaitable.hpp>

#include "proxy/connection_impl.h"

namespace stampd::proxy::detail {

asio::awaitable<bool> Connection::read_proxy_header() {
  const std::string balancer = net::endpoint_text(context_.client.address, context_.client.port);
  // Read from the stream, not the line reader, and never past the header:
  // on a listen_tls listener the TLS handshake follows it at once.
  std::array<char, net::kMaxProxyHeader> header{};
  std::size_t have = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    const std::string_view seen(header.data(), have);
    const auto parsed = net::parse_proxy_header(seen);
    const bool too_long = parsed.status == net::ProxyParse::Status::NeedMore &&
                          have + net::proxy_header_wanted(seen) > header.size();
    if (parsed.status == net::ProxyParse::Status::Invalid || too_long) {
      const std::string error = parsed.error.empty() ? "too long" : parsed.error;
      record_.note(obs::LogLevel::Warning, "proxy-header-invalid",
                   {{"balancer", balancer}, {"error", error}});
      co_return false;
    }
    if (parsed.status == net::ProxyParse::Status::Done) {
      if (parsed.header.source) {
        const net::IpAddress address = net::unmap(*parsed.header.source);
        context_.client = {address, parsed.header.source_port, config_.server.trusts(address)};
        const std::string client =
            net::endpoint_text(context_.client.address, context_.client.port);
        record_.note(obs::LogLevel::Debug, "proxy-header",
                     {{"balancer", balancer}, {"client", client}});
        session_.set_client(context_.client);
      }
      co_return true;
    }
    const auto left = deadline - std::chrono::steady_clock::now();
    auto n = co_await stream_->read_some(
        asio::buffer(header.data() + have, net::proxy_header_wanted(seen)),
        std::max<net::Duration>(left, std::chrono::milliseconds(1)));
    if (!n) {
      const std::string error = n.error().message();
      record_.note(obs::LogLevel::Info, "proxy-header-missing", {{"error", error}});
      co_return false;
    }
    have += *n;
  }
}

}  // namespace stampd::proxy::detail
