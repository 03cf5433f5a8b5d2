#include "proxy/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stampd::proxy {

using net::Errc;
using net::make_error;

Spool::Spool(std::uint64_t memory_limit, std::string dir)
    : memory_limit_(memory_limit), dir_(std::move(dir)) {}

Spool::~Spool() { clear(); }

void Spool::clear() {
  memory_.clear();
  if (memory_.capacity() > memory_limit_) memory_.shrink_to_fit();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  file_size_ = 0;
}

net::Status Spool::open_file() {
  // O_TMPFILE: the file never has a name, so a crash leaves nothing behind.
  fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string path = dir_ + "/stampd-spool-XXXXXX";
    fd_ = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(path.c_str());
  }
  if (fd_ < 0) {
    return make_error(Errc::Io,
                      "cannot create a spool file in '" + dir_ + "': " + std::strerror(errno));
  }
  return net::Ok{};
}

net::Status Spool::append(std::string_view data) {
  if (fd_ < 0) {
    const std::uint64_t room = memory_limit_ > memory_.size() ? memory_limit_ - memory_.size() : 0;
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(room, data.size()));
    memory_.append(data.data(), take);
    data.remove_prefix(take);
    if (data.empty()) return net::Ok{};
    if (auto opened = open_file(); !opened) return opened;
  }
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      // Name the directory: the operator has to find the full disk.
      return make_error(Errc::Io,
                        "cannot write the spool file in '" + dir_ + "': " + std::strerror(errno));
    }
    file_size_ += static_cast<std::uint64_t>(n);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return net::Ok{};
}

net::Result<std::string_view> Spool::read(std::uint64_t offset, std::string& buffer,
                                          std::size_t max) const {
  if (offset < memory_.size()) {
    const auto n = std::min<std::uint64_t>(max, memory_.size() - offset);
    return std::string_view(memory_).substr(static_cast<std::size_t>(offset),
                                            static_cast<std::size_t>(n));
  }
  const std::uint64_t file_offset = offset - memory_.size();
  if (file_offset >= file_size_) return std::string_view{};
  buffer.resize(static_cast<std::size_t>(std::min<std::uint64_t>(max, file_size_ - file_offset)));
  for (;;) {
    const ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), static_cast<off_t>(file_offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return make_error(Errc::Io, "cannot read the spool file in '" + dir_ +
                                      "': " + (n == 0 ? "short file" : std::strerror(errno)));
    }
    return std::string_view(buffer.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace stampd::proxy
