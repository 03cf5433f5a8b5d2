#include "auth/mail_address.h"

namespace stampd::auth {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<MailAddress> split_address(std::string_view address) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
  std::string_view domain = address.substr(at + 1);
  if (domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty()) return std::nullopt;
  return MailAddress{std::string(address.substr(0, at)), ascii_lower(domain)};
}

}  // namespace stampd::auth
