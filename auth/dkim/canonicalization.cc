#include "auth/dkim/canonicalization.h"

namespace stampd::auth {
namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

net::Result<Canonicalization> parse_one(std::string_view s) {
  if (iequals(s, "simple")) return Canonicalization::Simple;
  if (iequals(s, "relaxed")) return Canonicalization::Relaxed;
  return net::make_error(net::Errc::BadInput,
                         "unknown canonicalization \"" + std::string(s) + "\"");
}

void append_relaxed(std::string_view raw, std::string& out) {
  const bool crlf = raw.size() >= 2 && raw.substr(raw.size() - 2) == "\r\n";
  if (crlf) raw.remove_suffix(2);
  const auto colon = raw.find(':');
  std::string_view name = raw.substr(0, colon);
  // WSP before the colon is removed (§3.4.2, "Delete any WSP characters
  // remaining before and after the colon"). A fold cannot occur inside a
  // field name, so only plain WSP needs trimming.
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (const char c : name) out += lower(c);
  if (colon != std::string_view::npos) {
    out += ':';
    const std::string_view value = raw.substr(colon + 1);
    bool pending_space = false;
    bool started = false;  // leading WSP after the colon is dropped
    for (std::size_t i = 0; i < value.size(); ++i) {
      const char c = value[i];
      // Unfolding (§3.4.2) removes CRLF; the WSP after it joins the run.
      if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
        ++i;
        continue;
      }
      if (is_wsp(c)) {
        pending_space = true;
        continue;
      }
      if (pending_space && started) out += ' ';
      pending_space = false;
      started = true;
      out += c;
    }
  }
  if (crlf) out += "\r\n";
}

}  // namespace

const char* to_string(Canonicalization c) noexcept {
  return c == Canonicalization::Relaxed ? "relaxed" : "simple";
}

std::string to_string(CanonicalizationPair c) {
  return std::string(to_string(c.header)) + "/" + to_string(c.body);
}

net::Result<CanonicalizationPair> parse_canonicalization(std::string_view text) {
  CanonicalizationPair pair;
  const auto slash = text.find('/');
  auto header = parse_one(text.substr(0, slash));
  if (!header) return std::move(header).error();
  pair.header = *header;
  if (slash != std::string_view::npos) {
    auto body = parse_one(text.substr(slash + 1));
    if (!body) return std::move(body).error();
    pair.body = *body;
  }
  return pair;
}

void append_canonical_header(Canonicalization c, std::string_view raw_field, std::string& out) {
  if (c == Canonicalization::Simple) {
    out.append(raw_field);
  } else {
    append_relaxed(raw_field, out);
  }
}

std::string canonicalize_header(Canonicalization c, std::string_view raw_field) {
  std::string out;
  out.reserve(raw_field.size());
  append_canonical_header(c, raw_field, out);
  return out;
}

}  // namespace stampd::auth
