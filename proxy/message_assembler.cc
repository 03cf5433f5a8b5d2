#include "proxy/message_assembler.h"

namespace stampd::proxy {

MessageAssembler::MessageAssembler(Transaction& tx, std::vector<std::unique_ptr<Stage>>& stages,
                                   Spool& spool, std::uint64_t max_header_size)
    : tx_(tx), stages_(stages), spool_(spool), max_header_size_(max_header_size) {}

void MessageAssembler::body(std::string_view chunk) {
  if (chunk.empty()) return;
  for (auto& stage : stages_) stage->on_body(std::span<const char>(chunk.data(), chunk.size()));
}

net::Status MessageAssembler::add(std::string_view chunk) {
  if (auto written = spool_.append(chunk); !written) return written;
  if (!in_header_) {
    body(chunk);
    return net::Ok{};
  }
  const std::size_t old = header_.size();
  header_.append(chunk);
  std::size_t body_start = std::string::npos;  // in header_
  std::size_t header_end = 0;
  if (header_.size() >= 2 && header_[0] == '\r' && header_[1] == '\n') {
    body_start = 2;  // RFC 5322 §2.1: no header fields at all
  } else {
    const auto blank = header_.find("\r\n\r\n", old >= 3 ? old - 3 : 0);
    if (blank != std::string::npos) {
      header_end = blank + 2;
      body_start = blank + 4;
    }
  }
  if (body_start == std::string::npos) {
    if (header_.size() > max_header_size_) {
      return net::make_error(net::Errc::LimitExceeded, "header block larger than max_header_size");
    }
    return net::Ok{};
  }
  if (header_end > max_header_size_) {
    return net::make_error(net::Errc::LimitExceeded, "header block larger than max_header_size");
  }
  // The body part of this chunk is still in chunk; take it from there.
  const std::string_view rest = chunk.substr(body_start - old);
  header_.resize(header_end);
  in_header_ = false;
  for (auto& stage : stages_) stage->on_header_block(tx_, header_);
  body(rest);
  return net::Ok{};
}

net::Status MessageAssembler::finish() {
  if (in_header_) {
    if (header_.size() > max_header_size_) {
      return net::make_error(net::Errc::LimitExceeded, "header block larger than max_header_size");
    }
    in_header_ = false;
    for (auto& stage : stages_) stage->on_header_block(tx_, header_);
  }
  return net::Ok{};
}

}  // namespace stampd::proxy
