// message_assembler.h: takes the decoded message chunk by chunk, spools it,
// finds where the header block ends (auth::HeaderSplitter) and hands the
// stages the header block once and the body chunks as they come. Holds only
// the header block in memory (bounded by max_header_size); the body is never
// copied here.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/dkim/message_splitter.h"
#include "net/result.h"
#include "proxy/pipeline.h"
#include "proxy/spool.h"

namespace stampd::proxy {

class MessageAssembler {
 public:
  MessageAssembler(Transaction& tx, Pipeline& pipeline, Spool& spool,
                   std::uint64_t max_header_size);

  // add takes the next decoded chunk. An Error means the message cannot be
  // taken (header too big, spool write failed); keep reading to the end of
  // data, then refuse it.
  net::Status add(std::string_view chunk);
  // finish marks the end of data (a message without a blank line is all header).
  net::Status finish();
  std::string_view header_block() const {
    return splitter_.header_complete() ? std::string_view(splitter_.header()) : std::string_view{};
  }

 private:
  void header_block_done();
  void body(std::string_view chunk);

  Transaction& tx_;
  Pipeline& pipeline_;
  Spool& spool_;
  auth::HeaderSplitter splitter_;
};

}  // namespace stampd::proxy
