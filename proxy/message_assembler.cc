#include "proxy/message_assembler.h"

namespace stampd::proxy {

MessageAssembler::MessageAssembler(Transaction& tx, Pipeline& pipeline, Spool& spool,
                                   std::uint64_t max_header_size)
    : tx_(tx),
      pipeline_(pipeline),
      spool_(spool),
      splitter_(static_cast<std::size_t>(max_header_size)) {}

void MessageAssembler::header_block_done() { pipeline_.header_block(tx_, splitter_.header()); }

void MessageAssembler::body(std::string_view chunk) {
  if (chunk.empty()) return;
  pipeline_.body(std::span<const char>(chunk.data(), chunk.size()));
}

net::Status MessageAssembler::add(std::string_view chunk) {
  if (auto written = spool_.append(chunk); !written) return written;
  const bool in_header = !splitter_.header_complete();
  auto body_part = splitter_.feed(chunk);
  if (!body_part) return std::move(body_part).error();
  if (in_header && splitter_.header_complete()) header_block_done();
  body(*body_part);
  return net::Ok{};
}

net::Status MessageAssembler::finish() {
  if (splitter_.header_complete()) return net::Ok{};
  if (auto finished = splitter_.finish(); !finished) return finished;
  header_block_done();
  return net::Ok{};
}

}  // namespace stampd::proxy
