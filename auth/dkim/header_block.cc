#include "auth/dkim/header_block.h"

namespace stampd::auth {
namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

net::Error line_error(std::size_t line, const std::string& what) {
  return net::make_error(net::Errc::BadInput, "header line " + std::to_string(line) + ": " + what);
}

}  // namespace

bool header_name_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

net::Result<HeaderBlock> HeaderBlock::parse(std::string text) {
  HeaderBlock block;
  block.text_ = std::move(text);
  std::string& t = block.text_;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < t.size()) {
    ++line_no;
    std::size_t eol = t.find("\r\n", pos);
    const bool has_crlf = eol != std::string::npos;
    if (!has_crlf) eol = t.size();
    const std::size_t next = has_crlf ? eol + 2 : eol;
    if (eol == pos) {  // the blank line: end of the header section
      t.resize(pos);
      break;
    }
    const char first = t[pos];
    if (first == ' ' || first == '\t') {
      if (block.fields_.empty())
        return line_error(line_no, "continuation line before the first field");
      block.fields_.back().size = next - block.fields_.back().begin;
    } else {
      const std::size_t colon = t.find(':', pos);
      if (colon == std::string::npos || colon > eol)
        return line_error(line_no, "no colon in header field");
      std::size_t name_end = colon;
      while (name_end > pos && (t[name_end - 1] == ' ' || t[name_end - 1] == '\t')) --name_end;
      if (name_end == pos) return line_error(line_no, "empty header field name");
      for (std::size_t i = pos; i < name_end; ++i) {
        const auto c = static_cast<unsigned char>(t[i]);
        if (c < 0x21 || c > 0x7e) return line_error(line_no, "invalid byte in header field name");
      }
      block.fields_.push_back(Span{pos, name_end - pos, next - pos});
    }
    pos = next;
  }
  // An unterminated last line gets its CRLF, so raw fields always end in one.
  if (!t.empty() && (t.size() < 2 || t.compare(t.size() - 2, 2, "\r\n") != 0)) {
    t += "\r\n";
    if (!block.fields_.empty()) block.fields_.back().size = t.size() - block.fields_.back().begin;
  }
  return block;
}

HeaderField HeaderBlock::field(std::size_t index) const {
  const Span& s = fields_.at(index);
  const std::string_view all(text_);
  return HeaderField{all.substr(s.begin, s.name_size), all.substr(s.begin, s.size)};
}

std::vector<std::size_t> HeaderBlock::find_all(std::string_view name) const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (header_name_equal(field(i).name, name)) out.push_back(i);
  }
  return out;
}

std::size_t HeaderBlock::count(std::string_view name) const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    if (header_name_equal(field(i).name, name)) ++n;
  }
  return n;
}

std::optional<std::size_t> HeaderBlock::find_last(std::string_view name) const {
  for (std::size_t i = fields_.size(); i-- > 0;) {
    if (header_name_equal(field(i).name, name)) return i;
  }
  return std::nullopt;
}

std::vector<std::optional<std::size_t>> select_fields(const HeaderBlock& block,
                                                      std::span<const std::string> names) {
  std::vector<std::optional<std::size_t>> out;
  out.reserve(names.size());
  std::vector<bool> used(block.size(), false);
  for (const std::string& name : names) {
    std::optional<std::size_t> pick;
    for (std::size_t i = block.size(); i-- > 0;) {
      if (!used[i] && header_name_equal(block.field(i).name, name)) {
        pick = i;
        used[i] = true;
        break;
      }
    }
    out.push_back(pick);
  }
  return out;
}

}  // namespace stampd::auth
