#include "proxy/drain_notice.h"

#include <boost/asio/post.hpp>

namespace stampd::proxy {

std::shared_ptr<DrainNotice::Watch> DrainNotice::watch(boost::asio::any_io_executor executor,
                                                       std::function<void()> on_drain) {
  auto w = std::make_shared<Watch>(*this, std::move(on_drain));
  std::lock_guard lock(mutex_);
  w->entry_ = entries_.insert(entries_.end(), Entry{std::move(executor), w});
  if (started_) notify(*w->entry_);
  return w;
}

void DrainNotice::notify(const Entry& entry) {
  // The callback runs on the session's thread, where the session also ends
  // (and destroys its Watch), so the lock() below cannot race with it.
  boost::asio::post(entry.executor, [weak = entry.watch] {
    if (auto w = weak.lock()) w->on_drain_();
  });
}

void DrainNotice::start() {
  std::lock_guard lock(mutex_);
  if (started_) return;
  started_ = true;
  for (const auto& e : entries_) notify(e);
}

bool DrainNotice::started() const {
  std::lock_guard lock(mutex_);
  return started_;
}

DrainNotice::Watch::~Watch() {
  std::lock_guard lock(notice_.mutex_);
  notice_.entries_.erase(entry_);
}

}  // namespace stampd::proxy
