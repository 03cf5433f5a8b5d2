// result.h: the one error shape of the data path: Result<T> holds a value or
// an Error{code, detail}. No exceptions here; exceptions are for start-up.
#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace stampd::net {

// Errc names the failures that stampd code reports itself (as opposed to
// errors from the OS or from Asio, which keep their own category).
enum class Errc {
  BadInput = 1,      // malformed data from a peer or a file
  NotFound,          // a named thing (key, record, file) does not exist
  PermissionDenied,  // e.g. a private key readable by others
  Unsupported,       // an algorithm or feature we do not implement
  Crypto,            // OpenSSL reported a failure
  Timeout,
  Io,
  LimitExceeded,
  Protocol,  // a peer broke its protocol
};

const std::error_category& stampd_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), stampd_category()};
}

// Error is a failure as a value: a code to branch on and a detail for logs.
struct Error {
  std::error_code code;
  std::string detail;

  std::string message() const {
    return detail.empty() ? code.message() : code.message() + ": " + detail;
  }
};

inline Error make_error(Errc e, std::string detail) {
  return Error{make_error_code(e), std::move(detail)};
}

// Result is either a T or an Error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Status is a Result without a value.
struct Ok {};
using Status = Result<Ok>;

}  // namespace stampd::net

template <>
struct std::is_error_code_enum<stampd::net::Errc> : std::true_type {};
