#include "proxy/pipeline.h"

namespace stampd::proxy {

boost::asio::awaitable<Verdict> Stage::on_mail_from(Transaction&) { co_return Verdict::next(); }
void Stage::on_header_block(Transaction&, std::string_view) {}
void Stage::on_body(std::span<const char>) {}
boost::asio::awaitable<Verdict> Stage::on_end_of_data(Transaction&, const Message&) {
  co_return Verdict::next();
}

}  // namespace stampd::proxy
