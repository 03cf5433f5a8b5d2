#include "auth/dkim/signature.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <type_traits>

#include "auth/dkim/base64.h"
#include "auth/dkim/header_block.h"
#include "auth/dkim/tag_list.h"
#include "auth/dns_name.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

net::Error bad(const std::string& what) { return make_error(Errc::BadInput, what); }

template <class T>
std::optional<T> parse_number(std::string_view s, std::size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  T v{};
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

bool identity_within(std::string_view identity, std::string_view domain) noexcept {
  const auto at = identity.rfind('@');
  return at != std::string_view::npos && is_same_or_subdomain(identity.substr(at + 1), domain);
}

std::optional<int> parse_arc_instance(std::string_view value) {
  if (value.empty() || value.size() > 2 ||
      !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const auto n = parse_number<int>(value, 2);
  if (!n || *n < 1 || *n > kMaxArcInstance) return std::nullopt;
  return n;
}

net::Result<ParsedSignature> parse_signature(std::string_view raw_field, SignatureField kind) {
  const bool arc = kind == SignatureField::ArcMessage;
  const auto colon = raw_field.find(':');
  if (colon == std::string_view::npos) return bad("not a header field");
  const std::string_view value = raw_field.substr(colon + 1);
  auto parsed = parse_tag_list(value, arc ? EmptyTagSpecs::Error : EmptyTagSpecs::Skip);
  if (!parsed) return std::move(parsed).error();
  const std::vector<Tag>& tags = *parsed;
  auto required = [&](const char* name) -> const Tag* { return find_tag(tags, name); };
  for (const char* name : {arc ? "i" : "v", "a", "b", "bh", "d", "h", "s"}) {
    if (required(name) == nullptr) return bad(std::string("missing required tag ") + name + "=");
  }

  ParsedSignature sig;
  if (arc) {
    const auto instance = parse_arc_instance(find_tag(tags, "i")->value);
    if (!instance) return bad("i= is not an ARC instance (1 to 50)");
    sig.instance = *instance;
  } else if (find_tag(tags, "v")->value != "1") {
    return bad("unsupported version v=" + find_tag(tags, "v")->value);
  }

  sig.algorithm = find_tag(tags, "a")->value;
  const auto type = key_type_for_algorithm(sig.algorithm);
  if (!type) return make_error(Errc::Unsupported, "unsupported algorithm a=" + sig.algorithm);
  sig.key_type = *type;

  const Tag* b = find_tag(tags, "b");
  const auto b_bytes = base64_decode(b->value);
  if (!b_bytes || b_bytes->empty()) return bad("b= is not valid base64");
  sig.signature = *b_bytes;
  const auto bh_bytes = base64_decode(find_tag(tags, "bh")->value);
  if (!bh_bytes) return bad("bh= is not valid base64");
  if (bh_bytes->size() != 32) return bad("bh= is not a SHA-256 hash");
  sig.body_hash = *bh_bytes;

  if (const Tag* c = find_tag(tags, "c")) {
    auto canon = parse_canonicalization(c->value);
    if (!canon) return std::move(canon).error();
    sig.canonicalization = *canon;
  }

  sig.domain = find_tag(tags, "d")->value;
  sig.selector = find_tag(tags, "s")->value;
  if (sig.domain.empty()) return bad("empty d=");
  // RFC 6376 §3.5: d= is a domain name (U-labels allowed, RFC 8616); an
  // '@' in it would also make the default i= ("@" + d=) name another domain.
  const bool domain_chars = std::all_of(sig.domain.begin(), sig.domain.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x80 || std::isalnum(u) || c == '-' || c == '.' || c == '_';
  });
  if (!domain_chars || !is_queryable_name(sig.domain)) return bad("d= is not a domain name");
  if (sig.selector.empty()) return bad("empty s=");

  // h= is a colon list with FWS allowed around the names (§3.5).
  const std::string_view h = find_tag(tags, "h")->value;
  std::size_t pos = 0;
  bool has_from = false;
  while (pos <= h.size()) {
    std::size_t end = h.find(':', pos);
    if (end == std::string_view::npos) end = h.size();
    const std::string_view name = trim_fws(h.substr(pos, end - pos));
    if (name.empty() && !arc) return bad("empty header name in h=");
    if (arc && header_name_equal(name, "arc-seal"))
      return bad("h= includes ARC-Seal (RFC 8617 §4.1.2)");
    has_from = has_from || header_name_equal(name, "from");
    if (!name.empty()) sig.headers.emplace_back(name);
    if (end == h.size()) break;
    pos = end + 1;
  }
  if (!has_from && !arc) return bad("h= does not include from (RFC 6376 §5.4)");

  if (const Tag* i = find_tag(tags, "i"); i != nullptr && !arc) {
    const auto at = i->value.rfind('@');
    if (at == std::string::npos) return bad("i= has no @");
    if (!identity_within(i->value, sig.domain)) {
      return bad("i= domain is neither d= nor a subdomain of it");
    }
    sig.identity = i->value;
  } else {
    sig.identity = "@" + sig.domain;
  }

  if (const Tag* l = find_tag(tags, "l")) {
    sig.body_length = parse_number<std::uint64_t>(l->value, 19);
    if (!sig.body_length) return bad("l= is not a valid length");
  }
  if (const Tag* q = find_tag(tags, "q")) {
    bool dns = false;
    std::size_t p = 0;
    const std::string_view qv = q->value;
    while (p <= qv.size()) {
      std::size_t e = qv.find(':', p);
      if (e == std::string_view::npos) e = qv.size();
      dns = dns || trim_fws(qv.substr(p, e - p)) == "dns/txt";
      if (e == qv.size()) break;
      p = e + 1;
    }
    if (!dns) return bad("unsupported query method q=" + q->value);
  }
  if (const Tag* t = find_tag(tags, "t")) {
    sig.timestamp = parse_number<std::int64_t>(t->value, 12);
    if (!sig.timestamp) return bad("t= is not a valid time");
  }
  if (const Tag* x = find_tag(tags, "x")) {
    sig.expiration = parse_number<std::int64_t>(x->value, 12);
    if (!sig.expiration) return bad("x= is not a valid time");
    if (sig.timestamp && *sig.expiration < *sig.timestamp) return bad("x= is before t=");
  }

  // Delete the b= value, keeping "b=" itself (§3.7). Offsets are relative to
  // the value, which starts after the colon.
  const std::size_t vb = colon + 1 + b->value_begin;
  const std::size_t ve = colon + 1 + b->value_end;
  sig.field_without_b.reserve(raw_field.size());
  sig.field_without_b.append(raw_field.substr(0, vb));
  sig.field_without_b.append(raw_field.substr(ve));
  return sig;
}

}  // namespace stampd::auth
