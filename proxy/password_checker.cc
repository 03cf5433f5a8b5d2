#include "proxy/password_checker.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>
#include <utility>

namespace stampd::proxy {

namespace asio = boost::asio;

namespace {

// Secret holds the password on its way to the pool; however often the
// asynchronous machinery copies the pointer, the text exists once and is
// wiped when the last holder lets go.
struct Secret {
  std::string text;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  explicit Secret(std::string t) : text(std::move(t)) {}
  ~Secret() { OPENSSL_cleanse(text.data(), text.size()); }
};

// Job is one check on the pool: it hashes, wipes the password, then hands
// the verdict to the waiting session on the session's own executor (the
// handler's), never on the pool thread.
template <class Handler>
struct Job {
  Handler handler;
  asio::executor_work_guard<asio::associated_executor_t<Handler>> work;
  std::shared_ptr<const UserDb> users;
  std::string user;
  std::shared_ptr<Secret> password;

  void operator()() {
    const bool ok = users->verify(user, password->text);
    password.reset();
    auto executor = work.get_executor();
    asio::post(executor, Resume{std::move(handler), ok});
    work.reset();
  }

  struct Resume {
    Handler handler;
    bool ok;
    void operator()() { std::move(handler)(ok); }
  };
};

// Initiation starts a check for async_initiate (a plain function object:
// no coroutine lambda with captures, see STYLE.md).
struct Initiation {
  asio::thread_pool* pool;

  template <class Handler>
  void operator()(Handler&& handler, std::shared_ptr<const UserDb> users, std::string user,
                  std::shared_ptr<Secret> password) const {
    using H = std::decay_t<Handler>;
    auto executor = asio::get_associated_executor(handler);
    asio::post(*pool,
               Job<H>{std::forward<Handler>(handler), asio::make_work_guard(std::move(executor)),
                      std::move(users), std::move(user), std::move(password)});
  }
};

}  // namespace

PasswordChecker::PasswordChecker(std::size_t threads) : pool_(std::max<std::size_t>(1, threads)) {}

PasswordChecker::~PasswordChecker() { join(); }

void PasswordChecker::join() { pool_.join(); }

asio::awaitable<bool> PasswordChecker::check(std::shared_ptr<const UserDb> users, std::string user,
                                             const std::string& password) {
  const bool ok = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(bool)>(
      Initiation{&pool_}, asio::use_awaitable, std::move(users), std::move(user),
      std::make_shared<Secret>(password));
  co_return ok;
}

std::size_t password_threads() {
  return std::clamp<std::size_t>(std::thread::hardware_concurrency() / 2, 1, 2);
}

}  // namespace stampd::proxy
