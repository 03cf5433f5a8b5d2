#include "proxy/pipeline.h"

namespace stampd::proxy {

boost::asio::awaitable<Verdict> Stage::on_mail_from(Transaction&) { co_return Verdict::next(); }
void Stage::on_header_block(Transaction&, std::string_view) {}
void Stage::on_body(std::span<const char>) {}
boost::asio::awaitable<Verdict> Stage::on_end_of_data(Transaction&, const Message&) {
  co_return Verdict::next();
}

void Pipeline::start(const std::vector<std::shared_ptr<const StageFactory>>& factories) {
  stages_.clear();
  for (const auto& factory : factories) {
    for (auto& stage : factory->make_stages()) stages_.push_back(std::move(stage));
  }
}

boost::asio::awaitable<std::optional<Refusal>> Pipeline::mail_from(Transaction& tx) {
  for (auto& stage : stages_) {
    Verdict verdict = co_await stage->on_mail_from(tx);
    if (verdict.stopped()) {
      co_return Refusal{std::move(*verdict.reply), stage->name(), std::move(verdict.reason)};
    }
  }
  co_return std::nullopt;
}

void Pipeline::header_block(Transaction& tx, std::string_view block) {
  for (auto& stage : stages_) stage->on_header_block(tx, block);
}

void Pipeline::body(std::span<const char> chunk) {
  if (chunk.empty()) return;
  for (auto& stage : stages_) stage->on_body(chunk);
}

boost::asio::awaitable<std::optional<Refusal>> Pipeline::end_of_data(Transaction& tx,
                                                                     const Message& message) {
  for (auto& stage : stages_) {
    Verdict verdict = co_await stage->on_end_of_data(tx, message);
    if (verdict.stopped()) {
      co_return Refusal{std::move(*verdict.reply), stage->name(), std::move(verdict.reason)};
    }
  }
  co_return std::nullopt;
}

}  // namespace stampd::proxy
