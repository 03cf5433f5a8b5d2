#include "auth/dkim/tag_list.h"

namespace stampd::auth {
namespace {

bool is_fws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

net::Error bad(const std::string& what) { return net::make_error(net::Errc::BadInput, what); }

}  // namespace

net::Result<std::vector<Tag>> parse_tag_list(std::string_view text, EmptyTagSpecs empty) {
  std::vector<Tag> tags;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view spec = text.substr(pos, end - pos);
    std::size_t a = 0;
    while (a < spec.size() && is_fws(spec[a])) ++a;
    if (a == spec.size() && empty == EmptyTagSpecs::Error && end != text.size()) {
      return bad("empty tag-spec (\";;\")");
    }
    if (a < spec.size()) {
      const std::size_t eq = spec.find('=');
      if (eq == std::string_view::npos)
        return bad("tag without '=': \"" + std::string(spec.substr(a)) + "\"");
      std::size_t name_end = eq;
      while (name_end > a && is_fws(spec[name_end - 1])) --name_end;
      const std::string_view name = spec.substr(a, name_end - a);
      // tag-name = ALPHA *ALNUMPUNC
      bool valid = !name.empty() && is_alpha(name[0]);
      for (const char c : name) valid = valid && (is_alpha(c) || is_digit(c) || c == '_');
      if (!valid) return bad("invalid tag name \"" + std::string(name) + "\"");
      std::size_t vb = eq + 1;
      std::size_t ve = spec.size();
      for (std::size_t i = vb; i < ve; ++i) {
        const auto c = static_cast<unsigned char>(spec[i]);
        if ((c < 0x20 && !is_fws(static_cast<char>(c))) || c == 0x7f) {
          return bad("control character in value of tag " + std::string(name));
        }
      }
      Tag tag;
      tag.name = std::string(name);
      tag.value_begin = pos + vb;
      tag.value_end = pos + ve;
      while (vb < ve && is_fws(spec[vb])) ++vb;
      while (ve > vb && is_fws(spec[ve - 1])) --ve;
      tag.value = std::string(spec.substr(vb, ve - vb));
      if (find_tag(tags, tag.name) != nullptr) return bad("duplicate tag " + tag.name);
      tags.push_back(std::move(tag));
    }
    if (end == text.size()) break;
    pos = end + 1;
  }
  return tags;
}

const Tag* find_tag(const std::vector<Tag>& tags, std::string_view name) {
  for (const Tag& t : tags) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string_view trim_fws(std::string_view value) {
  while (!value.empty() && is_fws(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_fws(value.back())) value.remove_suffix(1);
  return value;
}

std::string remove_fws(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (!is_fws(c)) out += c;
  }
  return out;
}

}  // namespace stampd::auth
