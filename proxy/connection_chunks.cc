// connection_chunks.cc: BDAT (RFC 3030): a chunk is exactly its size in
// octets, read whatever they hold; a refused chunk is still read and dropped.
#include <boost/asio/awaitable.hpp>

#include "proxy/connection_impl.h"

namespace stampd::proxy::detail {

asio::awaitable<const char*> Connection::bdat(smtp::Command cmd) {
  // Read and dropped like any refused chunk; those pipelined behind it then
  // find no transaction.
  if (auto lost = relay_.lost()) co_return co_await refuse_bdat(cmd, *lost);
  if (session_.state() == smtp::Session::State::HaveRcpt) relay_.begin_chunks();
  session_.apply(cmd);
  if (cmd.chunk_size > 0) reader_.reserve(kDataBuffer);
  // Exactly chunk_size octets, whatever they hold; the bytes after them are
  // the next command, pipelined or not (RFC 3030 §2).
  const DataDeadline deadline(config_.server.data_timeout, config_.server.min_data_rate,
                              DataDeadline::Clock::now());
  for (std::uint64_t left = cmd.chunk_size; left > 0;) {
    auto chunk = co_await read_message_chunk(deadline, cmd.chunk_size - left);
    if (!chunk) co_return co_await message_read_failed(chunk.error());
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk->size()));
    relay_.add_chunk(std::string_view(chunk->data(), take));
    reader_.consume(take);
    left -= take;
  }
  if (!cmd.last_chunk) {
    reply(session_.local_reply(cmd));
    co_return nullptr;
  }
  reader_.release();
  relay_.end_chunks();
  const Outcome outcome = co_await relay_.finish();
  reply(outcome.reply);
  co_return nullptr;
}

asio::awaitable<const char*> Connection::skip_chunk(std::uint64_t size) {
  for (std::uint64_t left = size; left > 0;) {
    auto chunk = co_await reader_.read_chunk(config_.server.data_timeout);
    if (!chunk) {
      if (chunk.error().code != net::Errc::Timeout) co_return "client-closed";
      reply(make_reply(421, "4.4.2",
                       config_.server.hostname + " Timeout exceeded, closing connection"));
      co_return "timeout";
    }
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk->size()));
    reader_.consume(take);
    left -= take;
  }
  co_return nullptr;
}

asio::awaitable<const char*> Connection::refuse_bdat(const smtp::Command& cmd,
                                                     const smtp::Reply& refusal) {
  if (cmd.syntax_error) {
    // The chunk's size is unknown, so where the next command starts is too:
    // hanging up is the only way not to run chunk octets as commands.
    reply(refusal);
    co_return "bdat-syntax";
  }
  // RFC 3030 §2: a refused chunk's octets are still read and dropped. A
  // refusal inside a transaction (too big) fails the whole message; the
  // chunks the client pipelined behind it then find no transaction and are
  // read and refused in turn.
  const bool in_transaction = session_.state() == smtp::Session::State::HaveRcpt ||
                              session_.state() == smtp::Session::State::InChunks;
  if (in_transaction) co_await relay_.refuse_chunks(refusal);
  reply(refusal);
  co_return co_await skip_chunk(cmd.chunk_size);
}

}  // namespace stampd::proxy::detail
