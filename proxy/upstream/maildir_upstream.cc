#include "proxy/upstream/maildir_upstream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "proxy/spool.h"

namespace stampd::proxy {

namespace asio = boost::asio;

namespace {

std::atomic<unsigned long> g_delivery_counter{0};

bool make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) errno = ec.value();
  return !ec;
}

bool write_all(int fd, std::string_view data, prometheus::Counter& sent) {
  sent.Increment(static_cast<double>(data.size()));
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// unique_name follows the Maildir convention time.MusecPpidQn.host.
std::string unique_name(const std::string& host) {
  using namespace std::chrono;
  const auto now = system_clock::now().time_since_epoch();
  const auto secs = duration_cast<seconds>(now).count();
  const auto usec = duration_cast<microseconds>(now).count() % 1000000;
  std::string safe_host;
  for (char c : host) safe_host += (c == '/' || c == ':') ? '_' : c;
  return std::to_string(secs) + ".M" + std::to_string(usec) + "P" + std::to_string(::getpid()) +
         "Q" + std::to_string(++g_delivery_counter) + "." + safe_host;
}

}  // namespace

MaildirUpstream::MaildirUpstream(std::string directory, std::string hostname,
                                 prometheus::Counter& sent)
    : directory_(std::move(directory)), hostname_(std::move(hostname)), sent_(sent) {}

asio::awaitable<std::optional<smtp::UpstreamCapabilities>> MaildirUpstream::open() {
  if (!make_dirs(directory_ + "/tmp") || !make_dirs(directory_ + "/new") ||
      !make_dirs(directory_ + "/cur")) {
    error_kind_ = UpstreamErrorKind::Local;
    error_ = "cannot create Maildir '" + directory_ + "': " + std::strerror(errno);
    co_return std::nullopt;
  }
  ready_ = true;
  smtp::UpstreamCapabilities caps;
  caps.eightbitmime = true;  // a file takes any bytes
  caps.smtputf8 = true;
  co_return caps;
}

asio::awaitable<smtp::Reply> MaildirUpstream::mail(const smtp::Session&, const smtp::Command& mail,
                                                   Ahead) {
  sender_ = mail.argument;
  co_return smtp::make_reply(250, "2.1.0", "Ok");
}

asio::awaitable<smtp::Reply> MaildirUpstream::rcpt(const smtp::Recipient&, Ahead) {
  co_return smtp::make_reply(250, "2.1.5", "Ok");
}

asio::awaitable<smtp::Reply> MaildirUpstream::data(const std::vector<std::string>& prepend_fields,
                                                   const Spool& spool) {
  const std::string name = unique_name(hostname_);
  const std::string tmp = directory_ + "/tmp/" + name;
  const std::string final_path = directory_ + "/new/" + name;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  auto local_failure = [&](const char* what) {
    error_kind_ = UpstreamErrorKind::Local;
    error_ = std::string(what) + " '" + tmp + "': " + std::strerror(errno);
    return smtp::make_reply(451, "4.3.0", "Local delivery failed, try again later");
  };
  if (fd < 0) co_return local_failure("cannot create");
  bool ok = write_all(fd, "Return-Path: <" + sender_ + ">\r\n", sent_);
  for (const auto& field : prepend_fields) ok = ok && write_all(fd, field, sent_);
  std::string buffer;
  for (std::uint64_t offset = 0; ok && offset < spool.size();) {
    auto chunk = spool.read(offset, buffer);
    if (!chunk) {
      ok = false;
      break;
    }
    ok = write_all(fd, *chunk, sent_);
    offset += chunk->size();
  }
  // Maildir: the file is complete and on disk before it appears in new/.
  ok = ok && ::fsync(fd) == 0;
  if (::close(fd) != 0) ok = false;
  if (!ok || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    smtp::Reply reply = local_failure("cannot write");
    ::unlink(tmp.c_str());
    co_return reply;
  }
  co_return smtp::make_reply(250, "2.0.0", "Ok: delivered as " + name);
}

asio::awaitable<void> MaildirUpstream::reset() { co_return; }
asio::awaitable<void> MaildirUpstream::close() { co_return; }

}  // namespace stampd::proxy
