// pipeline.h: the stages a message passes through (SPF policy, DKIM signing,
// ...) and what they see: the transaction at fixed points, the header block
// once, body chunks as they stream in. A stage never sees the socket.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smtp/reply.h"
#include "smtp/session.h"

namespace stampd::proxy {

class Spool;

// Transaction is one envelope and what the stages decided about it.
struct Transaction {
  std::string id;                          // message id for logs: "<session>.<n>"
  const smtp::Session* session = nullptr;  // client, HELO, XFORWARD, envelope
  std::string mail_from;  // the MAIL FROM path (the envelope holds it once the upstream agreed)
  // Header fields to put in front of the message, in order, each ending CRLF
  // (Received-SPF, DKIM-Signature). Stages add; the relay sends them first.
  std::vector<std::string> prepend_fields;
  // Extra key=value pairs for the message's summary log line.
  std::vector<std::pair<std::string, std::string>> log_fields;
};

// Message is the spooled message at end-of-data.
struct Message {
  std::string_view header_block;  // header fields, each ending CRLF (no blank line)
  const Spool* spool = nullptr;   // the whole message as received
  std::uint64_t size = 0;
};

// Verdict is a stage's answer: carry on, or answer the client with reply.
struct Verdict {
  std::optional<smtp::Reply> reply;  // set: stop and send this to the client
  std::string reason;                // for the log

  static Verdict next() { return {}; }
  static Verdict stop(smtp::Reply r, std::string why) { return {std::move(r), std::move(why)}; }
  bool stopped() const noexcept { return reply.has_value(); }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual const char* name() const = 0;
  // on_mail_from runs after the client's MAIL passed our checks, before the upstream sees it.
  virtual boost::asio::awaitable<Verdict> on_mail_from(Transaction& tx);
  // on_header_block sees the header fields once, when the blank line has arrived.
  virtual void on_header_block(Transaction& tx, std::string_view header_block);
  // on_body sees each body chunk (CRLF text, unstuffed) as it arrives.
  virtual void on_body(std::span<const char> chunk);
  // on_end_of_data runs when the whole message is spooled, before the upstream gets it.
  virtual boost::asio::awaitable<Verdict> on_end_of_data(Transaction& tx, const Message& message);
};

// StageFactory makes the stages for one transaction.
class StageFactory {
 public:
  virtual ~StageFactory() = default;
  virtual std::vector<std::unique_ptr<Stage>> make_stages() const = 0;
};

// Refusal is a stage's stop: the reply for the client, which stage and why.
struct Refusal {
  smtp::Reply reply;
  std::string stage;
  std::string reason;
};

// Pipeline is the stages of one transaction, run in order at each point;
// the first to stop ends the run.
class Pipeline {
 public:
  // start makes a fresh set of stages for a new transaction.
  void start(const std::vector<std::shared_ptr<const StageFactory>>& factories);
  void clear() { stages_.clear(); }
  boost::asio::awaitable<std::optional<Refusal>> mail_from(Transaction& tx);
  void header_block(Transaction& tx, std::string_view block);
  void body(std::span<const char> chunk);
  boost::asio::awaitable<std::optional<Refusal>> end_of_data(Transaction& tx,
                                                             const Message& message);
  // add appends a stage (tests build pipelines by hand).
  void add(std::unique_ptr<Stage> stage) { stages_.push_back(std::move(stage)); }

 private:
  std::vector<std::unique_ptr<Stage>> stages_;
};

}  // namespace stampd::proxy
