// drain_notice.h: how a drain reaches the sessions. Each session registers
// a Watch; when the drain starts, every watch's callback runs on its
// session's own executor (so it needs no locks of its own). A session idle
// between transactions uses it to stop waiting for a command at once, so a
// rolling restart does not wait drain_timeout for clients that send nothing.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

namespace stampd::proxy {

class DrainNotice {
 public:
  class Watch;

  // watch registers on_drain to run on executor when the drain starts (at
  // once, posted, if it has started); it stops with the Watch.
  std::shared_ptr<Watch> watch(boost::asio::any_io_executor executor,
                               std::function<void()> on_drain);
  // start runs the callbacks; any thread may call it, once or more.
  void start();
  bool started() const;

 private:
  struct Entry {
    boost::asio::any_io_executor executor;
    std::weak_ptr<Watch> watch;
  };
  void notify(const Entry& entry);

  mutable std::mutex mutex_;
  std::list<Entry> entries_;
  bool started_ = false;
};

class DrainNotice::Watch {
 public:
  Watch(DrainNotice& notice, std::function<void()> on_drain)
      : notice_(notice), on_drain_(std::move(on_drain)) {}
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  ~Watch();

 private:
  friend class DrainNotice;
  DrainNotice& notice_;
  std::function<void()> on_drain_;
  std::list<Entry>::iterator entry_;
};

}  // namespace stampd::proxy
