#include "auth/dmarc/org_domain.h"

#include <array>
#include <cctype>
#include <vector>

#include "auth/dns_name.h"

namespace stampd::auth {
namespace {

// Generic second-level labels that country-code registries sell names
// under (co.uk, com.au, ne.jp, gov.br...).
constexpr std::array<std::string_view, 16> kGenericSecondLevels = {
    "ac", "co",  "com", "edu", "gob", "go",  "gov", "ltd",
    "ne", "net", "nic", "or",  "org", "plc", "sch", "mil"};

bool is_country_code(std::string_view label) {
  return label.size() == 2 && std::isalpha(static_cast<unsigned char>(label[0])) != 0 &&
         std::isalpha(static_cast<unsigned char>(label[1])) != 0;
}

std::vector<std::string_view> labels_of(std::string_view name) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos <= name.size()) {
    auto dot = name.find('.', pos);
    if (dot == std::string_view::npos) dot = name.size();
    out.push_back(name.substr(pos, dot - pos));
    pos = dot + 1;
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string organizational_domain(std::string_view name) {
  std::string domain = lower(strip_trailing_dot(name));
  const auto labels = labels_of(domain);
  if (labels.size() <= 2) return domain;
  std::size_t keep = 2;
  const auto tld = labels[labels.size() - 1];
  const auto sld = labels[labels.size() - 2];
  if (is_country_code(tld)) {
    for (const auto generic : kGenericSecondLevels) {
      if (sld == generic) keep = 3;
    }
  }
  std::string out;
  for (std::size_t i = labels.size() - keep; i < labels.size(); ++i) {
    if (!out.empty()) out += '.';
    out += labels[i];
  }
  return out;
}

const char* to_string(AlignMode mode) noexcept {
  return mode == AlignMode::Strict ? "strict" : "relaxed";
}

bool aligned(std::string_view authenticated, std::string_view from_domain, AlignMode mode) {
  const auto a = lower(strip_trailing_dot(authenticated));
  const auto f = lower(strip_trailing_dot(from_domain));
  if (mode == AlignMode::Strict) return a == f;
  return organizational_domain(a) == organizational_domain(f);
}

}  // namespace stampd::auth
