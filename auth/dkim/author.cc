#include "auth/dkim/author.h"

namespace stampd::auth {
namespace {

net::Error bad(const std::string& what) { return net::make_error(net::Errc::BadInput, what); }

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// finish_mailbox turns what was collected for one mailbox into an address.
void finish_mailbox(std::string& plain, std::string& angle, bool had_angle,
                    std::vector<std::string>& out) {
  std::string addr = had_angle ? angle : plain;
  if (had_angle) {
    // obs-route "@a,@b:user@example.com" (RFC 5322 §4.4): drop the route.
    if (!addr.empty() && addr.front() == '@') {
      const auto colon = addr.find(':');
      addr = colon == std::string::npos ? std::string() : addr.substr(colon + 1);
    }
  }
  if (!addr.empty()) out.push_back(std::move(addr));
  plain.clear();
  angle.clear();
}

}  // namespace

net::Result<std::vector<std::string>> parse_mailbox_list(std::string_view value) {
  std::vector<std::string> out;
  std::string plain;  // addr-spec candidate outside <>: whitespace dropped
  std::string angle;  // content of <...>
  bool had_angle = false;
  bool in_angle = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '(') {  // comment, may nest, may hold quoted-pairs
      int depth = 1;
      while (++i < value.size() && depth > 0) {
        if (value[i] == '\\') {
          ++i;
        } else if (value[i] == '(') {
          ++depth;
        } else if (value[i] == ')') {
          --depth;
        }
      }
      if (depth != 0) return bad("unbalanced comment in From");
      --i;
      continue;
    }
    if (c == '"') {  // quoted string: part of a local part or a display name
      std::string q = "\"";
      bool closed = false;
      while (++i < value.size()) {
        if (value[i] == '\\' && i + 1 < value.size()) {
          q += value[i];
          q += value[++i];
        } else if (value[i] == '"') {
          closed = true;
          break;
        } else {
          q += value[i];
        }
      }
      if (!closed) return bad("unbalanced quote in From");
      q += '"';
      (in_angle ? angle : plain) += q;
      continue;
    }
    if (in_angle) {
      if (c == '>') {
        in_angle = false;
      } else if (!is_space(c)) {
        angle += c;
      }
      continue;
    }
    switch (c) {
      case '<':
        in_angle = true;
        had_angle = true;
        angle.clear();
        break;
      case '>':
        return bad("unbalanced '>' in From");
      case ',':
      case ';':
        finish_mailbox(plain, angle, had_angle, out);
        had_angle = false;
        break;
      case ':':  // group name ends; its mailboxes follow
        plain.clear();
        break;
      default:
        if (!is_space(c)) plain += c;
    }
  }
  if (in_angle) return bad("unbalanced '<' in From");
  finish_mailbox(plain, angle, had_angle, out);
  return out;
}

net::Result<MailAddress> author_address(const HeaderBlock& block) {
  const auto froms = block.find_all("From");
  if (froms.empty()) return bad("no From field");
  if (froms.size() > 1) return bad("more than one From field");
  const std::string_view raw = block.field(froms.front()).raw;
  auto list = parse_mailbox_list(raw.substr(raw.find(':') + 1));
  if (!list) return std::move(list).error();
  if (list->empty()) return bad("From holds no address");
  if (list->size() > 1) return bad("From holds " + std::to_string(list->size()) + " addresses");
  auto address = split_address(list->front());
  if (!address) return bad("From address \"" + list->front() + "\" is not local@domain");
  return *address;
}

}  // namespace stampd::auth
