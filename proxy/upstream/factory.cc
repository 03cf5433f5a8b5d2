#include "proxy/upstream/factory.h"

#include "proxy/upstream/maildir_upstream.h"
#include "proxy/upstream/smtp_upstream.h"

namespace stampd::proxy {

UpstreamFactory::UpstreamFactory(std::shared_ptr<const Config> config,
                                 std::shared_ptr<obs::Metrics> metrics,
                                 const std::vector<boost::asio::any_io_executor>& io)
    : config_(std::move(config)),
      servers_(std::make_shared<ServerHealth>(config_->upstream.servers)),
      metrics_(std::move(metrics)) {
  namespace ssl = boost::asio::ssl;
  const auto& u = config_->upstream;
  tls_ = std::make_shared<ssl::context>(ssl::context::tls_client);
  tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (!u.ca_file.empty()) {
    tls_->load_verify_file(u.ca_file, ec);
    if (ec)
      throw ConfigError(config_->path + ": [upstream] ca_file '" + u.ca_file +
                        "': " + ec.message());
  } else {
    tls_->set_default_verify_paths(ec);
  }
  if (io.empty()) return;
  // Each thread gets its share of the cap (rounded up: never none).
  PoolLimits limits;
  limits.max_connections = (u.max_connections + io.size() - 1) / io.size();
  limits.idle_timeout = u.idle_timeout;
  for (const auto& executor : io) {
    pools_.push_back(std::make_shared<UpstreamPool>(
        executor, [this, executor] { return make(executor); }, limits,
        &metrics_->upstream_connections, servers_));
  }
}

void UpstreamFactory::retire() const {
  for (const auto& pool : pools_) pool->retire();
}

std::size_t UpstreamFactory::alive() const {
  std::size_t n = 0;
  for (const auto& pool : pools_) n += pool->alive();
  return n;
}

UpstreamFactory::~UpstreamFactory() = default;

std::unique_ptr<Upstream> UpstreamFactory::make(boost::asio::any_io_executor executor) const {
  // A maildir: entry is the only server (config.cc); SMTP servers are tried
  // in order by SmtpUpstream.
  const auto& servers = config_->upstream.servers;
  if (servers.size() == 1 && servers.front().starts_with("maildir:")) {
    return std::make_unique<MaildirUpstream>(servers.front().substr(8), config_->server.hostname,
                                             metrics_->bytes_sent_upstream);
  }
  return std::make_unique<SmtpUpstream>(std::move(executor), config_, tls_,
                                        metrics_->bytes_sent_upstream, servers_);
}

}  // namespace stampd::proxy
