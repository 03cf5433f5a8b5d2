// maildir_upstream.h: an upstream that delivers into a Maildir folder
// (tmp/ then new/, atomically) instead of relaying: for first trials and
// tests. The file holds exactly what an SMTP upstream would have received,
// after a Return-Path field. Writes are synchronous; it is not meant for load.
#pragma once

#include <prometheus/counter.h>

#include <string>

#include "proxy/upstream/upstream.h"

namespace stampd::proxy {

class MaildirUpstream final : public Upstream {
 public:
  // sent counts the bytes written (stampd_upstream_sent_bytes_total).
  MaildirUpstream(std::string directory, std::string hostname, prometheus::Counter& sent);

  boost::asio::awaitable<std::optional<smtp::UpstreamCapabilities>> open() override;
  boost::asio::awaitable<smtp::Reply> mail(const smtp::Session& session, const smtp::Command& mail,
                                           Ahead ahead) override;
  boost::asio::awaitable<smtp::Reply> rcpt(const smtp::Recipient& recipient, Ahead ahead) override;
  boost::asio::awaitable<smtp::Reply> data(const std::vector<std::string>& prepend_fields,
                                           const Spool& spool) override;
  boost::asio::awaitable<void> reset() override;
  boost::asio::awaitable<void> close() override;

  // "Connected" once the Maildir's folders exist.
  bool connected() const override { return ready_; }
  bool reusable() const override { return ready_; }
  UpstreamErrorKind last_error_kind() const override { return error_kind_; }
  const std::string& last_error() const override { return error_; }
  std::string peer() const override { return "maildir:" + directory_; }

 private:
  std::string directory_;
  std::string hostname_;
  std::string sender_;
  bool ready_ = false;
  prometheus::Counter& sent_;
  UpstreamErrorKind error_kind_ = UpstreamErrorKind::None;
  std::string error_;
};

}  // namespace stampd::proxy
