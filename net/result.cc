#include "net/result.h"

namespace stampd::net {
namespace {

class StampdCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "stampd"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::BadInput:
        return "bad input";
      case Errc::NotFound:
        return "not found";
      case Errc::PermissionDenied:
        return "permission denied";
      case Errc::Unsupported:
        return "unsupported";
      case Errc::Crypto:
        return "cryptographic failure";
      case Errc::Timeout:
        return "timed out";
      case Errc::Io:
        return "I/O error";
      case Errc::LimitExceeded:
        return "limit exceeded";
      case Errc::Protocol:
        return "protocol error";
    }
    return "unknown error";
  }
};

}  // namespace

const std::error_category& stampd_category() noexcept {
  static const StampdCategory category;
  return category;
}

}  // namespace stampd::net
