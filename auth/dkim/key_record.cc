#include "auth/dkim/key_record.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "auth/dkim/base64.h"
#include "auth/dkim/tag_list.h"

namespace stampd::auth {
namespace {

using net::Errc;
using net::make_error;

std::vector<std::string> split_colon_list(std::string_view value) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= value.size()) {
    std::size_t end = value.find(':', pos);
    if (end == std::string_view::npos) end = value.size();
    std::string item = remove_fws(value.substr(pos, end - pos));
    if (!item.empty()) out.push_back(std::move(item));
    if (end == value.size()) break;
    pos = end + 1;
  }
  return out;
}

bool contains(const std::vector<std::string>& list, std::string_view what) {
  for (const auto& s : list) {
    if (s == what) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() &&
         (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// join_quoted concatenates the "..." strings of a zone-file style text,
// honouring backslash escapes (RFC 1035 §5.1).
std::string join_quoted(std::string_view text) {
  std::string out;
  bool in = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (!in) {
      if (c == '"') in = true;
      continue;
    }
    if (c == '\\' && i + 1 < text.size()) {
      out += text[++i];
    } else if (c == '"') {
      in = false;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

net::Result<KeyRecord> parse_key_record(std::string_view txt) {
  auto tags = parse_tag_list(txt);
  if (!tags) return make_error(Errc::BadInput, "key record: " + tags.error().detail);
  KeyRecord rec;
  if (const Tag* v = find_tag(*tags, "v")) {
    // §3.6.1: if present, v= MUST be first and MUST be "DKIM1".
    if (&tags->front() != v)
      return make_error(Errc::BadInput, "key record: v= is not the first tag");
    if (v->value != "DKIM1")
      return make_error(Errc::BadInput, "key record: unsupported version v=" + v->value);
  }
  if (const Tag* h = find_tag(*tags, "h")) {
    rec.hash_algorithms = split_colon_list(h->value);
    if (!contains(rec.hash_algorithms, "sha256")) {
      return make_error(Errc::BadInput, "key record: h=" + h->value + " does not allow sha256");
    }
  }
  if (const Tag* k = find_tag(*tags, "k")) {
    if (k->value == "rsa") {
      rec.type = KeyType::Rsa;
    } else if (k->value == "ed25519") {
      rec.type = KeyType::Ed25519;
    } else {
      return make_error(Errc::Unsupported, "key record: unknown key type k=" + k->value);
    }
  }
  if (const Tag* s = find_tag(*tags, "s")) {
    const auto services = split_colon_list(s->value);
    if (!contains(services, "*") && !contains(services, "email")) {
      return make_error(Errc::BadInput, "key record: s=" + s->value + " excludes email");
    }
  }
  if (const Tag* t = find_tag(*tags, "t")) {
    const auto flags = split_colon_list(t->value);
    rec.testing = contains(flags, "y");
    rec.strict = contains(flags, "s");
  }
  const Tag* p = find_tag(*tags, "p");
  if (p == nullptr) return make_error(Errc::BadInput, "key record: no p= tag");
  const std::string p_text = remove_fws(p->value);
  if (p_text.empty()) return rec;  // revoked
  const auto der = base64_decode(p_text);
  if (!der) return make_error(Errc::BadInput, "key record: p= is not valid base64");
  auto key = PublicKey::from_p_value(rec.type, *der);
  if (!key) return make_error(Errc::BadInput, "key record: " + key.error().detail);
  rec.key = std::move(key).value();
  return rec;
}

std::string make_key_record(const PublicKey& key) {
  return std::string("v=DKIM1; k=") + key_type_name(key.type()) +
         "; p=" + base64_encode(key.p_value());
}

std::vector<std::string> split_txt_strings(std::string_view record, std::size_t max_size) {
  std::vector<std::string> out;
  if (max_size == 0) max_size = 255;
  for (std::size_t pos = 0; pos < record.size(); pos += max_size) {
    out.emplace_back(record.substr(pos, max_size));
  }
  if (out.empty()) out.emplace_back();
  return out;
}

std::string zone_file_line(std::string_view selector, std::string_view domain,
                           std::string_view record) {
  std::string line;
  line.append(selector).append("._domainkey.").append(domain);
  if (line.empty() || line.back() != '.') line += '.';
  line += " IN TXT (";
  for (const auto& s : split_txt_strings(record)) {
    line += " \"";
    for (const char c : s) {
      if (c == '"' || c == '\\') line += '\\';
      line += c;
    }
    line += '"';
  }
  line += " )";
  return line;
}

net::Result<KeyRecord> parse_public_key_text(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.find("-----BEGIN ") != std::string_view::npos) {
    if (t.find("PRIVATE KEY-----") != std::string_view::npos) {
      auto priv = load_private_key_pem(t);
      if (!priv) return std::move(priv).error();
      KeyRecord rec;
      rec.type = priv->type();
      rec.key = priv->public_key();
      return rec;
    }
    auto pub = PublicKey::from_pem(t);
    if (!pub) return std::move(pub).error();
    KeyRecord rec;
    rec.type = pub->type();
    rec.key = std::move(pub).value();
    return rec;
  }
  if (t.find('"') != std::string_view::npos) return parse_key_record(join_quoted(t));
  return parse_key_record(t);
}

net::Result<KeyRecord> load_public_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(errno == ENOENT ? Errc::NotFound : Errc::Io,
                      path + ": " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto rec = parse_public_key_text(text.str());
  if (!rec) {
    net::Error e = std::move(rec).error();
    e.detail = path + ": " + e.detail;
    return e;
  }
  return rec;
}

}  // namespace stampd::auth
