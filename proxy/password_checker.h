// password_checker.h: checks AUTH passwords off the I/O threads. A crypt
// hash (yescrypt takes tens of milliseconds, more at a higher cost) run on
// an I/O thread would stall every session of that thread; here it runs on
// a small pool of its own and the session resumes on its own executor.
// It never logs, and keeps a password no longer than the check.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstddef>
#include <memory>
#include <string>

#include "proxy/users_file.h"

namespace stampd::proxy {

class PasswordChecker {
 public:
  // PasswordChecker runs checks on threads threads (at least one).
  explicit PasswordChecker(std::size_t threads);
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;
  ~PasswordChecker();

  // check tells whether password is user's in users (UserDb::verify, with
  // its constant-time compare and the cost of a hash for unknown users). The
  // hash runs on the pool; the caller resumes on its own executor. The
  // copy of password made for the pool is wiped once checked; password
  // itself is the caller's to wipe (it must outlive the co_await).
  boost::asio::awaitable<bool> check(std::shared_ptr<const UserDb> users, std::string user,
                                     const std::string& password);

  // join waits for the checks in flight (their sessions' resumptions are
  // queued on the I/O threads); for shutdown, before those are torn down.
  void join();

 private:
  boost::asio::thread_pool pool_;
};

// password_threads is how many threads the checks get: two at most, so that
// a burst of logins cannot take every core from the mail in flight.
std::size_t password_threads();

}  // namespace stampd::proxy
